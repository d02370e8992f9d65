"""Attention blocks (SE, ECA, CBAM), the attention ResNet they go into, and capture of their gates."""
from .capture import (AttentionRecord, Capture, Intervention, attention_sites, capture_attention,
                      strongest_channels)
from .cbam import CBAMBlock, ChannelAttentionConv, ChannelAttentionMLP, SpatialAttention
from .checks import eca_kernel_size
from .eca import ECABlock
from .resnet import AttentionOptions, AttentionResNet, attention_resnet
from .se import SEBlock

__all__ = [
    "SEBlock", "ECABlock", "CBAMBlock", "ChannelAttentionMLP", "ChannelAttentionConv",
    "SpatialAttention", "eca_kernel_size", "AttentionOptions", "AttentionResNet", "attention_resnet",
    "capture_attention", "attention_sites", "strongest_channels", "Capture", "AttentionRecord", "Intervention",
]
