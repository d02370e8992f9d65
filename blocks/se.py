"""Squeeze-and-Excitation block.

Hu, Shen, Albanie, Sun, Wu. "Squeeze-and-Excitation Networks", CVPR 2018 / TPAMI 2019
(arXiv:1709.01507), Fig. 3: global pool -> FC (C -> C/r) -> ReLU -> FC (C/r -> C) -> sigmoid -> scale.

Departures, both optional: the squeeze may be a global *max* pool (as in the seed article), and
the FC biases can be switched off (the article's code has none; the paper and timm keep them).
"""
import torch
from torch import nn

from .checks import check_choice, reduced_channels
from .scale import scale

SQUEEZE = {"avg": lambda x: x.mean((2, 3)), "max": lambda x: x.amax((2, 3))}


class SEBlock(nn.Module):
    """Channel attention by a bottleneck MLP over a global descriptor; `gate` emits [B, C]."""

    def __init__(self, mode: str = "avg", channels: int = 64, ratio: int = 16, bias: bool = True,
                 inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        self.mode = check_choice("SE squeeze mode", mode, SQUEEZE)
        hidden = reduced_channels(channels, ratio)
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = SQUEEZE[self.mode](x)                        # [B, C]
        w = self.gate(self.fc2(self.act(self.fc1(s))))   # [B, C]
        return scale(x, w[:, :, None, None], self.inplace)  # [B, C, H, W]
