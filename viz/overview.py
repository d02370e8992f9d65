"""All blocks at once: a stage x block grid of spatial maps over the image."""
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from .figure import new_figure
from .heatmap import overlay
from .spatial_view import spatial_view


def spatial_grid_figure(image: Image.Image, records, index: int = 0, *, cmap: str = "jet",
                        alpha: float = 0.5, stretch: bool = False, top_k: int = 8, cells: bool = False) -> Figure:
    """One row per stage, one column per block. CBAM gates share a 0..1 colour scale (unless
    `stretch`); SE/ECA channel-activity maps are always stretched per map (the title says so), one
    with fewer than `top_k` channels averages all of them ("all C"), and one that is all zero
    (`SpatialView.note`) is left off its image and titled "(all zero)"."""
    if not records:
        raise ValueError("no attention records to draw: the capture found no SE, ECA or CBAM blocks")
    rows = sorted({r.stage for r in records}, key=lambda s: (s is None, s))
    by_row = {s: [r for r in records if r.stage == s] for s in rows}
    cols = max(len(v) for v in by_row.values())
    fig = new_figure(1.6 * cols + 0.8, 1.7 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    label = ""
    for i, stage in enumerate(rows):
        for j, record in enumerate(by_row[stage]):
            view = spatial_view(record, index, top_k)
            label = view.label
            ax = axes[i, j]
            ax.imshow(overlay(image, view.values, cmap=cmap, alpha=0.0 if view.note else alpha,
                              stretch=stretch or not view.absolute, cells=cells))
            ax.set_title(f"{record.name} {view.values.shape[0]}x{view.values.shape[1]}"
                         + (f", all {record.channels}" if view.all_channels else "")
                         + (" (all zero)" if view.note else ""), fontsize=7)
    fixed = all(r.spatial is not None for r in records) and not stretch
    fig.suptitle(label if fixed else f"{label}\neach map stretched to its own range: colours do not compare "
                 "across blocks", fontsize=9)
    if fixed:
        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=axes, shrink=0.6, label="gate")
    return fig
