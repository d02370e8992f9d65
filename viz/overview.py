"""All blocks at once: a stage x block grid of spatial maps over the image."""
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from .figure import new_figure
from .markup import literal
from .heatmap import DEFAULT_CMAP, overlay
from .spatial_view import SpatialView, shared_scale


def spatial_grid_figure(image: Image.Image, rows: list[list[tuple[str, SpatialView]]], *, cmap: str = DEFAULT_CMAP,
                        alpha: float = 0.5, stretch: bool = False, cells: bool = False) -> Figure:
    """One row per stage, one column per block: `rows[stage]` holds (title, view) pairs. Gates share
    a 0..1 colour scale (unless `stretch`, or any map is not a gate: then every map is stretched
    to its own range and the title says so); a map with nothing to show (`SpatialView.note`) is
    left off its image."""
    views = [view for row in rows for _, view in row]
    if not views:
        raise ValueError("no attention maps to draw: the capture found no SE, ECA or CBAM blocks")
    cols = max(len(row) for row in rows)
    fig = new_figure(1.6 * cols + 0.8, 1.7 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    fixed = shared_scale(views, stretch)
    for i, row in enumerate(rows):
        for j, (title, view) in enumerate(row):
            axes[i, j].imshow(overlay(image, view.values, cmap=cmap, alpha=0.0 if view.note else alpha,
                                      stretch=not fixed, cells=cells))
            axes[i, j].set_title(literal(title), fontsize=7, wrap=True)
    label = literal(views[-1].label)
    fig.suptitle(label if fixed else f"{label}\neach map stretched to its own range: colours do not compare "
                 "across blocks", fontsize=9)
    if fixed:
        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=axes, shrink=0.6, label="gate")
    return fig
