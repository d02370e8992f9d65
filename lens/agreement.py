"""Do two images excite the same channels? The correlation of their channel weights, block by
block. Hu et al., "Squeeze-and-Excitation Networks" (CVPR 2018), Sec. 7.2 and Fig. 6: early blocks
excite the same channels for every class, later blocks become class-specific."""
import numpy as np


def channel_agreement(records_a, records_b, index: int = 0) -> list[float]:
    """Per block, the Pearson correlation between image `index`'s channel weights in two captures
    of the same model (`blocks.capture.AttentionRecord` lists); NaN where either image's weights
    are all equal (a saturated gate), which correlate with nothing."""
    if [r.name for r in records_a] != [r.name for r in records_b]:
        raise ValueError("the two captures must come from the same model: their blocks differ")
    values = []
    for a, b in zip(records_a, records_b):
        x, y = (r.channel[index].double().numpy() for r in (a, b))
        x, y = x - x.mean(), y - y.mean()
        norm = np.linalg.norm(x) * np.linalg.norm(y)
        values.append(float(x @ y / norm) if norm > 0 else float("nan"))
    return values
