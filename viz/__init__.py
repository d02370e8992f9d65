"""Pure drawing functions: arrays and views in, matplotlib Figures, PIL images or chart specs out.
No Streamlit, no pyplot; imports neither `pretrained` nor `lens`."""
from .channels import channel_depth_figure, channel_weights_figure
from .figure import figure_png, new_figure
from .heatmap import DEFAULT_CMAP, colorbar_strip, heatmap_figure, overlay, spatial_view_figure
from .overview import spatial_grid_figure
from .spatial_view import SpatialView, display_range, joint_range, shared_scale
from .upsample import upsample

__all__ = ["DEFAULT_CMAP", "channel_weights_figure", "channel_depth_figure", "figure_png", "new_figure", "heatmap_figure",
           "spatial_view_figure", "overlay", "upsample", "colorbar_strip", "spatial_grid_figure", "SpatialView",
           "display_range", "joint_range", "shared_scale"]
