"""How well a spatial attention map sits on an object, given the object's mask.

Score = (share of the map's mass, upsampled to the image, that falls inside the mask) / (the
mask's share of the image): 1.0 is no better than uniform attention, higher is better, and the
most any map can reach is 1 / (mask share).
"""
import numpy as np

from viz.upsample import upsample


def localisation_score(attention_map, mask) -> float:
    """Mass of the upsampled map inside `mask` ([H, W] bool) relative to uniform attention;
    NaN for a map with no mass at all (it points nowhere)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask is empty: there is no object to score against")
    values = upsample(attention_map, mask.shape)
    total = values.sum()
    return float(values[mask].sum() / total / mask.mean()) if total > 0 else float("nan")
