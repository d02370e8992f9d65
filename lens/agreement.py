"""How alike two sets of numbers are, for two questions.

Do two images excite the same channels? The correlation of their channel weights, block by block
(Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018, Sec. 7.2 and Fig. 6: early blocks excite
the same channels for every class, later blocks become class-specific).

Does a block's attention map rank the same cells first as a class's attribution map? Spearman's
rank correlation over the map's cells: it compares orders only, so a gate on 0-1 and an
unnormalised Grad-CAM map need no common scale.
"""
import numpy as np

CAM_READING = ("High agreement says the block weights the places that the prediction uses; low agreement says its "
               "attention is spent elsewhere. Neither map proves what the model knows: Grad-CAM is one explanation "
               "method among several, sensitive to where it is taken.")
SCALE_FREE = "It compares orders, so the gate's 0-1 scale and Grad-CAM's unnormalised one need no common scale."


def channel_agreement(records_a, records_b, index: int = 0) -> list[float]:
    """Per block, the Pearson correlation between image `index`'s channel weights in two captures
    of the same model (`blocks.capture.AttentionRecord` lists); NaN where either image's weights
    are all equal (a saturated gate), which correlate with nothing."""
    if [r.name for r in records_a] != [r.name for r in records_b]:
        raise ValueError("the two captures must come from the same model: their blocks differ")
    return [pearson(a.channel[index].numpy(), b.channel[index].numpy()) for a, b in zip(records_a, records_b)]


def pearson(x, y) -> float:
    """The Pearson correlation of two equally long arrays; NaN where either is constant."""
    x, y = (np.asarray(v, dtype=np.float64).ravel() for v in (x, y))
    x, y = x - x.mean(), y - y.mean()
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / norm) if norm > 0 else float("nan")


def ranks(values) -> np.ndarray:
    """1-based ranks of `values` (flattened), tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.empty(values.size)
    order[values.argsort(kind="stable")] = np.arange(1, values.size + 1)
    _, tie, count = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(tie, order) / count)[tie]


def rank_agreement(map_a, map_b) -> float:
    """Spearman's rank correlation of two maps of the same shape, cell by cell; NaN where either
    map is flat (an empty map ranks nothing)."""
    map_a, map_b = np.asarray(map_a), np.asarray(map_b)
    if map_a.shape != map_b.shape:
        raise ValueError(f"the maps must have the same cells: {list(map_a.shape)} vs {list(map_b.shape)}")
    return pearson(ranks(map_a), ranks(map_b))
