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


def channel_agreement_chart(names: list[str], values: list[float]):
    """The correlations as a Vega-Lite line over depth, -1..1, with the block names on the x axis."""
    import altair as alt
    import pandas as pd
    data = pd.DataFrame({"block": names, "correlation": [None if np.isnan(v) else v for v in values]})
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("block:N", sort=names, title=None),
        y=alt.Y("correlation:Q", scale=alt.Scale(domain=[-1, 1]), title="correlation of channel weights"),
        tooltip=["block:N", alt.Tooltip("correlation:Q", format=".3f")],
    ).properties(height=300)
