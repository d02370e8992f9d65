"""Official ImageNet checkpoints of the ECA-Net and CBAM papers, mapped onto `blocks.AttentionResNet`.

ECA-Net (github.com/BangguWu/ECANet, `models/eca_resnet.py`): torchvision names, the attention
module is `layerX.Y.eca` holding `conv` (Conv1d 1->1, kernel k fixed per stage, no bias).
CBAM (github.com/Jongchan/attention-module, `MODELS/cbam.py`, `model_resnet.py`): torchvision
names for the ImageNet ResNet, the attention module is `layerX.Y.cbam` holding
`ChannelGate.mlp` = Sequential(Flatten, Linear, ReLU, Linear) and `SpatialGate.spatial` =
conv 7x7 (no bias) + BatchNorm over the [max, mean] channel pool -- our order, so no flip.
Both repos save `{"state_dict": ..., "epoch": ..., ...}` with DataParallel's `module.` prefix;
the functions here take the state dict as `checkpoint.read_checkpoint` gives it, prefix stripped.
Official CBAM pools with AvgPool2d(7), i.e. 224-pixel inputs only; ours pools adaptively.
"""
import re
from dataclasses import dataclass

import torch
from torch import nn

from blocks import attention_resnet
from blocks.resnet import DEPTHS

from .checkpoint import CheckpointError, build_strictly

BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")
ECA_RENAMES = {".eca.": ".attn."}
CBAM_RENAMES = {
    ".cbam.ChannelGate.mlp.1.": ".attn.channel.fc1.",
    ".cbam.ChannelGate.mlp.3.": ".attn.channel.fc2.",
    ".cbam.SpatialGate.spatial.conv.": ".attn.spatial.conv.",
    ".cbam.SpatialGate.spatial.bn.": ".attn.spatial.bn.",
}
RESNETS = {(block.expansion == 4, counts): depth for depth, (block, counts) in DEPTHS.items()}


@dataclass(frozen=True)
class OfficialInfo:
    """What `build_official_model` read from a checkpoint."""
    layout: str                 # a key of LAYOUTS
    attention: str              # "eca" or "cbam"
    depth: int
    num_classes: int
    options: dict               # passed on to attention_resnet


def _rename(state_dict: dict[str, torch.Tensor], renames: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def infer_resnet_depth(state_dict: dict[str, torch.Tensor]) -> int:
    """ResNet depth from the blocks per stage and the block type (Bottleneck has `conv3`)."""
    blocks = [set() for _ in range(4)]
    bottleneck = False
    for key in state_dict:
        found = BLOCK_KEY.match(key)
        if found:
            blocks[int(found[1]) - 1].add(int(found[2]))
            bottleneck |= key.startswith(f"{found[0]}conv3.")
    counts = tuple(len(b) for b in blocks)
    depth = RESNETS.get((bottleneck, counts))
    if depth is None:
        kind = "Bottleneck" if bottleneck else "BasicBlock"
        raise CheckpointError(f"not a standard ResNet: {kind} blocks per stage {counts}; expected "
                              f"ResNet-{'/'.join(str(d) for d in DEPTHS)}")
    return depth


def convert_ecanet_state_dict(state_dict: dict[str, torch.Tensor]
                              ) -> tuple[dict[str, torch.Tensor], tuple[int, int, int, int]]:
    """Official ECA-Net weights with our names, and the ECA kernel of each stage read from them."""
    out = _rename(state_dict, ECA_RENAMES)
    k_size = []
    for stage in range(1, 5):
        key = f"layer{stage}.0.attn.conv.weight"
        if key not in out or out[key].ndim != 3:
            raise CheckpointError(f"no ECA kernel for stage {stage}: expected "
                                  f"layer{stage}.0.eca.conv.weight of shape [1, 1, k]")
        k_size.append(out[key].shape[-1])
    return out, tuple(k_size)


def convert_cbam_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official CBAM weights with our names (`attn.channel.fc1/fc2`, `attn.spatial.conv/bn`)."""
    return _rename(state_dict, CBAM_RENAMES)


def _eca_options(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    converted, k_size = convert_ecanet_state_dict(state_dict)
    return converted, {"k_size": k_size}


def _cbam_options(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    converted = convert_cbam_state_dict(state_dict)
    hidden, channels = converted["layer1.0.attn.channel.fc1.weight"].shape     # Linear [C/r, C]
    return converted, {"ratio": channels // hidden}


LAYOUTS = {  # name: (attention, a key only this layout has, converter -> (state dict, options))
    "ECA-Net (BangguWu/ECANet)": ("eca", "layer1.0.eca.conv.weight", _eca_options),
    "CBAM (Jongchan/attention-module)": ("cbam", "layer1.0.cbam.ChannelGate.mlp.1.weight",
                                         _cbam_options),
}


def official_layout(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The key of LAYOUTS whose telltale key the state dict has, or None."""
    return next((name for name, (_, key, _) in LAYOUTS.items() if key in state_dict), None)


def build_official_model(state_dict: dict[str, torch.Tensor], layout: str | None = None
                         ) -> tuple[nn.Module, OfficialInfo]:
    """An eval-mode attention ResNet holding an official ECA-Net or CBAM checkpoint's weights;
    `layout`: the key of LAYOUTS, when the caller has already read it (`official_layout`)."""
    layout = layout or official_layout(state_dict)
    if layout is None:
        expected = " or ".join(f"'{key}' for {name}" for name, (_, key, _) in LAYOUTS.items())
        found = ", ".join(repr(k) for k in list(state_dict)[:3]) or "none"
        raise CheckpointError(f"not an official ECA-Net or CBAM checkpoint: expected a key "
                              f"{expected}; the file's keys start {found}")
    if "fc.weight" not in state_dict:
        raise CheckpointError("no classifier in the file: expected 'fc.weight' of shape "
                              "[classes, features]")
    attention, _, convert = LAYOUTS[layout]
    converted, options = convert(state_dict)
    info = OfficialInfo(layout, attention, infer_resnet_depth(state_dict),
                        state_dict["fc.weight"].shape[0], options)
    model = build_strictly(lambda: attention_resnet(info.depth, attention, num_classes=info.num_classes, **options),
                           converted)
    return model.eval(), info
