"""A procedural image dataset with a ground-truth object mask per image, generated from a seed.

Each image holds one filled shape of one of ten classes; its colour is independent of its class.
Everything about sample `index` comes from generators seeded with `[seed, index]` (version 1) or
`[seed, index, 2, stage]` (version 2, one per rendering stage), except its label, `index % 10`,
which balances the classes (train with shuffling).

Version 1 (the first bundled models' data, kept byte for byte): a smooth background (colour gradient,
low-frequency stripes and blobs), pixel noise, and distractors that belong to no class (thin
lines, thin arcs, scribbles, small dots) drawn under the object; the object's size is 30-60% of the
image side and its colour far from the background behind it, so it is always whole and clearly
visible, and the mask is exactly its pixels.

Version 2 is made so that a model has to find the object:
- its outer diameter ranges uniformly over 8-90% of the image side (median 49%);
- 2-4 distractor *shapes* of other classes, each 25-50% of the target's diameter, lie under it:
  the target is always the largest shape, at least twice the diameter of any other;
- backgrounds are v1's smooth one, a mid-frequency texture (two coloured gratings), or a crop of
  one of the bundled CC0 photographs (assets/chelsea.jpg, coffee.jpg, astronaut.jpg);
- a quarter of the images are grayscale, a quarter low-contrast (the object is 60-90 RGB units
  from its background instead of 120-200, then the whole image is compressed to 60-85% of its
  contrast), half have 1-3 strokes of clutter drawn *over* the object, each through one of its
  pixels; all get colour jitter (channel gains, brightness, saturation) and pixel noise.
The mask is the object's *visible* pixels: clutter drawn over the object is not in it.
`render(..., shift=...)` forces one factor for a shift-only test set (`SHIFTS`) and leaves every
other draw as it was: the same indices give the same scenes, changed in that factor only.
"""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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
VERSIONS = (1, 2)

# version 2
EXTENT_V2 = (0.08, 0.9)         # uniform: the median is 0.49
MEDIAN_EXTENT_V2 = sum(EXTENT_V2) / 2
CONTRAST = (120.0, 200.0)       # RGB L2 distance of the object colour from its background's mean
LOW_CONTRAST = (60.0, 90.0)     # the same for low-contrast images ...
COMPRESSION = (0.6, 0.85)       # ... whose whole image is then compressed about its mean
P_GRAYSCALE, P_LOW_CONTRAST, P_CLUTTER_OVER = 0.25, 0.25, 0.5
DISTRACTORS = (2, 4)            # distractor shapes per image (inclusive) ...
DISTRACTOR_SCALE = (0.25, 0.5)  # ... each this fraction of the target's diameter
BACKGROUNDS = ("smooth", "texture", "photo")
PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHIFTS = ("small", "grayscale", "low_contrast", "clutter")
LUMA = np.array([0.299, 0.587, 0.114])          # ITU-R BT.601, as PIL's convert("L")


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


@dataclass(frozen=True)
class Attributes:
    """What shift evaluations need to know about a sample (version 1: whole, colour, smooth)."""
    extent: float               # the object's outer diameter / the image side
    grayscale: bool = False
    low_contrast: bool = False
    clutter_over: bool = False  # strokes of clutter drawn over the object
    occluded: float = 0.0       # share of the object's silhouette those strokes cover
    background: str = "smooth"  # one of BACKGROUNDS
    distractors: tuple[tuple[int, float], ...] = ()  # (class, extent) of each distractor shape


@dataclass(frozen=True, eq=False)
class ShapeSample:
    """One rendered sample."""
    image: np.ndarray           # uint8 [H, W, 3]
    mask: np.ndarray            # bool [H, W], True exactly on the object's visible pixels
    label: int                  # index into CLASSES
    attributes: Attributes


def _check(size: int, version: int = 1, shift: str | None = None) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size must be in {MIN_SIZE}..{MAX_SIZE} pixels, got {size}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    if shift is not None and (version != 2 or shift not in SHIFTS):
        raise ValueError(f"shift must be None or, for version 2, one of {', '.join(SHIFTS)}; "
                         f"got {shift!r} for version {version}")


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


def _render_v1(seed: int, index: int, size: int) -> ShapeSample:
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
    return ShapeSample(np.clip(image, 0, 255).astype(np.uint8), np.asarray(mask_img) > 0, label,
                       Attributes(extent=2 * radius / size))


@lru_cache(maxsize=8)          # the bundled photos, by name: not a user's key
def _photo(name: str) -> Image.Image:
    with Image.open(ASSETS / name) as im:
        return im.convert("RGB")


def _photo_crop(rng: np.random.Generator, size: int) -> Image.Image:
    """A random square crop (25-100% of the short side), maybe mirrored, of a bundled photo."""
    photo = _photo(PHOTOS[int(rng.integers(len(PHOTOS)))])
    w, h = photo.size
    side = rng.uniform(0.25, 1.0) * min(w, h)
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    crop = photo.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.uniform() < 0.5 else crop


def _texture(rng: np.random.Generator, size: int) -> Image.Image:
    """Two coloured sine gratings of 5-16 cycles per image at random angles, over a base colour."""
    pos = np.linspace(-0.5, 0.5, size)
    tex = np.broadcast_to(rng.uniform(40, 215, 3), (size, size, 3)).copy()      # [H, W, 3]
    for phi, cycles, phase in rng.uniform((0, 5, 0), (np.pi, 16, 2 * np.pi), (2, 3)).tolist():
        wave = np.sin(2 * np.pi * cycles * (np.cos(phi) * pos[None, :] + np.sin(phi) * pos[:, None]) + phase)
        tex += wave[..., None] * rng.uniform(-45, 45, 3)
    return Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8))


def _colour_at(rng: np.random.Generator, behind: np.ndarray, distance: float, gray: bool) -> np.ndarray:
    """[3] a colour `distance` (RGB L2) from `behind` in a random direction that stays in gamut
    (else the least clipped of 8); a gray one, and `behind` taken as gray, for grayscale images."""
    if gray:
        behind = np.full(3, behind @ LUMA)
        dirs = np.sign(rng.uniform(-1, 1, (8, 1))) * np.ones(3) / np.sqrt(3)     # [8, 3]
    else:
        dirs = rng.normal(size=(8, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    candidates = behind + distance * dirs                                        # [8, 3]
    overshoot = np.maximum(candidates - 255, 0).sum(1) + np.maximum(-candidates, 0).sum(1)
    return np.clip(candidates[overshoot.argmin()], 0, 255)


def _draw_distractor_shapes(canvas: Image.Image, rng: np.random.Generator, label: int, radius: float,
                            avoid: np.ndarray) -> tuple[tuple[int, float], ...]:
    """2-4 filled shapes of other classes, each 25-50% of the target's diameter (at least 4 px),
    anywhere in the image, in colours far from the target's (60 RGB units, else the farthest of 8)."""
    size = canvas.size[0]
    n = int(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1))
    classes = (label + rng.integers(1, len(CLASSES), n)) % len(CLASSES)         # never the target's
    radii = np.maximum(radius * rng.uniform(*DISTRACTOR_SCALE, n), 2.0)
    colours = _far_colours(rng, n, avoid, 60).astype(int)
    drawn = []
    for c, r, colour in zip(classes.tolist(), radii.tolist(), colours.tolist()):
        cx, cy = rng.uniform(r + 1, size - r - 1, 2).tolist()
        shape = Image.new("L", canvas.size, 0)
        _draw_object(ImageDraw.Draw(shape), CLASSES[c], cx, cy, r, rng.uniform(0, 2 * np.pi), rng)
        canvas.paste(tuple(colour), mask=shape)
        drawn.append((c, 2 * r / size))
    return tuple(drawn)


def _draw_clutter_over(canvas: Image.Image, rng: np.random.Generator, silhouette: np.ndarray, radius: float,
                       avoid: np.ndarray) -> Image.Image:
    """1-3 strokes (a line with a kink) each through a random pixel of the object, 1-3 px wide
    (thinner on small objects), coloured unlike it; returns the "L" mask of their pixels."""
    cover = Image.new("L", canvas.size, 0)
    draws = ImageDraw.Draw(canvas), ImageDraw.Draw(cover)
    n = int(rng.integers(1, 4))
    colours = _far_colours(rng, n, avoid, 90).astype(int)
    ys, xs = np.nonzero(silhouette)
    for colour in colours.tolist():
        k = int(rng.integers(len(xs)))
        through = np.array([xs[k], ys[k]], float)
        theta = rng.uniform(0, np.pi)
        direction = np.array([np.cos(theta), np.sin(theta)])
        ends = through + np.outer(rng.uniform(0.6, 1.6, 2) * (-1, 1) * radius, direction)   # [2, 2]
        ends[1] += rng.normal(0, 0.3 * radius, 2)                                           # the kink
        pts = [tuple(ends[0]), tuple(through), tuple(ends[1])]
        width = int(rng.integers(1, 2 if radius < 10 else 3 if radius < 25 else 4))
        for draw, fill in zip(draws, (tuple(colour), 255)):
            draw.line(pts, fill=fill, width=width, joint="curve")
    return cover


def _render_v2(seed: int, index: int, size: int, shift: str | None) -> ShapeSample:
    # one generator per stage, so that a shift, which changes how much one stage draws, leaves
    # every other stage's draws as they were
    scene, paint, clutter, shape, over_rng, finish = (np.random.default_rng([seed, index, 2, stage])
                                                      for stage in range(6))
    label = int(index) % len(CLASSES)
    u_extent, u_gray, u_low, u_over = scene.uniform(size=4)
    lo, hi = EXTENT_V2
    extent = lo + (hi - lo) * (u_extent / 2 if shift == "small" else u_extent)  # "small": below the median
    gray = shift == "grayscale" or u_gray < P_GRAYSCALE
    low = shift == "low_contrast" or u_low < P_LOW_CONTRAST
    over = shift == "clutter" or u_over < P_CLUTTER_OVER
    background = BACKGROUNDS[int(scene.integers(len(BACKGROUNDS)))]

    canvas = {"smooth": _background, "texture": _texture, "photo": _photo_crop}[background](scene, size)
    radius = extent * size / 2
    cx, cy = (radius + 1 + scene.uniform(size=2) * (size - 2 * radius - 2)).tolist()
    angle = scene.uniform(0, 2 * np.pi)
    y0, y1, x0, x1 = int(cy - radius), int(cy + radius) + 1, int(cx - radius), int(cx + radius) + 1
    behind = np.asarray(canvas)[y0:y1, x0:x1].reshape(-1, 3).mean(0)             # [3]
    colour = _colour_at(paint, behind, paint.uniform(*(LOW_CONTRAST if low else CONTRAST)), gray)

    _draw_distractors(ImageDraw.Draw(canvas), clutter, size, colour)
    distractors = _draw_distractor_shapes(canvas, clutter, label, radius, colour)
    silhouette = Image.new("L", (size, size), 0)
    _draw_object(ImageDraw.Draw(silhouette), CLASSES[label], cx, cy, radius, angle, shape)
    canvas = Image.composite(_object_layer(shape, size, colour, cx, cy, radius), canvas, silhouette)
    object_pixels = np.asarray(silhouette) > 0
    cover = _draw_clutter_over(canvas, over_rng, object_pixels, radius, colour) if over else None

    image = np.asarray(canvas).astype(np.float32)                                # [H, W, 3]
    gains, (offset, saturation, compression) = finish.uniform(0.85, 1.15, 3), finish.uniform(
        (-15, 0.5, COMPRESSION[0]), (15, 1.5, COMPRESSION[1]))
    image = image * gains + offset                                               # colour jitter
    grey = image.mean(2, keepdims=True)
    image = grey + saturation * (image - grey)
    if low:
        image = image.mean() + compression * (image - image.mean())
    if gray:
        image = np.repeat(image @ LUMA.astype(np.float32), 3).reshape(size, size, 3)
    amp = int(finish.integers(3, 11))
    image = np.rint(image) + finish.integers(-amp, amp + 1, (size, size, 1) if gray else image.shape)
    mask = object_pixels & ~(np.asarray(cover) > 0) if over else object_pixels
    occluded = 1 - mask.sum() / object_pixels.sum()
    return ShapeSample(np.clip(image, 0, 255).astype(np.uint8), mask, label,
                       Attributes(extent, gray, low, over, float(occluded), background, distractors))


def render(seed: int, index: int, size: int = 128, version: int = 1, shift: str | None = None) -> ShapeSample:
    """Sample `index` of the dataset with this seed; the same arguments always give the same sample.
    `shift` (version 2 only): "small" draws the object's diameter from the lower half of its
    distribution (below MEDIAN_EXTENT_V2); "grayscale", "low_contrast" and "clutter" (strokes over
    the object) force that factor; everything else about the scene stays as without the shift."""
    _check(size, version, shift)
    return _render_v1(seed, index, size) if version == 1 else _render_v2(seed, index, size, shift)


def render_batch(seed: int, start: int, count: int, size: int = 128, version: int = 1, shift: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples start..start+count-1 stacked: images uint8 [N, H, W, 3], masks bool [N, H, W],
    labels int64 [N]. Identical to calling `render` on each index."""
    _check(size, version, shift)
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.empty((count, size, size), bool)
    labels = np.empty(count, np.int64)
    for i in range(count):
        s = render(seed, start + i, size, version, shift)
        images[i], masks[i], labels[i] = s.image, s.mask, s.label
    return images, masks, labels


class ShapesDataset(torch.utils.data.Dataset):
    """`length` samples rendered on demand: item i is (float image [3, H, W] in [0, 1], label)."""

    def __init__(self, length: int, seed: int, size: int = 128, version: int = 1, shift: str | None = None):
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        _check(size, version, shift)
        self.length, self.seed, self.size, self.version, self.shift = length, seed, size, version, shift

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        s = render(self.seed, i, self.size, self.version, self.shift)
        return torch.from_numpy(s.image).permute(2, 0, 1).float() / 255, s.label  # [3, H, W]
