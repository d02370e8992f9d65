"""From a PIL image to the tensor a model takes, and to the picture of exactly what it saw."""
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                  "nearest": Image.Resampling.NEAREST}
MIN_SIZE, MAX_SIZE = 16, 1024           # input sizes a model may ask for, in pixels
MIN_CROP = 0.1                          # the smallest centre crop (timm's are 0.75-1): a tiny one resizes 10x


@dataclass(frozen=True)
class Preprocess:
    """timm's eval transform: resize the shorter side to input_size / crop_pct, centre-crop
    input_size x input_size, scale to [0, 1], normalise by mean and std."""
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        """Check every field (a file's metadata sets them), naming the one that is wrong; mean/std
        read from JSON arrive as lists: keep the entry hashable."""
        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        if not (isinstance(self.input_size, int) and not isinstance(self.input_size, bool)
                and MIN_SIZE <= self.input_size <= MAX_SIZE):
            raise ValueError(f"input_size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, "
                             f"got {self.input_size!r:.40}")
        if not (number(self.crop_pct) and MIN_CROP <= self.crop_pct <= 1):
            raise ValueError(f"crop_pct must be a share of the resized image from {MIN_CROP} to 1, "
                             f"got {self.crop_pct!r:.40}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r:.40}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(map(number, value))):
                raise ValueError(f"{name} must be 3 numbers (red, green, blue), got {value!r:.60}")
            object.__setattr__(self, name, tuple(value))
        if min(self.std) <= 0:
            raise ValueError(f"std must be above 0 in every channel, got {self.std!r}")

    def view(self, image: Image.Image) -> Image.Image:
        """The RGB image exactly as the model sees it: resized and cropped, not normalised.

        The crop window is mapped back onto the source and resized in one step (PIL's `box`),
        so a 1 x 5000 strip never becomes a 128 x 640000 intermediate image."""
        image = image if image.mode == "RGB" else image.convert("RGB")     # no copy of a large RGB image
        w, h = image.size
        short = round(self.input_size / self.crop_pct)
        resized = (max(self.input_size, round(w * short / min(w, h))),
                   max(self.input_size, round(h * short / min(w, h))))
        sx, sy = resized[0] / w, resized[1] / h
        left, top = (resized[0] - self.input_size) // 2, (resized[1] - self.input_size) // 2
        box = (left / sx, top / sy, (left + self.input_size) / sx, (top + self.input_size) / sy)
        return image.resize((self.input_size, self.input_size), INTERPOLATIONS[self.interpolation], box=box)

    def caveat(self, image: Image.Image) -> str:
        """What resizing and cropping cost this image, when it is a lot ('' otherwise): a tiny
        image enlarged many times holds almost no detail, and the centre crop of a long strip
        keeps a small part of it."""
        w, h = image.size
        notes = []
        enlarged = self.input_size / self.crop_pct / min(w, h)
        if enlarged > 4:
            notes.append(f"the model sees it enlarged {enlarged:.0f} times, so it holds almost no detail")
        kept = self.crop_pct * min(w, h) / max(w, h)   # of the long side, after the centre crop
        if kept < 1 / 3:
            notes.append(f"the square centre crop keeps only {100 * kept:.2g}% of its length")
        return f"This image is {w} x {h} pixels: " + "; ".join(notes) + "." if notes else ""

    def mask(self, mask: Image.Image | np.ndarray) -> np.ndarray:
        """An object mask of the source image, resized and cropped exactly like it (nearest
        neighbour, so it stays binary): [input_size, input_size] bool."""
        if not isinstance(mask, Image.Image):                # a bool or 0/1 or 0/255 array
            mask = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255)
        return np.asarray(replace(self, interpolation="nearest").view(mask))[..., 0] > 127

    def to_tensor(self, view: Image.Image) -> torch.Tensor:
        """A `view` as a normalised [3, H, W] float tensor."""
        return self.normalise(torch.from_numpy(np.array(view, dtype=np.float32)).permute(2, 0, 1) / 255)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """[..., 3, H, W] values in [0, 1] -> (x - mean) / std per channel."""
        mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device)[:, None, None] for v in (self.mean, self.std))
        return (x - mean) / std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.to_tensor(self.view(image))
