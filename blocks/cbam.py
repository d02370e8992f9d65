"""Convolutional Block Attention Module: channel attention, then spatial attention.

Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521).
Channel (Eq. 2): a shared MLP over the avg- and max-pooled descriptors, summed, sigmoid.
Spatial (Eq. 3): channel-wise [max, mean] maps (the official code's order) -> k x k conv (no
bias) -> BatchNorm (official code; the paper's equation has none) -> sigmoid.
Departures, both from the seed article and optional: a 1-D conv in place of the MLP ("Conv",
ECA-style), and MLP biases / the spatial BatchNorm can be switched off.
"""
import torch
from torch import nn

from .checks import check_choice, check_odd_kernel, eca_kernel_size, reduced_channels
from .scale import scale

SPATIAL_KERNELS = (3, 5, 7)


class ChannelAttentionMLP(nn.Module):
    """CBAM Eq. 2: sigmoid(MLP(avgpool x) + MLP(maxpool x)); `gate` emits [B, C]."""

    def __init__(self, channels: int, ratio: int = 16, bias: bool = True, inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        hidden = reduced_channels(channels, ratio)
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.stack((x.mean((2, 3)), x.amax((2, 3))))   # [2, B, C]: avg, max
        z = self.fc2(self.act(self.fc1(s))).sum(0)          # [B, C]
        return scale(x, self.gate(z)[:, :, None, None], self.inplace)


class ChannelAttentionConv(nn.Module):
    """The seed article's variant: the shared MLP replaced by ECA's 1-D conv; `gate` emits [B, C]."""

    def __init__(self, channels: int, gamma: float = 2, b: float = 1, k_size: int | None = None,
                 inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        k = eca_kernel_size(channels, gamma, b) if k_size is None else check_odd_kernel("k_size", k_size)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.stack((x.mean((2, 3)), x.amax((2, 3))), 1)  # [B, 2, C]: avg, max
        z = self.conv(s.flatten(0, 1)[:, None]).view_as(s).sum(1)  # [B, C]
        return scale(x, self.gate(z)[:, :, None, None], self.inplace)


class SpatialAttention(nn.Module):
    """CBAM Eq. 3: sigmoid(BN(conv_kxk([max_c x; mean_c x]))); `gate` emits [B, 1, H, W]."""

    def __init__(self, kernel_size: int = 7, bn: bool = True, inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        k = check_odd_kernel("spatial kernel size", kernel_size, SPATIAL_KERNELS)
        self.conv = nn.Conv2d(2, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1) if bn else nn.Identity()
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), 1)  # [B, 2, H, W]
        w = self.gate(self.bn(self.conv(pooled)))                                 # [B, 1, H, W]
        return scale(x, w, self.inplace)                                          # [B, C, H, W]


CHANNEL_ATTENTION = {"FC": ChannelAttentionMLP, "Conv": ChannelAttentionConv}


class CBAMBlock(nn.Module):
    """Channel attention then spatial attention (CBAM Fig. 1), as two hookable submodules."""

    def __init__(self, channel_attention_mode: str = "FC", spatial_attention_kernel_size: int = 7,
                 channels: int | None = None, ratio: int | None = None, gamma: float | None = None,
                 b: float | None = None, bias: bool = True, spatial_bn: bool = True,
                 k_size: int | None = None, inplace: bool = False):
        super().__init__()
        check_choice("CBAM channel attention mode", channel_attention_mode, CHANNEL_ATTENTION)
        if channels is None:
            raise ValueError("CBAMBlock needs channels=<number of input channels>")
        conv_only = [name for name, value in (("gamma", gamma), ("b", b), ("k_size", k_size)) if value is not None]
        if channel_attention_mode == "FC" and conv_only:
            raise ValueError(f"{', '.join(conv_only)} set the 'Conv' channel attention; the 'FC' (MLP) one takes ratio")
        if channel_attention_mode == "Conv" and ratio is not None:
            raise ValueError("ratio sets the 'FC' channel attention's MLP; the 'Conv' one takes gamma and b, or k_size")
        if channel_attention_mode == "FC":
            self.channel = ChannelAttentionMLP(channels, 16 if ratio is None else ratio, bias, inplace)
        else:
            self.channel = ChannelAttentionConv(channels, 2 if gamma is None else gamma,
                                                1 if b is None else b, k_size, inplace)
        # the spatial stage always owns its input: the channel stage's output
        self.spatial = SpatialAttention(spatial_attention_kernel_size, spatial_bn, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
