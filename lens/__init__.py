"""One inspection per image -- the model's input, its attention block by block, predictions, edits
and exports -- and the commands built on it (`python -m lens report`; `python -m lens study` for a
whole dataset, `lens.study`). The app and the CLI both
stand on it; it draws with `viz` and loads with `pretrained`."""
from blocks import AttentionKind, attention_kind, attention_kinds   # what a kind is, for the page (no blocks import)

from .block_view import BlockView, TopChannels, spatial_view
from .inspection import MAX_TOP_K, Inspection, Prediction, inspect_image
from .intervention import UNCHANGED_POINTS, outcome
from .localisation import auc, localisation_score, localisation_table, pointing_game

__all__ = ["AttentionKind", "attention_kind", "attention_kinds", "inspect_image", "Inspection", "Prediction",
           "BlockView", "TopChannels", "spatial_view", "MAX_TOP_K", "localisation_score", "localisation_table",
           "pointing_game", "auc", "outcome", "UNCHANGED_POINTS"]
