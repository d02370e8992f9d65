"""Map timm ResNet state dicts (`resnet50` with `block_args=dict(attn_layer=...)`, `seresnet50`)
onto `blocks.AttentionResNet`.

timm names every attention module `se` whatever its kind, writes MLP layers as 1x1 convs, wraps
CBAM's spatial conv in `ConvNormAct` (`conv.conv`, `conv.bn`) and stacks the spatial descriptors
as [mean, max] where CBAM's official code (and ours) uses [max, mean].
"""
import re

import torch

RENAMES = (
    (re.compile(r"\.se\.spatial\.conv\.conv\."), ".attn.spatial.conv."),
    (re.compile(r"\.se\.spatial\.conv\.bn\."), ".attn.spatial.bn."),
    (re.compile(r"\.se\."), ".attn."),
)
MLP_WEIGHT = re.compile(r"\.attn\.(channel\.)?fc[12]\.weight$")
SPATIAL_WEIGHT = re.compile(r"\.attn\.spatial\.conv\.weight$")


def convert_timm_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a copy of a timm ResNet state dict with our names, shapes and pooling order."""
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in RENAMES:
            key, hits = pattern.subn(replacement, key)
            if hits:
                break
        if MLP_WEIGHT.search(key) and value.ndim == 4:
            value = value.flatten(1)              # 1x1 conv [out, in, 1, 1] -> Linear [out, in]
        elif SPATIAL_WEIGHT.search(key):
            value = value.flip(1)                 # [mean, max] inputs -> [max, mean]
        out[key] = value
    return out
