"""Pure drawing functions: arrays and capture records in, matplotlib Figures or PIL images out.
No Streamlit, no pyplot."""
from .channels import channel_depth_figure, channel_weights_figure
from .figure import figure_png, new_figure
from .heatmap import colorbar_strip, heatmap_figure, overlay, spatial_view_figure, upsample
from .overview import spatial_grid_figure
from .spatial_view import SpatialView, spatial_view

__all__ = ["channel_weights_figure", "channel_depth_figure", "figure_png", "new_figure", "heatmap_figure",
           "spatial_view_figure", "overlay", "upsample", "colorbar_strip", "spatial_grid_figure", "SpatialView",
           "spatial_view"]
