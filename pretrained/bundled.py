"""The bundled shapes models: where their weights live, how their inputs are made, and what their
model card measured."""
import json
from functools import lru_cache
from pathlib import Path

import torch

from .preprocess import Preprocess

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARD_JSON = WEIGHTS_DIR / "card.json"          # written by `python -m lens card`
CARD_MD = Path(__file__).parent / "MODEL_CARD.md"   # ... and the card in words
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet's, as every entry uses


def model_name(attention: str | None) -> str:
    return f"{attention or 'plain'}-resnet18-shapes"


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> normalised float [N, 3, H, W], as `Preprocess.to_tensor` does one view."""
    return Preprocess(mean=MEAN, std=STD).normalise(images.permute(0, 3, 1, 2).float().div_(255))


@lru_cache(maxsize=1)           # the bundled card: one file, not a user's key
def _card() -> dict:
    return json.loads(CARD_JSON.read_text()) if CARD_JSON.exists() else {}


def card_entry(name: str) -> dict | None:
    """What the model card measured about bundled model `name` (None for any other model)."""
    return _card().get(name)
