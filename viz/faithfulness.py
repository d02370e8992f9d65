"""Deletion and insertion (`lens.faithfulness`) drawn: arrays in, Figures out.

- `faithfulness_figure`: one block on one image, deletion beside insertion: a line per map (the
  block's map, Grad-CAM, a centred Gaussian...), the random maps as their mean (dashed) and their
  pointwise 5-95% band (shaded). The app's Block view and `lens report` draw it.
- `faithfulness_grid_figure`: the same for every block of an image, two blocks a row, one legend.
- `faithfulness_depth_figure`: a study's mean AUCs per block, the random band shaded, and the share
  of images on which each map beats the band.
"""
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .figure import new_figure
from .markup import literal

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")   # maps in the order given
RANDOM_COLOUR = "#7f7f7f"
READING = ("highest-ranked pixels first; deletion: lower = the model uses what the map marks; "
           "insertion: higher = it does")


@dataclass(frozen=True)
class CurvePanel:
    """One block's curves on one image, as drawn. `deletion` and `insertion` map a label to its
    curve [S+1] over `fractions` [S+1]; `random_deletion` and `random_insertion` [R, S+1] are the
    random maps' curves, drawn as their mean and their pointwise `band` quantiles."""
    title: str
    fractions: np.ndarray
    deletion: dict[str, np.ndarray]
    insertion: dict[str, np.ndarray]
    random_deletion: np.ndarray
    random_insertion: np.ndarray
    band: tuple[float, float] = (0.05, 0.95)

    def random_curves(self, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The random maps' (mean, low, high) curves [S+1] of "deletion" or "insertion"."""
        curves = np.asarray(self.random_deletion if which == "deletion" else self.random_insertion, np.float64)
        low, high = np.quantile(curves, self.band, axis=0)
        return curves.mean(0), low, high


def draw_curves(deletion_ax: Axes, insertion_ax: Axes, panel: CurvePanel) -> None:
    """`panel`'s deletion curves on one axes, its insertion curves on the other."""
    x = np.asarray(panel.fractions, np.float64)
    band = f"random maps, {panel.band[0]:.0%}-{panel.band[1]:.0%}"
    for ax, which, lines in ((deletion_ax, "deletion", panel.deletion), (insertion_ax, "insertion", panel.insertion)):
        mean, low, high = panel.random_curves(which)
        ax.fill_between(x, low, high, color=RANDOM_COLOUR, alpha=0.25, linewidth=0, label=band)
        ax.plot(x, mean, "--", color=RANDOM_COLOUR, linewidth=1, label="random maps, mean")
        for (label, curve), colour in zip(lines.items(), COLOURS):
            ax.plot(x, np.asarray(curve, np.float64), color=colour, linewidth=1.3, label=literal(label))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    deletion_ax.set_xlabel("share of pixels removed", fontsize=7)
    insertion_ax.set_xlabel("share of pixels restored", fontsize=7)
    deletion_ax.set_ylabel("probability of the class", fontsize=7)
    deletion_ax.set_title(f"{literal(panel.title)}: deletion", fontsize=8)
    insertion_ax.set_title(f"{literal(panel.title)}: insertion", fontsize=8)


def faithfulness_figure(panel: CurvePanel) -> Figure:
    """One block's deletion and insertion side by side, with a legend under them."""
    fig = new_figure(7.0, 3.2)
    deletion_ax, insertion_ax = fig.subplots(1, 2)
    draw_curves(deletion_ax, insertion_ax, panel)
    handles, labels = insertion_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(READING, fontsize=8)
    return fig


def faithfulness_grid_figure(panels: list[CurvePanel], title: str = "", columns: int = 2) -> Figure:
    """Every panel (one per block, in order), `columns` blocks a row, one legend for all."""
    if not panels:
        raise ValueError("no blocks to draw: faithfulness needs at least one block's curves")
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig = new_figure(3.6 * columns + 0.4, 2.3 * rows + 1.0)
    axes = fig.subplots(rows, 2 * columns, squeeze=False)
    for ax in axes.ravel()[2 * len(panels):]:
        ax.set_axis_off()
    for i, panel in enumerate(panels):
        row, column = divmod(i, columns)
        draw_curves(axes[row, 2 * column], axes[row, 2 * column + 1], panel)
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle("\n".join(filter(None, (literal(title), READING))), fontsize=9, wrap=True)
    return fig


def faithfulness_depth_figure(blocks: list[str], deletion: dict[str, list], insertion: dict[str, list],
                              random_deletion: tuple[list, list, list], random_insertion: tuple[list, list, list],
                              better: dict[str, list] | None = None, title: str = "") -> Figure:
    """A study's faithfulness per block in forward order: the mean deletion and insertion AUC of
    each map (`deletion`/`insertion`: label -> one value per block, None where not scored) beside
    the random maps' (mean, band low, band high) per block, shaded; and `better` (label -> per
    block, the share of images where that map's deletion AUC fell below its image's random band)."""
    panels = 3 if better else 2
    fig = new_figure(min(16.0, max(6.0, 0.3 * len(blocks) * panels + 3.0)), 3.4)
    axes = fig.subplots(1, panels)
    x = np.arange(len(blocks))

    def values(column) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in column], dtype=np.float64)

    for ax, name, lines, (mean, low, high) in ((axes[0], "deletion AUC (lower = used)", deletion, random_deletion),
                                                (axes[1], "insertion AUC (higher = used)", insertion, random_insertion)):
        ax.fill_between(x, values(low), values(high), color=RANDOM_COLOUR, alpha=0.25, linewidth=0,
                        label="random maps' band (mean of each image's 5-95%)")
        ax.plot(x, values(mean), "--", color=RANDOM_COLOUR, linewidth=1, label="random maps, mean")
        for (label, column), colour in zip(lines.items(), COLOURS):
            ax.plot(x, values(column), "o-", color=colour, markersize=3, label=literal(label))
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1.02)
    if better:
        for (label, column), colour in zip(better.items(), COLOURS):
            axes[2].plot(x, values(column), "o-", color=colour, markersize=3, label=literal(label))
        axes[2].set_title("share of images better than chance (deletion)", fontsize=9)
        axes[2].set_ylim(0, 1.02)
    for ax in axes:
        ax.set_xticks(x, [literal(b) for b in blocks], rotation=90, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    if title:
        fig.suptitle(literal(title), fontsize=9, wrap=True)
    return fig
