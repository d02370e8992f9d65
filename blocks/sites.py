"""Where a model's attention blocks sit, read from what the model declares about itself.

A ResNet -- ours, timm's, or an official checkpoint loaded into ours -- lists its stages in
`feature_info`, as timm's models do: one dict per stage with the stage's module, its channels
(`num_chs`) and its stride (`reduction`). Each stage module holds the residual blocks in order,
and a residual block holds at most one attention module. So a site's stage, block, channels and
stride come from that one declaration; nobody parses module names.

A model without `feature_info` still has its attention modules found (registration order = forward
order); their stage and block are then unknown (None).
"""
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter

from torch import nn


@dataclass(frozen=True)
class AttentionKind:
    """What one kind of attention module is: every text, table and figure asks this record rather
    than comparing kind names. A new kind is one record here and its classes in ATTENTION_MODULES."""
    name: str                  # the key in JSON, a study's summary and `attention_resnet`: "se"
    display: str               # how a text names it: "SE"
    order: int                 # its place when kinds are listed together (the papers' order)
    paper: str                 # the paper that defines it
    formula: str               # its gates in one line, sizes left symbolic
    has_spatial_gate: bool     # a per-pixel gate after the channel gate: its map is a gate, drawn on 0..1


SE = AttentionKind("se", "SE", 0, "Hu et al., CVPR 2018", "w = sigmoid(W2 relu(W1 pool(x))), y = w * x", False)
ECA = AttentionKind("eca", "ECA", 1, "Wang et al., CVPR 2020", "w = sigmoid(conv1d_k(avgpool(x))), y = w * x", False)
CBAM = AttentionKind("cbam", "CBAM", 2, "Woo et al., ECCV 2018",
                     "Mc = sigmoid(MLP(avgpool x) + MLP(maxpool x)), x' = Mc * x; "
                     "Ms = sigmoid(conv([max_c x'; mean_c x'])), y = Ms * x'", True)

# attention module class -> (its kind, channel gate path, spatial gate path or None)
ATTENTION_MODULES = {
    "blocks.se.SEBlock": (SE, "gate", None),
    "blocks.eca.ECABlock": (ECA, "gate", None),
    "blocks.cbam.CBAMBlock": (CBAM, "channel.gate", "spatial.gate"),
    "timm.layers.squeeze_excite.SEModule": (SE, "gate", None),
    "timm.layers.eca.EcaModule": (ECA, "gate", None),
    "timm.layers.cbam.CbamModule": (CBAM, "channel.gate", "spatial.gate"),
    "timm.models.senet.SEModule": (SE, "sigmoid", None),
}


def attention_kinds() -> list[AttentionKind]:
    """Every kind some module of ATTENTION_MODULES has, in their `order`."""
    return sorted({kind for kind, _, _ in ATTENTION_MODULES.values()}, key=lambda k: (k.order, k.name))


def attention_kind(name: str) -> AttentionKind:
    """The record of the kind named `name` ("se", "eca", "cbam", or one registered since)."""
    kinds = attention_kinds()
    for kind in kinds:
        if kind.name == name:
            return kind
    raise ValueError(f"unknown attention kind {name!r}; known kinds: {', '.join(k.name for k in kinds)}")


@dataclass(frozen=True)
class AttentionSite:
    """One attention module of a model and the residual block it belongs to."""
    name: str                        # the residual block, e.g. "layer3.1"
    module_name: str                 # the attention module, e.g. "layer3.1.attn" (timm: ".se")
    kind: str                        # the kind's name, "se" | "eca" | "cbam": its record is `attention`
    stage: int | None                # position in feature_info: 1..4 for ResNets (layerS)
    block: int | None                # index of the residual block within its stage
    channels: int | None             # channels of the stage's feature map (feature_info num_chs)
    reduction: int | None            # input pixels per feature-map cell (feature_info reduction)
    module: nn.Module
    channel_gate: nn.Module
    spatial_gate: nn.Module | None

    @property
    def attention(self) -> AttentionKind:
        return attention_kind(self.kind)


@lru_cache(maxsize=64)        # keyed by module classes: the code's, not a user's
def _spec(module_type: type) -> tuple | None:
    """(kind name, channel gate getter, spatial gate getter or None) for an attention module type."""
    spec = ATTENTION_MODULES.get(f"{module_type.__module__}.{module_type.__qualname__}")
    if spec is None:
        return None
    kind, channel_path, spatial_path = spec
    return kind.name, attrgetter(channel_path), attrgetter(spatial_path) if spatial_path else None


def _attention_modules(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module, tuple]]:
    """(name, module, spec) of every attention module in `module`, in registration order. Like
    `named_modules`, but it does not look inside attention modules (their children are their
    gates), which halves the walk on a CBAM ResNet: it runs on every capture."""
    found, visited = [], set()

    def visit(m: nn.Module, name: str) -> None:
        visited.add(id(m))
        spec = _spec(type(m))
        if spec is not None:
            found.append((name, m, spec))
            return
        for child_name, child in m._modules.items():
            if child is not None and id(child) not in visited:
                visit(child, f"{name}.{child_name}" if name else child_name)

    visit(module, prefix)
    return found


def _site(module_name: str, module: nn.Module, spec: tuple, stage=None, block=None, info=None) -> AttentionSite:
    kind, channel_gate, spatial_gate = spec
    return AttentionSite(module_name.rsplit(".", 1)[0] if "." in module_name else module_name, module_name, kind,
                         stage, block, info["num_chs"] if info else None, info["reduction"] if info else None,
                         module, channel_gate(module), spatial_gate(module) if spatial_gate else None)


def declared_blocks(model: nn.Module) -> list[tuple[int, int, str, nn.Module, dict]]:
    """(stage, block, name, module, stage info) of every residual block the model's `feature_info`
    declares, in forward order ("layer3.1" is stage 3's block 1); [] for a model that declares none."""
    return [(stage, block, f"{info['module']}.{child_name}", child, info)
            for stage, info in enumerate(getattr(model, "feature_info", None) or ())
            for block, (child_name, child) in enumerate(model.get_submodule(info["module"]).named_children())]


def attention_sites(model: nn.Module) -> list[AttentionSite]:
    """Every known attention module of `model`, in forward order, each once, with its stage and
    block as the model's `feature_info` declares them."""
    blocks = declared_blocks(model)
    if not blocks:
        return [_site(*found) for found in _attention_modules(model, "")]
    return [_site(*found, stage, block, info)
            for stage, block, name, child, info in blocks for found in _attention_modules(child, name)]
