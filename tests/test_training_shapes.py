"""The procedural shapes dataset: determinism, balance, masks, contrast, colour/class independence;
version 1 pinned; version 2's sizes, distractors, clutter, attributes and shifts."""
import hashlib

import numpy as np
import pytest
import torch

from training.shapes import (CLASSES, EXTENT_V2, MEDIAN_EXTENT_V2, SHIFTS, ShapesDataset, render,
                               render_batch)

N = 2000


@pytest.fixture(scope="module")
def batch():
    """Samples 0..N-1 of seed 0 at the default size: images [N,H,W,3], masks [N,H,W], labels [N]."""
    return render_batch(0, 0, N)


def dilate(masks: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of [N, H, W] masks by a (2r+1)-square, separably."""
    out = masks
    for axis in (1, 2):
        padded = np.pad(out, [(0, 0)] + [(r, r) if a == axis else (0, 0) for a in (1, 2)])
        n = out.shape[axis]
        out = np.logical_or.reduce([padded.take(range(i, i + n), axis=axis) for i in range(2 * r + 1)])
    return out


def test_ten_distinct_classes():
    assert len(CLASSES) == 10
    assert len(set(CLASSES)) == 10


def test_render_is_deterministic_and_index_dependent():
    a, b, c = render(7, 3), render(7, 3), render(7, 4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.label == b.label == 3
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 10
    assert not np.array_equal(render(8, 3).image, a.image)      # the seed matters too


@pytest.mark.parametrize("size", [96, 128, 160])
def test_sample_types_and_shapes(size):
    s = render(1, 2, size)
    assert s.image.dtype == np.uint8 and s.image.shape == (size, size, 3)
    assert s.mask.dtype == np.bool_ and s.mask.shape == (size, size)
    assert s.label == 2


@pytest.mark.parametrize("size", [64, 95, 161, 200])
def test_size_out_of_range_raises(size):
    for make in (lambda: render(0, 0, size), lambda: ShapesDataset(4, 0, size),
                 lambda: render_batch(0, 0, 2, size)):
        with pytest.raises(ValueError, match=r"96\.\.160"):
            make()


def test_dataset_items():
    ds = ShapesDataset(25, seed=3, size=96)
    assert len(ds) == 25
    for i in (0, 13, 24):
        x, y = ds[i]
        s = render(3, i, 96)
        assert x.dtype == torch.float32 and x.shape == (3, 96, 96)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y == s.label == i % 10
        torch.testing.assert_close(x, torch.from_numpy(s.image).permute(2, 0, 1) / 255.0)
    with pytest.raises(IndexError):
        ds[25]


def test_render_batch_equals_stacked_render():
    images, masks, labels = render_batch(3, 5, 12, size=96)
    samples = [render(3, 5 + i, 96) for i in range(12)]
    assert images.dtype == np.uint8 and images.shape == (12, 96, 96, 3)
    assert masks.dtype == np.bool_ and labels.dtype == np.int64
    np.testing.assert_array_equal(images, np.stack([s.image for s in samples]))
    np.testing.assert_array_equal(masks, np.stack([s.mask for s in samples]))
    np.testing.assert_array_equal(labels, [s.label for s in samples])


@pytest.mark.slow
def test_labels_balanced(batch):
    _, _, labels = batch
    np.testing.assert_array_equal(np.bincount(labels[:1000], minlength=10), [100] * 10)


@pytest.mark.slow
def test_masks_inside_image_with_sane_area(batch):
    _, masks, labels = batch
    assert not masks[:, [0, -1], :].any() and not masks[:, :, [0, -1]].any()
    area = masks.mean((1, 2))
    for c, name in enumerate(CLASSES):
        a = area[labels == c]
        assert a.min() > 0.015, name
        assert a.max() < 0.35, name
        assert a.max() > 1.5 * a.min(), name                    # object size really varies


@pytest.mark.slow
def test_mask_is_the_drawn_object(batch):
    """Pixels under the mask are one colour up to mild shading and noise; the object is visibly
    different from the ring of background just outside it."""
    images, masks, _ = batch
    images, masks = images[:200].astype(np.float64), masks[:200]
    ring = dilate(masks, 3) & ~masks
    for img, m, r in zip(images, masks, ring):
        inside = img[m]
        assert inside.std(0).max() < 12
        assert np.linalg.norm(inside.mean(0) - img[r].mean(0)) > 40


@pytest.mark.slow
def test_object_colour_says_nothing_about_class(batch):
    """A nearest-class-mean classifier on the object's mean RGB stays near chance (10%)."""
    images, masks, labels = batch
    colours = np.stack([img[m].mean(0) for img, m in zip(images, masks)])      # [N, 3]
    train, test = slice(0, N // 2), slice(N // 2, N)
    means = np.stack([colours[train][labels[train] == c].mean(0) for c in range(10)])
    pred = np.linalg.norm(colours[test][:, None] - means[None], axis=2).argmin(1)
    assert (pred == labels[test]).mean() < 0.2
    assert colours.std(0).min() > 40                            # colours do vary a lot


def test_v1_is_pinned():
    """Version 1 renders byte for byte what it rendered before version 2 existed (the bundled
    models and their card were trained and measured on it): SHA-256 of render_batch(0, 0, 8)."""
    images, masks, labels = render_batch(0, 0, 8, 128)
    digest = hashlib.sha256(images.tobytes() + masks.tobytes() + labels.tobytes()).hexdigest()
    assert digest == "58487a647b5d5290c5439bb1f1cb38bb358b98d40ca349cb808e9729e94d970f"


# ---- version 2 ----------------------------------------------------------------------------------

N2 = 1000


@pytest.fixture(scope="module")
def v2():
    """Samples 0..N2-1 of version 2, seed 0, and their images, masks, labels and attributes."""
    samples = [render(0, i, version=2) for i in range(N2)]
    return (samples, np.stack([s.image for s in samples]), np.stack([s.mask for s in samples]),
            np.array([s.label for s in samples]), [s.attributes for s in samples])


@pytest.fixture(scope="module")
def shifted():
    """Samples 0..199 of version 2, seed 0, without a shift and with each shift."""
    return {shift: [render(0, i, version=2, shift=shift) for i in range(200)] for shift in (None, *SHIFTS)}


def contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """RGB distance of the object's mean colour from that of the 2-px ring just outside it."""
    ring = dilate(mask[None], 2)[0] & ~mask
    return float(np.linalg.norm(image[mask].mean(0) - image[ring].mean(0)))


def test_v2_is_deterministic_and_differs_from_v1():
    a, b = render(7, 3, version=2), render(7, 3, version=2)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.attributes == b.attributes and a.label == 3
    assert np.abs(a.image.astype(int) - render(7, 3).image).mean() > 10
    assert np.abs(a.image.astype(int) - render(7, 4, version=2).image).mean() > 10
    np.testing.assert_array_equal(render_batch(7, 2, 3, version=2)[0], np.stack([render(7, i, version=2).image
                                                                                 for i in (2, 3, 4)]))
    x, y = ShapesDataset(5, seed=7, version=2)[3]
    torch.testing.assert_close(x, torch.from_numpy(a.image).permute(2, 0, 1) / 255.0)


@pytest.mark.parametrize("version, shift", [(3, None), (1, "small"), (2, "blur")])
def test_unknown_version_or_shift_raises(version, shift):
    for make in (lambda: render(0, 0, 128, version, shift), lambda: render_batch(0, 0, 2, 128, version, shift),
                 lambda: ShapesDataset(4, 0, 128, version, shift)):
        with pytest.raises(ValueError, match="version" if version == 3 else "shift"):
            make()


@pytest.mark.slow
def test_v2_sizes_span_8_to_90_percent_uniformly(v2):
    _, _, masks, _, attrs = v2
    extent = np.array([a.extent for a in attrs])
    assert EXTENT_V2 == (0.08, 0.9)
    assert 0.08 <= extent.min() < 0.085 and 0.87 < extent.max() <= 0.9
    assert abs(np.median(extent) - MEDIAN_EXTENT_V2) < 0.03 and MEDIAN_EXTENT_V2 == 0.49
    counts = np.histogram(extent, bins=4, range=EXTENT_V2)[0]  # uniform: equal quarters
    assert counts.min() > 0.2 * N2
    side = np.array([max(np.ptp(np.nonzero(m)[0]), np.ptp(np.nonzero(m)[1])) + 1 for m in masks])
    assert (side <= extent * 128 + 2).all()                     # the object fits its stated diameter ...
    assert (side >= 0.7 * extent * 128).all()                   # ... and spans most of it


@pytest.mark.slow
def test_v2_labels_balanced_and_colour_says_nothing(v2):
    _, images, masks, labels, attrs = v2
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [N2 // 10] * 10)
    colour = np.array([not a.grayscale for a in attrs])
    colours = np.stack([img[m].mean(0) for img, m in zip(images, masks)])[colour]  # [n, 3]
    y, half = labels[colour], colour.sum() // 2
    means = np.stack([colours[:half][y[:half] == c].mean(0) for c in range(10)])
    pred = np.linalg.norm(colours[half:, None] - means[None], axis=2).argmin(1)
    assert (pred == y[half:]).mean() < 0.2
    assert colours.std(0).min() > 40


@pytest.mark.slow
def test_v2_factor_frequencies(v2):
    _, _, _, _, attrs = v2
    share = lambda f: np.mean([f(a) for a in attrs])            # noqa: E731
    assert abs(share(lambda a: a.grayscale) - 0.25) < 0.04
    assert abs(share(lambda a: a.low_contrast) - 0.25) < 0.04
    assert abs(share(lambda a: a.clutter_over) - 0.5) < 0.05
    for background in ("smooth", "texture", "photo"):
        assert abs(share(lambda a: a.background == background) - 1 / 3) < 0.05


@pytest.mark.slow
def test_v2_distractor_shapes_are_other_classes_and_smaller(v2):
    _, _, _, labels, attrs = v2
    for label, a in zip(labels, attrs):
        assert 2 <= len(a.distractors) <= 4
        assert all(c != label for c, _ in a.distractors)
        assert all(e <= max(0.5 * a.extent, 4 / 128) + 1e-9 for _, e in a.distractors)   # the target is largest
    pairs = np.array([(label, c) for label, a in zip(labels, attrs) for c, _ in a.distractors])
    assert len({tuple(p) for p in pairs}) == 90                 # every other class appears with every label


@pytest.mark.slow
def test_v2_mask_is_the_visible_object(v2):
    """One colour under the mask (clutter strokes, which are coloured far from the object, are
    not in it); clearly different from its surroundings unless low-contrast; occluded only by
    clutter drawn over it."""
    _, images, masks, _, attrs = v2
    images = images.astype(np.float64)
    assert max(img[m].std(0).max() for img, m in zip(images, masks)) < 12
    c = np.array([contrast(img, m) for img, m in zip(images, masks)])
    low = np.array([a.low_contrast for a in attrs])
    assert np.percentile(c[~low], 5) > 80 and np.median(c[low]) < 0.4 * np.median(c[~low])
    occluded = np.array([a.occluded for a in attrs])
    over = np.array([a.clutter_over for a in attrs])
    assert (occluded[~over] == 0).all()
    assert (occluded[over] > 0).all() and 0.05 < np.median(occluded[over]) < 0.15 and occluded.max() < 0.5


@pytest.mark.slow
def test_v2_grayscale_images_are_gray(v2):
    _, images, _, _, attrs = v2
    gray = np.array([a.grayscale for a in attrs])
    spread = np.ptp(images.astype(int), axis=3).mean((1, 2))   # per image, mean max-min over RGB
    assert (spread[gray] == 0).all() and (spread[~gray] > 5).all()


@pytest.mark.slow
def test_shifts_change_only_their_factor(shifted):
    base = shifted[None]
    for shift in SHIFTS:
        for b, s in zip(base, shifted[shift]):
            assert s.label == b.label
            assert [c for c, _ in s.attributes.distractors] == [c for c, _ in b.attributes.distractors]
            assert s.attributes.background == b.attributes.background
            same = {"small": ("grayscale", "low_contrast", "clutter_over"), "grayscale": ("extent", "low_contrast",
                    "clutter_over"), "low_contrast": ("extent", "grayscale", "clutter_over"),
                    "clutter": ("extent", "grayscale", "low_contrast")}[shift]
            assert all(getattr(s.attributes, f) == getattr(b.attributes, f) for f in same), shift


@pytest.mark.slow
def test_shift_small_takes_the_lower_half_of_sizes(shifted):
    base, small = shifted[None], shifted["small"]
    extent, small_extent = (np.array([s.attributes.extent for s in ss]) for ss in (base, small))
    np.testing.assert_allclose(small_extent, (EXTENT_V2[0] + extent) / 2)  # u -> u/2
    assert small_extent.max() < MEDIAN_EXTENT_V2
    assert np.mean([s.mask.sum() for s in small]) < 0.4 * np.mean([s.mask.sum() for s in base])


@pytest.mark.slow
def test_shift_grayscale_low_contrast_and_clutter(shifted):
    base = shifted[None]
    assert all(s.attributes.grayscale and np.ptp(s.image.astype(int), axis=2).max() == 0
               for s in shifted["grayscale"])
    low = shifted["low_contrast"]
    assert all(s.attributes.low_contrast for s in low)
    was_normal = [i for i, b in enumerate(base) if not b.attributes.low_contrast]
    ratio = [contrast(low[i].image.astype(float), low[i].mask) / contrast(base[i].image.astype(float), base[i].mask)
             for i in was_normal]
    assert np.median(ratio) < 0.45
    assert all(s.attributes.clutter_over and s.attributes.occluded > 0 for s in shifted["clutter"])
