"""What an edit of one block's attention did: the block's map as the edit left it, and which way
the top class's probability moved.

An edit (`blocks.Intervention`) rescales one residual branch: the block outputs
ReLU(shortcut(x) + s * F(x)) with s its attention, which the edit sets to 1 where it switches a gate
off and to 0 on the channels it zeroes (SE: Hu et al., CVPR 2018, Fig. 3; CBAM: Woo et al., ECCV
2018, Fig. 3). The capture's records keep what the gates computed; the map here is what acted.
"""
from dataclasses import replace

import numpy as np

from blocks import AttentionRecord, Intervention
from viz import SpatialView

from .block_view import spatial_view

UNCHANGED_POINTS = 0.5       # a probability that moves by less (percentage points) reads as unchanged
SWITCHED_OFF = "the edit switched this gate off, so it is 1 at every position by construction"
ZEROED = "the edit zeroed the top-{k} weighted channels, so by construction they fire nowhere (all zero)"


def edited_map(record: AttentionRecord, edit: Intervention, top_k: int) -> SpatialView:
    """The map of the edited block, `record` from the edited capture, as the edit left it. What the
    edit fixes by construction is said in the map's note instead of drawn: a CBAM spatial gate
    switched off is 1 everywhere; SE/ECA channels zeroed fire nowhere. Otherwise the map of the edited
    pass: CBAM's spatial gate after its channel gate was switched off sees unweighted features, and
    SE/ECA's channels fire unweighted once their gate is off."""
    if edit.mode == "zero_top_k" and record.top_maps is not None:
        maps = record.top_maps.clone()                    # [B, K, h, w], ranked as the edit ranks them
        maps[:, :edit.k] = 0
        record = replace(record, top_maps=maps)
    shown = spatial_view(record, top_k=top_k)
    if record.spatial is not None and edit.mode in ("gate_off", "spatial_gate_off"):
        return replace(shown, values=np.ones_like(shown.values), note=SWITCHED_OFF)
    if record.spatial is None and edit.mode == "zero_top_k" and min(top_k, record.channels) <= edit.k:
        return replace(shown, note=ZEROED.format(k=edit.k))
    return shown


def outcome(before: float, after: float) -> str:
    """How an edit moved a class's probability (0..1): "raised", "lowered", or "unchanged" when it
    moved by less than `UNCHANGED_POINTS` percentage points."""
    points = 100 * (after - before)
    return "unchanged" if abs(points) < UNCHANGED_POINTS else "raised" if points > 0 else "lowered"
