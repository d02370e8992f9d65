"""Which model a state dict describes, read from its keys and shapes alone.

Handles our own layout, timm ResNets (converted by `timm_convert`) and the official ECA-Net and
CBAM checkpoints (`official`), so a user's file needs no side information. A timm file that
`attention_resnet` cannot express is loaded into timm's own model (`timm_models`). The one setting
that leaves no trace in the weights is SE's squeeze ("avg", as in the paper, is assumed).
"""
from dataclasses import dataclass

import torch
from torch import nn

from blocks import attention_resnet

from .checkpoint import CheckpointError, build_strictly
from .file_metadata import MAX_CLASSES
from .official import build_official_model, infer_resnet_depth, official_layout
from .timm_convert import convert_timm_state_dict
from .timm_models import timm_model_from_state_dict

MAX_WIDTH = 512             # stem channels at most: 8x torchvision's, and a model a file's shapes may not exceed


@dataclass(frozen=True)
class BuiltModel:
    """A model holding a file's weights, and what the file was read as."""
    model: nn.Module            # eval mode
    architecture: str           # "CBAM ResNet-18", "timm seresnet18"
    layout: str                 # "Attention Lens", "timm ResNet", "timm", "official ..."
    num_classes: int


def _shape(state_dict: dict[str, torch.Tensor], key: str, ndim: int) -> torch.Size:
    """The shape of `state_dict[key]`, which must exist, have `ndim` dimensions and no zero size."""
    if key not in state_dict:
        raise CheckpointError(f"the weights do not fit this model: 1 missing key ({key})")
    shape = state_dict[key].shape
    if len(shape) != ndim or 0 in shape:
        raise CheckpointError(f"the weights do not fit this model: {key} has shape {list(shape)}, "
                              f"expected {ndim} dimensions of non-zero size")
    return shape


def _kernels(state_dict: dict[str, torch.Tensor], path: str) -> tuple[int, ...]:
    return tuple(_shape(state_dict, f"layer{s}.0.attn.{path}", 3)[-1] for s in range(1, 5))


def _mlp_options(state_dict: dict[str, torch.Tensor], prefix: str) -> dict:
    hidden, channels = _shape(state_dict, f"layer1.0.attn.{prefix}fc1.weight", 2)    # Linear [C/r, C]
    return {"ratio": max(1, channels // hidden), "bias": f"layer1.0.attn.{prefix}fc1.bias" in state_dict}


def _se(sd):
    return _mlp_options(sd, "")


def _eca(sd):
    return {"k_size": _kernels(sd, "conv.weight")}


def _cbam(sd):
    channel = ({"channel_mode": "Conv", "k_size": _kernels(sd, "channel.conv.weight")}
               if "layer1.0.attn.channel.conv.weight" in sd else _mlp_options(sd, "channel."))
    return {**channel, "spatial_kernel": _shape(sd, "layer1.0.attn.spatial.conv.weight", 4)[-1],
            "spatial_bn": "layer1.0.attn.spatial.bn.weight" in sd}


ATTENTION_KEYS = {  # a key only that attention has -> (attention, reader of its options)
    "layer1.0.attn.spatial.conv.weight": ("cbam", _cbam),
    "layer1.0.attn.fc1.weight": ("se", _se),
    "layer1.0.attn.conv.weight": ("eca", _eca),
}


def describe(state_dict: dict[str, torch.Tensor]) -> dict:
    """attention_resnet(**describe(sd)) builds the model that `sd` (our layout) fits."""
    for key in ("conv1.weight", "fc.weight"):
        if key not in state_dict:
            raise CheckpointError(f"not a ResNet state dict: no '{key}' (the file's keys start "
                                  f"{', '.join(repr(k) for k in list(state_dict)[:3]) or 'none'})")
    width, classes = _shape(state_dict, "conv1.weight", 4)[0], _shape(state_dict, "fc.weight", 2)[0]
    if width > MAX_WIDTH:
        raise CheckpointError(f"the file's stem has {width:,} channels; at most {MAX_WIDTH} are read "
                              "(torchvision's ResNets have 64)")
    if classes > MAX_CLASSES:
        raise CheckpointError(f"the file's classifier has {classes:,} classes; at most {MAX_CLASSES:,} are read")
    attention, options = next(((a, read(state_dict)) for key, (a, read) in ATTENTION_KEYS.items()
                               if key in state_dict), (None, {}))
    return {"depth": infer_resnet_depth(state_dict), "attention": attention, "num_classes": classes,
            "width": width, **options}


def model_from_state_dict(state_dict: dict[str, torch.Tensor], stem_pool: bool | None = None) -> BuiltModel:
    """An eval-mode model holding `state_dict`: an `attention_resnet` where one fits, else
    timm's own model (for a file in timm's layout). `stem_pool`: whether our layout's stem has its
    max-pool, which its weights cannot show (None: it has, as torchvision's). Whatever a file's
    shapes make fail is the file's fault, and a CheckpointError."""
    try:
        return _built(state_dict, stem_pool)
    except CheckpointError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError, RuntimeError) as e:
        raise CheckpointError(f"the file's names and shapes describe no model this app can build "
                              f"({type(e).__name__}: {e})") from e


def _built(state_dict: dict[str, torch.Tensor], stem_pool: bool | None) -> BuiltModel:
    official = official_layout(state_dict)
    if official is not None:
        return _ours(build_official_model(state_dict, official)[0], f"official {official}")
    if "conv1.weight" in state_dict and not any(".se." in key for key in state_dict):
        return _ours(_attention_resnet(state_dict, stem_pool), "Attention Lens")
    try:
        return _ours(_attention_resnet(convert_timm_state_dict(state_dict)), "timm ResNet")
    except CheckpointError:         # e.g. a deep stem, or SE widths rounded per stage
        model, name = timm_model_from_state_dict(state_dict)
        return BuiltModel(model, f"timm {name}", "timm", model.num_classes)


def _attention_resnet(state_dict: dict[str, torch.Tensor], stem_pool: bool | None = None) -> nn.Module:
    options = {**describe(state_dict), **({} if stem_pool is None else {"stem_pool": stem_pool})}
    return build_strictly(lambda: attention_resnet(**options), state_dict).eval()


def _ours(model: nn.Module, layout: str) -> BuiltModel:
    return BuiltModel(model, f"{(model.attention or 'plain').upper()} ResNet-{model.depth}", layout,
                      model.fc.out_features)
