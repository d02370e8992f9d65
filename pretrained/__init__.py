"""Where weights come from: bundled offline weights, timm ImageNet weights, official checkpoints."""
from .timm_convert import convert_timm_state_dict

__all__ = ["convert_timm_state_dict"]
