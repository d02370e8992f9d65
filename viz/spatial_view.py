"""Which map to show over the image for a block: CBAM's spatial gate, or -- for SE/ECA, which have
no spatial gate -- where the block's most-excited channels fire, clearly labelled as such."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpatialView:
    values: np.ndarray   # [h, w]
    label: str           # what the map is, for titles and captions
    absolute: bool       # True: a gate in [0, 1], shown on a fixed 0..1 scale by default


def spatial_view(record, index: int = 0, top_k: int = 8) -> SpatialView:
    """The map for image `index` of a capture record (`blocks.capture.AttentionRecord`)."""
    if record.spatial is not None:
        return SpatialView(record.spatial[index].numpy(), "spatial attention (CBAM gate)", True)
    k = max(1, min(top_k, record.top_maps.shape[1]))
    return SpatialView(record.activity(k)[index].numpy(),
                       f"where the top-{k} weighted channels fire (not a gate)", False)
