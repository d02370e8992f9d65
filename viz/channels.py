"""Channel-weight charts: one block's excitations (SE paper Fig. 6 style) and their spread by depth."""
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .figure import new_figure
from .markup import literal

BAR, TOP_BAR = "#3b75af", "#f28e2b"   # every channel; the top-k channels
LISTED = 10                            # sorted charts list at most this many top-k channels


def spaced(channels, gap: float) -> list[int]:
    """Those of `channels` (strongest first) that get a text label: each at least `gap` bar
    positions from every label placed before it, so labels of neighbouring channels (common when
    gates saturate at 1) never print over each other. The others stay highlighted, unlabelled."""
    placed = []
    for c in channels:
        if all(abs(int(c) - p) >= gap for p in placed):
            placed.append(int(c))
    return placed


def one_block(weights) -> np.ndarray:
    """A block's [C] channel weights as floats; [1, C] (one image's record row) is accepted."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be one block's [C] channel weights, got shape {list(w.shape)}: "
                         "pass record.channel[i] for image i")
    return w


def fixed_limits(w: np.ndarray) -> tuple[float, float]:
    """0..1 with room for labels, widened to show any weight outside [0, 1] (a custom gate)."""
    return min(0.0, float(np.nanmin(w))), max(1.08, float(np.nanmax(w)) * 1.05)


def channel_weights_figure(weights, *, sort: bool = False, top_k: int = 5, fixed_scale: bool = True,
                           title: str | None = None) -> Figure:
    """Bar chart of a block's C channel weights (C up to 2048+) drawn as one `stairs` artist.

    `sort` orders bars by weight (x becomes the rank); the `top_k` highest are highlighted and
    labelled with their channel index (over their bars where the labels fit; sorted, where they
    would stack, listed in the legend instead, at most `LISTED` then "... and N more"); a dashed
    line marks the mean; the y axis is 0..1 unless not `fixed_scale`. The legend sits right of
    the bars, so it never covers them.
    """
    w = one_block(weights)
    order = np.argsort(-w, kind="stable")
    shown = w[order] if sort else w
    fig = new_figure(7.0, 2.6)
    ax = fig.add_subplot()
    top = order[:max(0, top_k)]
    edges = np.arange(len(w) + 1) + (0.5 if sort else -0.5)     # sorted: ranks 1..C, 1 the strongest
    ax.stairs(shown, edges, fill=True, color=BAR, linewidth=0)
    is_top = np.zeros(len(w), bool)
    is_top[np.arange(len(top)) if sort else top] = True
    top_bars = ax.stairs(np.where(is_top, shown, 0), edges, fill=True, color=TOP_BAR, linewidth=0)
    mean = ax.axhline(w.mean(), color="#d62728", linestyle="--", linewidth=1)
    listing = []
    if sort:
        listing = [f"#{c}: {w[c]:.3f}" for c in top[:LISTED]]
        if len(top) > LISTED:
            listing.append(f"... and {len(top) - LISTED} more")
    else:
        for c in spaced(top, gap=0.04 * len(w)):   # a label is ~4% of the axis wide
            ax.annotate(str(c), (c, w[c]), xytext=(0, 3), textcoords="offset points", ha="center",
                        fontsize=7, color="#222222")
    blank = Line2D([], [], linestyle="none")
    legend = ax.legend([top_bars, *[blank] * len(listing), mean],
                       [f"top {len(top)}", *listing, f"mean {w.mean():.3f}"],
                       loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, labelspacing=0.3, framealpha=1)
    for text in legend.get_texts()[1:-1]:
        text.set_family("monospace")
    ax.set_xlim(edges[0], edges[-1])
    if fixed_scale:
        ax.set_ylim(*fixed_limits(w))
    ax.set_xlabel("channels sorted by weight (rank)" if sort else "channel")
    ax.set_ylabel("weight")
    ax.set_title(literal(title) if title else f"{len(w)} channel weights", fontsize=10)
    return fig


def channel_depth_figure(names: list[str], weights: list, title: str = "Channel weights by depth") -> Figure:
    """One box per block (median, quartiles, 5-95% whiskers) of its channel weights, in forward
    order: shows where excitations are flat, saturated near 1 or class-specific (SE paper Sec. 7.2)."""
    fig = new_figure(max(5.0, 0.38 * len(names) + 1.5), 3.0)
    ax = fig.add_subplot()
    data = [np.asarray(w, dtype=np.float64).ravel() for w in weights]
    ax.boxplot(data, whis=(5, 95), showfliers=False, widths=0.6, patch_artist=True,
               boxprops=dict(facecolor="#9ecae1", edgecolor="#3b75af"),
               medianprops=dict(color="#d62728"))
    ax.set_xticks(np.arange(1, len(names) + 1), names, rotation=90, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("channel weight")
    ax.set_title(literal(title), fontsize=10)
    return fig


def channel_weights_chart(weights, *, sort: bool = False, top_k: int = 5, fixed_scale: bool = True) -> dict:
    """The same chart as `channel_weights_figure`, as an interactive Vega-Lite spec for the
    browser: hover a bar for its channel and weight. Written as a plain dict: building it through
    Altair took ~75 ms for 2048 channels, on every new image (the tests check it with Altair's
    Vega-Lite schema)."""
    w = one_block(weights)
    order = np.argsort(-w, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(1, len(w) + 1)                  # 1 = the strongest channel
    rows = [{"channel": c, "rank": int(r), "weight": float(v), "top": bool(r <= top_k)}
            for c, (r, v) in enumerate(zip(rank, w))]
    x_field, x_title = ("rank", "channels sorted by weight (rank)") if sort else ("channel", "channel")
    first = 1 if sort else 0
    half = 0.4 if len(w) <= 256 else 0.5                    # each bar fills its slot, with a gap if it is wide
    x_scale = {"domain": [first - 0.5, first + len(w) - 0.5], "nice": False}
    y_scale = {"domain": list(fixed_limits(w))} if fixed_scale else {"zero": True}
    # a label is ~8% of a half-page chart wide; sorted, the top-k sit side by side at ranks 1..k
    labelled = set(spaced([rows[c][x_field] for c in order[:max(0, top_k)]], gap=0.08 * len(w)))
    quantity = "quantitative"
    bars = {"data": {"name": "bars"}, "mark": {"type": "rect"},
            "transform": [{"calculate": f"datum.{x_field} - {half}", "as": "left"},    # computed in the
                          {"calculate": f"datum.{x_field} + {half}", "as": "right"}],  # browser: less data
            "encoding": {"x": {"field": "left", "type": quantity, "title": x_title, "scale": x_scale},
                         "x2": {"field": "right"},
                         "y": {"field": "weight", "type": quantity, "title": "weight", "scale": y_scale},
                         "y2": {"datum": 0},
                         "color": {"condition": {"test": "datum.top", "value": TOP_BAR}, "value": BAR},
                         "tooltip": [{"field": "channel", "type": quantity},
                                     {"field": "weight", "type": quantity, "format": ".4f"},
                                     {"field": "rank", "type": quantity}]}}
    labels = {"data": {"name": "labels"}, "mark": {"type": "text", "dy": -7, "fontSize": 11},
              "encoding": {"x": {"field": x_field, "type": quantity, "title": x_title, "scale": x_scale},
                           "y": {"field": "weight", "type": quantity},
                           "text": {"field": "channel", "type": quantity}}}
    mean = {"data": {"name": "mean"}, "mark": {"type": "rule", "color": "#d62728", "strokeDash": [4, 3]},
            "encoding": {"y": {"field": "mean", "type": quantity},
                         "tooltip": [{"field": "mean", "type": quantity, "format": ".4f"}]}}
    return {"height": 320, "title": f"{len(w)} channels, mean {w.mean():.3f}",     # fits a third of 1280 px
            "datasets": {"bars": rows, "labels": [r for r in rows if r[x_field] in labelled],
                         "mean": [{"mean": float(w.mean())}]},
            "layer": [bars, labels, mean]}


def channel_depth_chart(names: list[str], weights: list):
    """`channel_depth_figure` as a Vega-Lite chart built from five quantiles per block."""
    import altair as alt
    import pandas as pd
    q = np.array([np.percentile(np.asarray(w, dtype=np.float64).ravel(), [5, 25, 50, 75, 95]) for w in weights])
    data = pd.DataFrame({"block": names, "p5": q[:, 0], "p25": q[:, 1], "median": q[:, 2], "p75": q[:, 3],
                         "p95": q[:, 4]})
    x = alt.X("block:N", sort=names, title=None)
    y = alt.Scale(domain=[0, 1])
    whisker = alt.Chart(data).mark_rule().encode(x=x, y=alt.Y("p5:Q", scale=y, title="channel weight"), y2="p95:Q")
    box = alt.Chart(data).mark_bar(size=14, color="#9ecae1").encode(x=x, y="p25:Q", y2="p75:Q",
                                                                     tooltip=list(data.columns))
    median = alt.Chart(data).mark_tick(color="#d62728", size=14, thickness=2).encode(x=x, y="median:Q")
    return (whisker + box + median).properties(height=260, title="Channel weights by depth (5/25/50/75/95%)")


def channel_agreement_chart(names: list[str], values: list[float]):
    """The correlations as a Vega-Lite line over depth, -1..1, with the block names on the x axis."""
    import altair as alt
    import pandas as pd
    data = pd.DataFrame({"block": names, "correlation": [None if np.isnan(v) else v for v in values]})
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("block:N", sort=names, title=None),
        y=alt.Y("correlation:Q", scale=alt.Scale(domain=[-1, 1]), title="correlation"),
        tooltip=["block:N", alt.Tooltip("correlation:Q", format=".3f")],
    ).properties(height=300, title="Correlation of the two images' channel weights, block by block")
