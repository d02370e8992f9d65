"""A map to draw over the image, and the one rule for its colour scale.

A gate (CBAM's spatial attention) is absolute: it is drawn on a fixed 0-1 scale, so the same colour
means the same gate everywhere, unless the user asks to stretch it. Anything else (an SE/ECA
channel-activity map, an attribution map) has no fixed range and is always stretched to its own
finite values. A map with nothing to show (`note`) is drawn bare. Maps of one quantity drawn side
by side to be compared (a block's map before and after an edit) share one range (`joint_range`).
"""
from dataclasses import dataclass

import numpy as np

MIXED_SCALES = ("These maps are not the same kind of quantity: a spatial gate is a weight between 0 and 1, drawn on "
                "a fixed scale, while a block without one shows where its most-weighted channels fire, stretched to "
                "its own range. Compare where each map is high, not its colours across models.")


def display_range(values, stretch: bool) -> tuple[float, float]:
    """0..1 (gates are absolute) or, with `stretch`, the min..max of the map's finite values (a
    NaN or infinite cell, as from a diverged model, must not flatten the rest)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not stretch or finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


@dataclass(frozen=True)
class SpatialView:
    values: np.ndarray   # [h, w]
    label: str           # what the map is, for titles and captions
    absolute: bool       # True: a gate in [0, 1], shown on a fixed 0..1 scale by default
    units: str           # what a value is, for colour-scale labels: "gate value" or "mean activation"
    note: str = ""       # set when the map shows nothing (all zero): say this instead of drawing it
    all_channels: bool = False   # SE/ECA: the block has fewer channels than top-k asked for, all averaged

    def stretched(self, stretch: bool) -> bool:
        """Whether this map is drawn over its own range (`stretch`: what the user asked for gates)."""
        return stretch or not self.absolute

    def display_range(self, stretch: bool) -> tuple[float, float]:
        return display_range(self.values, self.stretched(stretch))

    def scale_caption(self, stretch: bool, joint: tuple[float, float] | None = None) -> str:
        """What the colours mean, e.g. '0.00 to 1.00: gate value, fixed scale'; `joint`: the range
        this map shares with the maps beside it (`joint_range`)."""
        lo, hi = joint or self.display_range(stretch)
        how = (f"{self.units}, fixed scale" if not self.stretched(stretch) else
               f"{self.units}, one scale for the maps side by side" if joint else "stretched to this map's range")
        return f"{lo:.2f} to {hi:.2f}: {how}"

    @property
    def size(self) -> str:
        """'7\u00a0x\u00a07': the map's cells, kept on one line."""
        return f"{self.values.shape[0]}\u00a0x\u00a0{self.values.shape[1]}"


def shared_scale(views, stretch: bool) -> bool:
    """Whether maps drawn side by side share one colour scale: only fixed-scale gates do."""
    return not any(view.stretched(stretch) for view in views)


def joint_range(views, stretch: bool) -> tuple[float, float]:
    """One colour range for maps of one quantity compared side by side: 0..1 when all are fixed-scale
    gates, else the min..max of all their finite values, so equal colours mean equal values. Maps
    with nothing to draw (`note`) do not set it."""
    drawn = [view for view in views if not view.note] or list(views)
    values = np.concatenate([np.ravel(view.values) for view in drawn])
    return display_range(values, not shared_scale(drawn, stretch))
