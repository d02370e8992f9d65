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


EDIT_ACTS = {"gate_off": ("Switching `{block}`'s attention off", "this block's attention"),
             "channel_gate_off": ("Switching `{block}`'s channel gate off", "this channel gate"),
             "spatial_gate_off": ("Switching `{block}`'s spatial gate off", "this spatial gate"),
             "zero_top_k": ("Zeroing `{block}`'s top-{k} channels", "these channels")}
OUTCOMES = {
    "raised": "{act} **raised** the probability of '{label}' from {p0} to {p1}. On this image {subject} held back "
              "evidence for '{label}', or the edit shifted the model's calibration (how sure it is) without adding "
              "evidence; it does not show that attention is harmful: the rest of the model was trained with it in place.",
    "lowered": "{act} **lowered** the probability of '{label}' from {p0} to {p1}: on this image the prediction is "
               "sensitive to {subject}. It does not show that what {subject} favours causes the class: the edit "
               "rescales the whole branch at once, and the blocks after it get features unlike those they were "
               "trained on.",
    "unchanged": "{act} moved the probability of '{label}' by less than {points} points ({p0} to {p1}): on this "
                 "image the prediction does not rely on {subject} (the shortcut carries the block's input past it, "
                 "and the blocks after it can make up for the change)."}


def explanation(edit: Intervention, before: float, after: float, label: str, zeroed: int) -> str:
    """What an edit did to a class's probability (0..1) and what that does and does not show, in
    markdown (`label` already made literal by the caller; `zeroed`: the channels "zero_top_k" zeroes)."""
    act, subject = EDIT_ACTS[edit.mode]
    return OUTCOMES[outcome(before, after)].format(
        act=act.format(block=edit.block, k=zeroed), subject=subject, label=label, p0=f"{before:.2%}",
        p1=f"{after:.2%}", points=UNCHANGED_POINTS)
