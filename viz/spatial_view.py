"""Which map to show over the image for a block: CBAM's spatial gate, or -- for SE/ECA, which have
no spatial gate -- where the block's most-excited channels fire, clearly labelled as such."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpatialView:
    values: np.ndarray   # [h, w]
    label: str           # what the map is, for titles and captions
    absolute: bool       # True: a gate in [0, 1], shown on a fixed 0..1 scale by default
    units: str           # what a value is, for colour-scale labels: "gate value" or "mean activation"
    note: str = ""       # set when the map shows nothing (all zero): say this instead of drawing it
    all_channels: bool = False   # SE/ECA: the block has fewer channels than top-k asked for, all averaged


def spatial_view(record, index: int = 0, top_k: int = 8) -> SpatialView:
    """The map for image `index` of a capture record (`blocks.capture.AttentionRecord`).
    SE/ECA records need their channel maps (`capture_attention(..., channel_maps=K)`)."""
    if record.spatial is not None:
        return SpatialView(record.spatial[index].numpy(), "spatial attention (CBAM gate)", True, "gate value")
    values = record.activity(top_k)[index].numpy()
    k = max(1, min(top_k, record.top_maps.shape[1]))
    if k == 1:
        label, silent = "where the top-weighted channel fires", "the top-weighted channel does not fire"
    else:
        label, silent = f"where the top-{k} weighted channels fire", f"none of the top-{k} weighted channels fires"
    note = "" if values.any() else f"{silent} on this image (all zero)"
    return SpatialView(values, f"{label} (not a gate)", False, "mean activation", note,
                       all_channels=k == record.channels < top_k)
