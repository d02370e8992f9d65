"""A procedural image dataset with a ground-truth object mask per image, generated from a seed.

Each image holds one filled shape of one of ten classes on a cluttered background: a smooth colour
gradient, a low-frequency texture (stripes and blobs), pixel noise, and distractors that belong to
no class (thin lines, thin arcs, scribbles, small dots). The object's colour, size (30-60% of the
image side), rotation and position are random; its colour is picked far from the mean colour of
the background behind it, so it stays visible, and independent of its class. Distractors are drawn
under the object, so the object is always whole and the mask is exactly its pixels.

Everything about sample `index` comes from `np.random.default_rng([seed, index])`, except its
label, `index % 10`, which balances the classes (train with shuffling).
"""
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "pentagon", "star",
           "cross", "ring", "crescent", "arrow", "heart")
MIN_SIZE, MAX_SIZE = 96, 160
OBJECT_EXTENT = (0.3, 0.6)      # the object's outer diameter, as a fraction of the image side
MIN_CONTRAST = 120.0            # RGB L2 distance of the object colour from its background's mean
SHADE = 12.0                    # the object's linear shading, +- this much per channel
LOW_RES = 32                    # resolution of the smooth layers before upsampling


def _unit(points: np.ndarray, centre: bool = True) -> np.ndarray:
    """Scale a polygon to a radius of 1 about the origin (after centring it on its bounding box)."""
    if centre:
        points = points - (points.max(0) + points.min(0)) / 2
    return points / np.linalg.norm(points, axis=1).max()


def _regular(n: int, radii=(1.0,)) -> np.ndarray:
    angles = np.pi / 2 + np.arange(n * len(radii)) * 2 * np.pi / (n * len(radii))
    r = np.resize(np.asarray(radii), len(angles))
    return np.stack([r * np.cos(angles), r * np.sin(angles)], 1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], 1)


_W, _L = 0.32, 1.0              # cross: arm half-width, arm length
POLYGONS = {                    # outlines of the polygonal classes, within the unit circle
    "square": _unit(_regular(4), centre=False),
    "triangle": _unit(_regular(3), centre=False),
    "pentagon": _unit(_regular(5), centre=False),
    "star": _unit(_regular(5, (1.0, 0.45)), centre=False),
    "cross": _unit(np.array([(_W, _W), (_L, _W), (_L, -_W), (_W, -_W), (_W, -_L), (-_W, -_L),
                             (-_W, -_W), (-_L, -_W), (-_L, _W), (-_W, _W), (-_W, _L), (_W, _L)])),
    "arrow": _unit(np.array([(-1.0, 0.2), (0.1, 0.2), (0.1, 0.55), (1.0, 0.0),
                             (0.1, -0.55), (0.1, -0.2), (-1.0, -0.2)])),
    "heart": _unit(_heart()),
}


@dataclass(frozen=True, eq=False)
class ShapeSample:
    """One rendered sample."""
    image: np.ndarray           # uint8 [H, W, 3]
    mask: np.ndarray            # bool [H, W], True exactly on the object's pixels
    label: int                  # index into CLASSES


def _check_size(size: int) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size must be in {MIN_SIZE}..{MAX_SIZE} pixels, got {size}")


def _smooth_basis(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """[n, k] Gaussian bumps at k jittered centres, rows normalised: a smooth upsampler."""
    centres = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) / (k - 1)
    pos = np.linspace(0, 1, n)[:, None]
    w = np.exp(-(((pos - centres) * (k - 1)) ** 2))
    return w / w.sum(1, keepdims=True)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Colour gradient + stripes + blobs, drawn at LOW_RES and upsampled (all low-frequency)."""
    pos = np.linspace(-0.5, 0.5, LOW_RES)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(theta) * pos[None, :] + np.sin(theta) * pos[:, None]            # [h, w]
    c0, c1 = rng.uniform(30, 225, (2, 3))
    bg = (c0 + c1) / 2 + ramp[..., None] * (c1 - c0)                             # [h, w, 3]

    phi = rng.uniform(0, 2 * np.pi)
    cycles = rng.uniform(2, 6)
    stripes = np.sin(2 * np.pi * cycles * (np.cos(phi) * pos[None, :] + np.sin(phi) * pos[:, None])
                     + rng.uniform(0, 2 * np.pi))                                # [h, w]
    bg += stripes[..., None] * rng.uniform(-30, 30, 3)

    k = int(rng.integers(4, 8))
    blobs = rng.uniform(-35, 35, (3, k, k))
    bg += (_smooth_basis(LOW_RES, k, rng) @ blobs @ _smooth_basis(LOW_RES, k, rng).T
           ).transpose(1, 2, 0)                                                  # [h, w, 3]
    low = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    return low.resize((size, size), Image.BICUBIC)


def _far_colours(rng: np.random.Generator, n: int, away_from: np.ndarray, min_dist: float
                 ) -> np.ndarray:
    """[n, 3] random RGB colours at least min_dist from away_from (else the farthest of 8 tries)."""
    candidates = rng.uniform(0, 255, (n, 8, 3))
    dist = np.linalg.norm(candidates - away_from, axis=2)                        # [n, 8]
    pick = np.where((dist >= min_dist).any(1), (dist >= min_dist).argmax(1), dist.argmax(1))
    return candidates[np.arange(n), pick]


def _draw_distractors(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int,
                      avoid: np.ndarray) -> None:
    """Thin lines, thin arcs (< 180 deg), scribbles and small dots, coloured unlike the object."""
    n_lines, n_arcs, n_scribbles, n_dots = rng.integers((1, 1, 1, 2), (4, 4, 3, 9))
    colours = iter(tuple(c) for c in _far_colours(rng, n_lines + n_arcs + n_scribbles + n_dots,
                                                  avoid, 90).astype(int).tolist())
    for x0, y0, x1, y1 in rng.uniform(0, size, (n_lines, 4)).tolist():
        draw.line((x0, y0, x1, y1), fill=next(colours), width=int(rng.integers(1, 3)))
    for _ in range(n_arcs):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.05, 0.2) * size
        start = rng.uniform(0, 360)
        draw.arc((cx - r, cy - r, cx + r, cy + r), start, start + rng.uniform(40, 150),
                 fill=next(colours), width=int(rng.integers(1, 3)))
    for _ in range(n_scribbles):
        steps = rng.normal(0, 0.06 * size, (int(rng.integers(3, 7)), 2))
        pts = rng.uniform(0, size, 2) + np.cumsum(steps, 0)
        draw.line([tuple(p) for p in pts.tolist()], fill=next(colours), width=1, joint="curve")
    for x, y, r in zip(*rng.uniform((0, 0, 0.8), (size, size, 2.5), (n_dots, 3)).T.tolist()):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=next(colours))


def _draw_object(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, radius: float,
                 angle: float, rng: np.random.Generator) -> None:
    """Draw the class shape into a mode-"L" mask (255 on the object); no anti-aliasing."""
    def disk(x, y, r, fill):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    if name == "circle":
        disk(cx, cy, radius, 255)
    elif name == "ring":
        disk(cx, cy, radius, 255)
        disk(cx, cy, radius * rng.uniform(0.5, 0.62), 0)
    elif name == "crescent":
        disk(cx, cy, radius, 255)
        off = radius * rng.uniform(0.45, 0.6)
        disk(cx + off * np.cos(angle), cy + off * np.sin(angle), radius * 0.85, 0)
    else:
        c, s = np.cos(angle), np.sin(angle)
        pts = POLYGONS[name] @ np.array([[c, s], [-s, c]]) * radius + (cx, cy)   # [V, 2]
        draw.polygon([tuple(p) for p in pts.tolist()], fill=255)


def _object_layer(rng: np.random.Generator, size: int, colour: np.ndarray, cx: float, cy: float,
                  radius: float) -> Image.Image:
    """The object's colour with a mild linear shading (+-SHADE) across it, over the whole image."""
    grid = (np.arange(LOW_RES) + 0.5) * size / LOW_RES - 0.5     # full-res coordinate of each cell
    theta = rng.uniform(0, 2 * np.pi)
    shade = (np.cos(theta) * (grid[None, :] - cx) + np.sin(theta) * (grid[:, None] - cy)) / radius
    layer = colour + SHADE * np.clip(shade, -1, 1)[..., None]                    # [h, w, 3]
    low = Image.fromarray(np.clip(layer, 0, 255).astype(np.uint8))
    return low.resize((size, size), Image.BILINEAR)


def render(seed: int, index: int, size: int = 128) -> ShapeSample:
    """Sample `index` of the dataset with this seed; the same arguments always give the same sample."""
    _check_size(size)
    rng = np.random.default_rng([seed, index])
    label = int(index) % len(CLASSES)

    canvas = _background(rng, size)
    radius = rng.uniform(*OBJECT_EXTENT) * size / 2
    cx, cy = rng.uniform(radius + 2, size - radius - 2, 2).tolist()
    angle = rng.uniform(0, 2 * np.pi)
    y0, y1, x0, x1 = int(cy - radius), int(cy + radius) + 1, int(cx - radius), int(cx + radius) + 1
    behind = np.asarray(canvas)[y0:y1, x0:x1].mean((0, 1))                       # [3]
    colour = _far_colours(rng, 1, behind, MIN_CONTRAST)[0]                       # [3]

    _draw_distractors(ImageDraw.Draw(canvas), rng, size, colour)
    mask_img = Image.new("L", (size, size), 0)
    _draw_object(ImageDraw.Draw(mask_img), CLASSES[label], cx, cy, radius, angle, rng)
    canvas = Image.composite(_object_layer(rng, size, colour, cx, cy, radius), canvas, mask_img)

    amp = int(rng.integers(3, 11))
    image = np.asarray(canvas).astype(np.int16)                                  # [H, W, 3]
    image += rng.integers(-amp, amp + 1, image.shape, dtype=np.int16)            # uniform pixel noise
    return ShapeSample(np.clip(image, 0, 255).astype(np.uint8), np.asarray(mask_img) > 0, label)


def render_batch(seed: int, start: int, count: int, size: int = 128
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples start..start+count-1 stacked: images uint8 [N, H, W, 3], masks bool [N, H, W],
    labels int64 [N]. Identical to calling `render` on each index."""
    _check_size(size)
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.empty((count, size, size), bool)
    labels = np.empty(count, np.int64)
    for i in range(count):
        s = render(seed, start + i, size)
        images[i], masks[i], labels[i] = s.image, s.mask, s.label
    return images, masks, labels


class ShapesDataset(torch.utils.data.Dataset):
    """`length` samples rendered on demand: item i is (float image [3, H, W] in [0, 1], label)."""

    def __init__(self, length: int, seed: int, size: int = 128):
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        _check_size(size)
        self.length, self.seed, self.size = length, seed, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        s = render(self.seed, i, self.size)
        return torch.from_numpy(s.image).permute(2, 0, 1).float() / 255, s.label  # [3, H, W]
