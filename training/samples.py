"""The app's shape samples: shapes v2 scenes, each picked by its attributes to show one thing a
model has to cope with, saved with its ground-truth mask and listed in `assets/samples.json`.

    python -m training.samples      # rewrites assets/shapes-*.png, their masks and their entries

The scenes come from seed 7, which training (0), validation (1) and the model card (2026) never
use. Nothing about a pick depends on a model's answer: a sample shows what the model does, right
or wrong. Each is the first index of its class whose attributes fit its description.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from .shapes import ASSETS, CLASSES, Attributes, ShapeSample, render

SEED, SIZE, VERSION = 7, 128, 2
SEARCH = 5000                   # indices tried per pick before giving up


def _clean(a: Attributes) -> bool:
    """In colour, full contrast, nothing drawn over the object."""
    return not (a.grayscale or a.low_contrast or a.clutter_over)


@dataclass(frozen=True)
class Pick:
    label: str
    title: str
    fits: Callable[[Attributes], bool]


PICKS = (
    Pick("circle", "circle on a photograph", lambda a: a.background == "photo" and 0.35 <= a.extent <= 0.6 and _clean(a)),
    Pick("star", "small star on a texture", lambda a: a.background == "texture" and 0.15 <= a.extent <= 0.25
         and _clean(a)),
    Pick("ring", "grayscale ring with clutter over it", lambda a: a.grayscale and a.clutter_over
         and not a.low_contrast and 0.3 <= a.extent <= 0.7 and a.occluded >= 0.02),
    Pick("crescent", "low-contrast crescent", lambda a: a.low_contrast and not (a.grayscale or a.clutter_over)
         and 0.3 <= a.extent <= 0.7),
    Pick("arrow", "arrow among four distractor shapes", lambda a: len(a.distractors) == 4 and _clean(a)
         and 0.3 <= a.extent <= 0.6),
    Pick("heart", "large heart", lambda a: a.extent >= 0.7 and _clean(a)),
)


def find(pick: Pick) -> tuple[int, ShapeSample]:
    """The first index (of the pick's class) whose scene fits the pick, and the scene."""
    label = CLASSES.index(pick.label)
    for index in range(label, SEARCH * len(CLASSES), len(CLASSES)):
        sample = render(SEED, index, SIZE, VERSION)
        if pick.fits(sample.attributes):
            return index, sample
    raise LookupError(f"no {pick.title} among the first {SEARCH} {pick.label}s of seed {SEED}")


def write(assets: Path = ASSETS) -> list[dict]:
    """Save every pick's image and mask in `assets` and make them the first entries of its
    samples.json (the photographs' entries stay after them); returns the shape entries."""
    entries = []
    for pick in PICKS:
        index, sample = find(pick)
        image, mask = f"shapes-{pick.label}.png", f"shapes-{pick.label}-mask.png"
        Image.fromarray(sample.image).save(assets / image)
        Image.fromarray(sample.mask).save(assets / mask)           # mode "1": the object's visible pixels
        entries.append({"title": f"Shape: {pick.title}", "file": image, "mask": mask, "label": pick.label,
                        "source": {"version": VERSION, "seed": SEED, "index": index}})
    listing = assets / "samples.json"
    photos = [s for s in json.loads(listing.read_text()) if s["mask"] is None] if listing.exists() else []
    listing.write_text(json.dumps(entries + photos, indent=1) + "\n")
    return entries


if __name__ == "__main__":
    for entry in write():
        print(entry["title"], entry["source"])
