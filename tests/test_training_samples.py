"""The app's shape samples are re-made from their seed and index (`training.samples`)."""
import json

import numpy as np
import pytest
from PIL import Image

from training.samples import PICKS, SEED, SIZE, VERSION, find, write
from training.shapes import ASSETS, CLASSES, render


@pytest.mark.slow
def test_each_pick_is_the_first_scene_of_its_class_that_fits():
    for pick in PICKS:
        index, sample = find(pick)
        assert CLASSES[sample.label] == pick.label and pick.fits(sample.attributes)
        earlier = range(CLASSES.index(pick.label), index, len(CLASSES))
        assert not any(pick.fits(render(SEED, i, 128, 2).attributes) for i in earlier), pick.title
    assert SEED not in (0, 1, 2026)                  # training, validation, the model card
    assert len({p.label for p in PICKS}) == len(PICKS)


@pytest.mark.slow
def test_write_saves_images_and_masks_and_keeps_the_photographs(tmp_path):
    photo = {"title": "Photo: a cat", "file": "cat.jpg", "mask": None, "label": None}
    old_shape = {"title": "Shape: old", "file": "shapes-old.png", "mask": "shapes-old-mask.png", "label": "circle"}
    (tmp_path / "samples.json").write_text(json.dumps([old_shape, photo]))
    entries = write(tmp_path)
    listing = json.loads((tmp_path / "samples.json").read_text())
    assert listing == entries + [photo]
    assert [e["label"] for e in entries] == [p.label for p in PICKS]
    for entry in entries:
        sample = render(**{k: entry["source"][k] for k in ("seed", "index")}, size=128, version=entry["source"]["version"])
        assert np.array_equal(np.asarray(Image.open(tmp_path / entry["file"])), sample.image)
        mask = Image.open(tmp_path / entry["mask"])
        assert mask.mode == "1" and np.array_equal(np.asarray(mask), sample.mask)
    assert entries[1]["title"] == "Shape: small star on a texture"


@pytest.mark.slow
def test_the_bundled_samples_are_the_picks_and_their_licence_row_names_them():
    listing = json.loads((ASSETS / "samples.json").read_text())
    shapes = [e for e in listing if e["label"]]
    assert [(e["label"], e["title"]) for e in shapes] == [(p.label, f"Shape: {p.title}") for p in PICKS]
    for entry, pick in zip(shapes, PICKS):
        index, scene = find(pick)
        assert entry["source"] == {"version": VERSION, "seed": SEED, "index": index}
        assert np.array_equal(np.asarray(Image.open(ASSETS / entry["file"])), scene.image), entry["file"]
        assert np.array_equal(np.asarray(Image.open(ASSETS / entry["mask"])), scene.mask), entry["mask"]
    indices = ", ".join(str(e["source"]["index"]) for e in shapes)
    assert (f"`training.shapes.render({SEED}, i, {SIZE}, {VERSION})` for i in {indices},"
            in (ASSETS / "LICENSES.md").read_text())
