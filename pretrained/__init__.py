"""Where weights come from: bundled offline weights, timm ImageNet weights, the papers' official
checkpoints, a user's own file. Importing this package reads nothing and downloads nothing."""
from .checkpoint import CheckpointError, load_weights, read_state_dict
from .device import resolve_device
from .image import ImageError, decode_image, frames_note
from .imagenet import ModelUnavailable, weights_home
from .preprocess import Preprocess
from .registry import DEFAULT_MODEL, WEIGHTS_SUFFIXES, LoadedModel, ModelEntry, available, class_names, load
from .timm_convert import convert_timm_state_dict

__all__ = ["available", "load", "resolve_device", "DEFAULT_MODEL", "ModelEntry", "LoadedModel", "Preprocess",
           "CheckpointError", "ModelUnavailable", "read_state_dict", "load_weights",
           "convert_timm_state_dict", "class_names", "WEIGHTS_SUFFIXES", "decode_image", "ImageError",
           "frames_note", "weights_home"]
