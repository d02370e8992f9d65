"""Figures of a dataset study: arrays in, Figures out.

- `excitation_figure`: per class, the mean excitation of every channel of one block (the SE
  paper's Fig. 6, Hu et al., CVPR 2018): lines that lie on each other mean class-agnostic gates.
- `specificity_figure`: class specificity over depth, block by block.
- `channel_health_figure`: dead, saturated and static channels per block.
- `class_maps_figure`: each class's mean spatial map of one block.
"""
import numpy as np
from matplotlib.figure import Figure

from .figure import new_figure
from .heatmap import DEFAULT_CMAP
from .markup import literal
from .upsample import upsample


def excitation_figure(means, class_names, block: str) -> Figure:
    """`means` [K, C]: class k's mean weight of each channel; one line per class."""
    means = np.asarray(means, dtype=np.float64)
    fig = new_figure(7.0, 3.2)
    ax = fig.add_subplot()
    for k, name in enumerate(class_names):
        ax.plot(np.arange(means.shape[1]), means[k], linewidth=0.9, label=literal(name))
    ax.set_xlim(-0.5, means.shape[1] - 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("channel index")
    ax.set_ylabel("mean excitation")
    ax.set_title(f"{literal(block)}: mean channel weights per class", fontsize=10)
    if len(class_names) <= 12:
        ax.legend(fontsize=7, ncol=2, loc="lower right", framealpha=0.8)
    return fig


def specificity_figure(blocks: list[str], curves: dict[str, tuple[list, list]]) -> Figure:
    """Per block in forward order, for each model in `curves` (name -> (inter-class correlation,
    eta squared) per block; None where undefined): the correlation of the classes' mean
    excitations (falls as blocks become class-specific, solid) and eta squared (rises, dashed)."""
    fig = new_figure(max(5.0, 0.42 * len(blocks) + 2.5), 3.4)
    ax = fig.add_subplot()
    x = np.arange(len(blocks))

    def as_float(values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    lowest = 0.0
    for i, (name, (correlation, eta_squared)) in enumerate(curves.items()):
        prefix, colour = (f"{name}: " if name else ""), f"C{i}"
        ax.plot(x, as_float(correlation), "o-", color=colour, label=f"{prefix}inter-class correlation")
        ax.plot(x, as_float(eta_squared), "s--", color=colour, label=f"{prefix}eta squared")
        lowest = np.nanmin([lowest, *as_float(correlation)])      # class means can anti-correlate
    ax.set_xticks(x, blocks, rotation=90, fontsize=7)
    ax.set_ylim(lowest - 0.05, 1.05)
    ax.set_ylabel("correlation; share of variance")
    ax.set_title("Class specificity over depth (solid: correlation of class means; dashed: eta squared)",
                 fontsize=9)
    ax.legend(fontsize=6, loc="best")
    return fig


def channel_health_figure(blocks: list[str], channels: list[int], dead: list[int], saturated: list[int],
                          static: list[int]) -> Figure:
    """Per block: the share of its channels that are dead, saturated, or never vary."""
    fig = new_figure(max(5.0, 0.42 * len(blocks) + 2.0), 3.2)
    ax = fig.add_subplot()
    x, width = np.arange(len(blocks)), 0.27
    total = np.maximum(np.asarray(channels, dtype=np.float64), 1)
    for shift, values, label, colour in ((-width, dead, "dead", "#555555"), (0, saturated, "saturated", "#d62728"),
                                         (width, static, "static", "#3b75af")):
        ax.bar(x + shift, np.asarray(values) / total, width, label=label, color=colour)
    ax.set_xticks(x, blocks, rotation=90, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of the block's channels")
    ax.set_title("Dead, saturated and static channels", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def class_maps_figure(maps, class_names, block: str, image_size: int, cmap: str = DEFAULT_CMAP, fixed: bool = True
                      ) -> Figure:
    """`maps` [K, h, w]: each class's mean spatial map of one block, drawn in image coordinates
    (upsampled to `image_size` as the overlays are), on one shared scale (0 .. 1 for gates when
    `fixed`, else the maps' common range)."""
    maps = np.stack([upsample(m, (image_size, image_size)) for m in np.asarray(maps, dtype=np.float32)])
    columns = min(5, len(maps))
    rows = -(-len(maps) // columns)
    fig = new_figure(1.6 * columns + 0.8, 1.7 * rows + 0.4)
    finite = maps[np.isfinite(maps)]
    low, high = (0.0, 1.0) if fixed else (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, values, name in zip(axes.ravel(), maps, class_names):
        image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high if high > low else low + 1)
        ax.set_title(literal(name), fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(f"{literal(block)}: mean map per class", fontsize=10)
    return fig
