"""Efficient Channel Attention block.

Wang, Wu, Zhu, Li, Zuo, Hu. "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020 (arXiv:1910.03151), Fig. 2: global average pool -> 1-D convolution of size k
across channels (no dimensionality reduction, no bias) -> sigmoid -> scale. k is adaptive
(Eq. 12, `eca_kernel_size`) unless given; the official ImageNet weights fix k per stage.
"""
import torch
from torch import nn

from .checks import check_odd_kernel, eca_kernel_size
from .scale import scale


class ECABlock(nn.Module):
    """Channel attention by local cross-channel interaction; `gate` emits [B, C]."""

    def __init__(self, channels: int, gamma: float = 2, b: float = 1, k_size: int | None = None,
                 inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        k = eca_kernel_size(channels, gamma, b) if k_size is None else check_odd_kernel("ECA k_size", k_size)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3))                               # [B, C]
        w = self.gate(self.conv(s[:, None, :])[:, 0])    # [B, C]
        return scale(x, w[:, :, None, None], self.inplace)  # [B, C, H, W]
