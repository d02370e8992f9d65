"""Attention blocks (SE, ECA, CBAM), the attention ResNet they go into, and capture of their gates."""
from .attribution import grad_cam, grad_cams, residual_blocks, score_cam
from .capture import (ACTIVITY_CHANNELS, AttentionRecord, Capture, Intervention, capture_attention, interventions,
                      strongest_channels)
from .cbam import CBAMBlock, ChannelAttentionConv, ChannelAttentionMLP, SpatialAttention
from .checks import eca_kernel_size
from .eca import ECABlock
from .resnet import AttentionOptions, AttentionResNet, attention_resnet
from .se import SEBlock
from .sites import AttentionKind, AttentionSite, attention_kind, attention_kinds, attention_sites

__all__ = [
    "SEBlock", "ECABlock", "CBAMBlock", "ChannelAttentionMLP", "ChannelAttentionConv",
    "SpatialAttention", "eca_kernel_size", "AttentionOptions", "AttentionResNet", "attention_resnet",
    "capture_attention", "attention_sites", "AttentionSite", "AttentionKind", "attention_kind", "attention_kinds",
    "interventions", "strongest_channels", "Capture",
    "AttentionRecord", "Intervention", "ACTIVITY_CHANNELS", "grad_cam", "grad_cams", "score_cam", "residual_blocks",
]
