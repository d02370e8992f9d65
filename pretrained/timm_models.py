"""timm's own SE and ECA ResNets, recognised from a state dict's parameter names and shapes.

For timm files that `attention_resnet` cannot express: deep or tiered stems and avg-down
shortcuts (`ecaresnet50d`, `ecaresnet26t`, ...), ECA-ResNet-Light's stage depths, the legacy
SENet layout (`layer0`, `se_module`, `last_linear`) and SE widths rounded up to a multiple of 8
per stage (`seresnet18/34`). Each candidate is built on the meta device (no memory, no
initialisation) to read what it expects; the one that matches exactly is built for real and
loaded strictly.
"""
from functools import lru_cache

import torch
from torch import nn

from .checkpoint import CheckpointError, Mismatch, load_weights

FAMILIES = ("*seresnet*", "*ecaresnet*")    # timm name patterns; legacy SENet ones included
DEFAULT_CLASSES = 1000


def candidates() -> list[str]:
    """timm's SE and ECA ResNet architectures, by name."""
    import timm
    return timm.list_models(FAMILIES)


@lru_cache(maxsize=64)         # keyed by timm's own architecture names only (about 30)
def _shapes(name: str) -> dict[str, torch.Size]:
    """The state dict names and shapes of timm model `name` with its default head, read on the
    meta device (no memory, no initialisation)."""
    import timm
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return {key: value.shape for key, value in model.state_dict().items()}


def expected_shapes(name: str, num_classes: int) -> dict[str, torch.Size]:
    """The state dict names and shapes of timm model `name` with a `num_classes` classifier:
    the default head's shapes with the class count swapped in (arithmetic, not a model build, so
    a file's class count -- which a user controls -- never grows a cache or costs a build)."""
    import timm
    head = timm.models.get_pretrained_cfg(name).classifier
    return {key: torch.Size([num_classes, *shape[1:]]) if key in (f"{head}.weight", f"{head}.bias") else shape
            for key, shape in _shapes(name).items()}


def _num_classes(name: str, state_dict: dict[str, torch.Tensor]) -> int:
    """The classes of the file's classifier, under the name model `name` gives its classifier."""
    import timm
    head = state_dict.get(f"{timm.models.get_pretrained_cfg(name).classifier}.weight")
    return head.shape[0] if head is not None and head.ndim == 2 else DEFAULT_CLASSES


def identify(state_dict: dict[str, torch.Tensor]) -> tuple[str, int]:
    """(name, num_classes) of the timm model whose parameters match `state_dict` exactly."""
    closest = None
    for name in candidates():
        num_classes = _num_classes(name, state_dict)
        mismatch = Mismatch.between(expected_shapes(name, num_classes), state_dict)
        if not mismatch:
            return name, num_classes
        if closest is None or len(mismatch) < len(closest[1]):
            closest = name, mismatch
    raise CheckpointError(f"the weights fit neither an Attention Lens ResNet nor any of timm's SE/ECA "
                          f"ResNets; the closest, timm's {closest[0]}, differs by {closest[1]}")


def timm_model_from_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[nn.Module, str]:
    """An eval-mode timm model holding `state_dict`, and its timm name."""
    import timm
    name, num_classes = identify(state_dict)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    load_weights(model, state_dict)
    return model.eval(), name
