"""What a study reads: an image-folder tree (one folder per class, torchvision's `ImageFolder`
convention) or freshly rendered shapes (`shapes:v2:SEED:N`, with object masks), as a torch
`Dataset` of model inputs preprocessed exactly as the app preprocesses one upload.

Items are `(x [3, H, W], label, mask [H, W] bool, index)`; a folder has no masks (an empty
`[0, 0]` mask). A file that cannot be decoded gives a `Failed` item (`collate` sets it aside with
its reason), so one bad file does not stop a study of thousands.
"""
import re
from dataclasses import dataclass
from typing import NamedTuple
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from pretrained import ImageError, Preprocess, decode_image
from training.shapes import CLASSES, VERSIONS, render

SHAPES = re.compile(r"shapes:v(?P<version>\d+):(?P<seed>\d+):(?P<count>\d+)")
SHAPES_SIZE = 128               # the shapes dataset's own image size, before preprocessing


@dataclass(frozen=True)
class SourceSpec:
    """A parsed SOURCE argument; hashable and small, so Ray workers can rebuild the dataset."""
    text: str
    kind: str                    # "folder" | "shapes"
    classes: tuple[str, ...]
    files: tuple[tuple[str, int], ...] = ()      # folder: (path, class index), sorted
    version: int = 2
    seed: int = 0
    count: int = 0

    def __len__(self) -> int:
        return len(self.files) if self.kind == "folder" else self.count

    @property
    def has_masks(self) -> bool:
        return self.kind == "shapes"

    def image_id(self, index: int) -> str:
        return self.files[index][0] if self.kind == "folder" else f"shapes:v{self.version}:{self.seed}:{index}"


def parse_source(text: str) -> SourceSpec:
    """`shapes:vV:SEED:N` or the path of a folder with one subfolder of images per class."""
    match = SHAPES.fullmatch(text)
    if match:
        version, seed, count = (int(match[k]) for k in ("version", "seed", "count"))
        if version not in VERSIONS:
            raise ValueError(f"shapes version must be one of {VERSIONS}, got v{version}")
        if count < 1:
            raise ValueError("a shapes source needs at least 1 image (shapes:v2:SEED:N with N >= 1)")
        return SourceSpec(text, "shapes", CLASSES, version=version, seed=seed, count=count)
    if text.startswith("shapes:"):
        raise ValueError(f"cannot read {text!r}: write a shapes source as shapes:v2:SEED:N, e.g. shapes:v2:7:2000")
    root = Path(text)
    if not root.is_dir():
        raise ValueError(f"{text!r} is neither a folder nor a shapes source (shapes:v2:SEED:N)")
    try:
        classes, index = find_classes(str(root))
    except FileNotFoundError:
        raise ValueError(f"{text!r} has no class folders: put each class's images in a subfolder named "
                         "after the class (root/cat/1.jpg, root/dog/2.jpg)") from None
    files = make_dataset(str(root), index, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not files:
        raise ValueError(f"{text!r} has class folders but no images ({', '.join(IMG_EXTENSIONS)})")
    return SourceSpec(text, "folder", tuple(classes), tuple(sorted(files)))


class Failed(NamedTuple):
    index: int
    reason: str


class StudyDataset(torch.utils.data.Dataset):
    """The source's images as the model sees them."""

    def __init__(self, spec: SourceSpec, preprocess: Preprocess):
        self.spec, self.preprocess = spec, preprocess

    def __len__(self) -> int:
        return len(self.spec)

    def __getitem__(self, index: int):
        spec, preprocess = self.spec, self.preprocess
        if spec.kind == "shapes":
            sample = render(spec.seed, index, SHAPES_SIZE, spec.version)
            return (preprocess(Image.fromarray(sample.image)), sample.label,
                    torch.from_numpy(preprocess.mask(sample.mask)), index)
        path, label = spec.files[index]
        try:
            image = decode_image(Path(path).read_bytes())
        except (OSError, ImageError) as e:
            return Failed(index, e.strerror if isinstance(e, OSError) and e.strerror else str(e))
        return preprocess(image), label, torch.zeros(0, 0, dtype=torch.bool), index


def collate(items: list) -> dict:
    """A batch of the items that decoded -- x [B, 3, H, W], label [B], mask [B, H, W] (or
    [B, 0, 0]), index [B] -- and `failed`, the (index, reason) of those that did not."""
    kept = [item for item in items if not isinstance(item, Failed)]
    failed = [tuple(item) for item in items if isinstance(item, Failed)]
    if not kept:
        return {"x": None, "failed": failed}
    x, label, mask, index = zip(*kept)
    return {"x": torch.stack(x), "label": torch.tensor(label), "mask": torch.stack(mask),
            "index": torch.tensor(index), "failed": failed}


def masks_of(batch: dict) -> np.ndarray | None:
    mask = batch.get("mask")
    return None if mask is None or mask.shape[1] == 0 else mask.numpy()
