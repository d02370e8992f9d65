"""Spatial attention over the image: CBAM's spatial gate (or a channel-activity map) upsampled
onto the image exactly as the model saw it, i.e. after resize and crop."""
import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from .figure import new_figure
from .markup import literal
from .spatial_view import SpatialView, display_range
from .upsample import as_map, upsample

# perceptually uniform (Borland & Taylor, "Rainbow Color Map (Still) Considered Harmful", IEEE CG&A 2007;
# matplotlib's own guidance): with jet, gates of 0.5-1 all look orange-red and its bands read as edges
DEFAULT_CMAP = "viridis"

EDGE = 128               # grey frame of a colour strip


def overlay(image: Image.Image, attention_map, *, cmap: str = DEFAULT_CMAP, alpha: float = 0.5,
            stretch: bool = False, cells: bool = False, value_range: tuple[float, float] | None = None) -> Image.Image:
    """The image with the upsampled map blended on top, colour-mapped over `display_range`, or over
    `value_range` when given (a `joint_range` shared with other maps); `cells`: one flat colour per
    feature-map cell instead of bilinear smoothing."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    m = as_map(attention_map)
    values = upsample(m, rgb.shape[:2], cells)
    lo, hi = value_range or display_range(m, stretch)   # the range the map's caption states
    colours = matplotlib.colormaps[cmap](np.clip((values - lo) / (hi - lo), 0, 1))[..., :3] * 255
    return Image.fromarray(((1 - alpha) * rgb + alpha * colours).round().astype(np.uint8))


def colorbar_strip(cmap: str, width: int = 256, height: int = 14) -> Image.Image:
    """A horizontal colour scale, low on the left, for captions under an overlay, framed by a grey
    edge so that its white or black end stays visible on any page."""
    ramp = matplotlib.colormaps[cmap](np.linspace(0, 1, width - 2))[None, :, :3] * 255
    strip = np.full((height, width, 3), EDGE, dtype=np.float64)
    strip[1:-1, 1:-1] = ramp
    return Image.fromarray(strip.round().astype(np.uint8))


def heatmap_figure(image: Image.Image, attention_map, *, cmap: str = DEFAULT_CMAP, alpha: float = 0.5,
                   stretch: bool = False, title: str | None = None, colorbar: bool = True,
                   units: str = "gate value", cells: bool = False) -> Figure:
    """`overlay` as a figure with a title (wrapped to the figure's width) and a colorbar labelled
    with the map's `units` and its scale (fixed 0-1 or stretched)."""
    lo, hi = display_range(as_map(attention_map), stretch)
    fig = new_figure(4.2 if colorbar else 3.6, 3.6)
    ax = fig.add_subplot()
    ax.imshow(overlay(image, attention_map, cmap=cmap, alpha=alpha, stretch=stretch, cells=cells))
    ax.set_axis_off()
    if title:
        ax.set_title(literal(title), fontsize=10, wrap=True)
    if colorbar:
        scale = "stretched to this map" if stretch else "fixed 0-1 scale"
        fig.colorbar(ScalarMappable(Normalize(lo, hi), cmap), ax=ax, shrink=0.8, label=f"{units} ({scale})")
    return fig


def spatial_view_figure(image: Image.Image, view: SpatialView, *, cmap: str = DEFAULT_CMAP, alpha: float = 0.5,
                        stretch: bool = False, title: str | None = None, cells: bool = False) -> Figure:
    """`heatmap_figure` of a `SpatialView`, titled `title` (default: the view's label) and its note.
    SE/ECA activity is always stretched; a view with nothing to show (`view.note`) leaves the
    image bare, without a colorbar."""
    title = "\n".join(filter(None, (title or view.label, view.note)))
    if view.note:
        return heatmap_figure(image, view.values, alpha=0.0, title=title, colorbar=False)
    return heatmap_figure(image, view.values, cmap=cmap, alpha=alpha, stretch=view.stretched(stretch),
                          title=title, units=view.units, cells=cells)
