"""Capture what every attention block of a model computed for one input, in one forward pass.

Works on our `attention_resnet` models and on timm's (`SEModule`, `EcaModule`, `CbamModule`, the
legacy SENet `SEModule`): each attention module exposes its sigmoid gates as submodules, and a
forward hook on a gate reads the attention without touching `forward` (the torch-cam pattern).

Safe on a model shared between threads (one per browser session): hooks are registered per call
and record only for the context that registered them (a `ContextVar` token), so concurrent
captures never see each other's activations. Hooks are removed in `finally`; the model's
`.training` flags and `requires_grad` are left as they were.
"""
import re
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

TOP_CHANNELS = 32   # channel maps kept per block for the "where the top-k channels fire" view

# attention module class -> (kind, channel gate path, spatial gate path or None)
ATTENTION_MODULES = {
    "blocks.se.SEBlock": ("se", "gate", None),
    "blocks.eca.ECABlock": ("eca", "gate", None),
    "blocks.cbam.CBAMBlock": ("cbam", "channel.gate", "spatial.gate"),
    "timm.layers.squeeze_excite.SEModule": ("se", "gate", None),
    "timm.layers.eca.EcaModule": ("eca", "gate", None),
    "timm.layers.cbam.CbamModule": ("cbam", "channel.gate", "spatial.gate"),
    "timm.models.senet.SEModule": ("se", "sigmoid", None),
}
BLOCK_NAME = re.compile(r"layer(\d+)\.(\d+)$")

_active: ContextVar[object | None] = ContextVar("attention_lens_capture", default=None)


@dataclass(frozen=True)
class AttentionRecord:
    """What one attention block computed. Tensors are on the CPU, batch first."""
    name: str                      # the residual block, e.g. "layer3.5"
    module: str                    # the attention module, e.g. "layer3.5.attn" (timm: ".se")
    kind: str                      # "se" | "eca" | "cbam"
    stage: int | None              # 1..4 for ResNets (layerS), else None
    block: int | None              # index within the stage
    channel: torch.Tensor          # [B, C] channel weights in [0, 1]
    spatial: torch.Tensor | None   # [B, h, w] spatial weights in [0, 1]; None for SE/ECA
    feature_size: tuple[int, int]  # (h, w) of the block's feature map
    top_channels: torch.Tensor     # [B, K] indices of the K highest channel weights, descending
    top_maps: torch.Tensor         # [B, K, h, w] the block's attended output on those channels

    @property
    def channels(self) -> int:
        return self.channel.shape[1]

    def activity(self, k: int = 8) -> torch.Tensor:
        """[B, h, w]: mean positive activation of the k most-excited channels -- where the
        channels the gate favours fire. A view of features, not a spatial gate."""
        k = max(1, min(k, self.top_maps.shape[1]))
        return self.top_maps[:, :k].clamp(min=0).mean(1)


@dataclass(frozen=True)
class Capture:
    """The model's logits and one record per attention block, in forward order."""
    logits: torch.Tensor           # [B, classes]
    layers: list[AttentionRecord]
    input_size: tuple[int, int]    # (H, W) of the input the model saw

    def top_k(self, k: int = 5, index: int = 0) -> list[tuple[int, float]]:
        """The k most probable classes of image `index` as (class index, softmax probability)."""
        probs = self.logits[index].softmax(0)
        values, classes = probs.topk(min(k, probs.numel()))
        return list(zip(classes.tolist(), values.tolist()))

    def layer(self, name: str) -> AttentionRecord:
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(f"no attention block named {name!r}; blocks: {', '.join(r.name for r in self.layers)}")


@dataclass(frozen=True)
class Intervention:
    """An edit of one block's attention during one capture, for debugging; no other call sees it.

    "gate_off": every gate of the block outputs 1, i.e. the block's attention is switched off.
    "zero_top_k": the block's output is zeroed on its k highest-weighted channels.
    The block's own record still shows what its gates computed; everything after it changes."""
    block: str                     # a record name, e.g. "layer3.1"
    mode: str = "gate_off"
    k: int = 5


INTERVENTIONS = ("gate_off", "zero_top_k")


@dataclass(frozen=True)
class _Site:
    module_name: str
    module: nn.Module
    kind: str
    channel_gate: nn.Module
    spatial_gate: nn.Module | None


@cache
def _spec(module_type: type) -> tuple | None:
    return ATTENTION_MODULES.get(f"{module_type.__module__}.{module_type.__qualname__}")


def attention_sites(model: nn.Module) -> list[_Site]:
    """Every known attention module of `model`, in registration (= forward) order."""
    sites = []
    for name, module in model.named_modules():
        spec = _spec(type(module))
        if spec is not None:
            kind, channel_path, spatial_path = spec
            spatial = module.get_submodule(spatial_path) if spatial_path else None
            sites.append(_Site(name, module, kind, module.get_submodule(channel_path), spatial))
    return sites


def capture_attention(model: nn.Module, x: torch.Tensor, intervention: Intervention | None = None,
                      require_attention: bool = True) -> Capture:
    """Run `model` on `x` ([B, 3, H, W]) once and return its logits and every block's attention,
    optionally with one block's attention edited (`Intervention`). A model without attention
    blocks is an error unless `require_attention=False` (then `layers` is empty)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a [B, 3, H, W] tensor, got {getattr(x, 'shape', type(x).__name__)}")
    sites = attention_sites(model)
    if not sites and require_attention:
        raise ValueError(f"{type(model).__name__} has no SE, ECA or CBAM attention blocks to capture "
                         f"(known modules: {', '.join(sorted(ATTENTION_MODULES))})")
    token, seen = object(), {}

    def recorder(key, transform):
        def hook(module, inputs, output):
            if _active.get() is token:
                seen[key] = transform(output)
        return hook

    def top_maps(i):
        def transform(output):                              # output: [B, C, h, w]
            weights = seen[(i, "channel")]
            k = min(TOP_CHANNELS, weights.shape[1])
            top = weights.topk(k, dim=1).indices            # [B, K]
            maps = output.gather(1, top[:, :, None, None].expand(-1, -1, *output.shape[2:]))
            return top, maps.float()                        # gather copies: safe from later in-place ops
        return transform

    handles = []
    try:
        for i, site in enumerate(sites):
            handles.append(site.channel_gate.register_forward_hook(
                recorder((i, "channel"), lambda o: o.detach().reshape(o.shape[0], -1).float())))
            if site.spatial_gate is not None:
                handles.append(site.spatial_gate.register_forward_hook(
                    recorder((i, "spatial"), lambda o: o.detach()[:, 0].float())))
            handles.append(site.module.register_forward_hook(recorder((i, "top"), top_maps(i))))
        if intervention is not None:
            handles += _register_intervention(intervention, sites, seen, token)
        reset = _active.set(token)
        try:
            with torch.inference_mode():
                logits = model(x)
        finally:
            _active.reset(reset)
    finally:
        for handle in handles:
            handle.remove()
    return Capture(logits.float(), [_record(i, site, seen) for i, site in enumerate(sites)],
                   tuple(x.shape[2:]))


def _block_name(module_name: str) -> str:
    return module_name.rsplit(".", 1)[0] if "." in module_name else module_name


def _register_intervention(edit: Intervention, sites: list[_Site], seen: dict, token) -> list:
    """Hooks that apply `edit`, registered after the recording hooks so records stay unedited."""
    if edit.mode not in INTERVENTIONS:
        raise ValueError(f"unknown intervention {edit.mode!r}; choose one of {', '.join(map(repr, INTERVENTIONS))}")
    names = [_block_name(s.module_name) for s in sites]
    if edit.block not in names:
        raise ValueError(f"no attention block named {edit.block!r}; blocks: {', '.join(names)}")
    i = names.index(edit.block)
    site = sites[i]

    def gate_off(module, inputs, output):
        return torch.ones_like(output) if _active.get() is token else None

    def zero_top_k(module, inputs, output):                 # output: [B, C, h, w]
        if _active.get() is not token:
            return None
        weights = seen[(i, "channel")]
        keep = torch.ones_like(weights).scatter_(1, weights.topk(min(edit.k, weights.shape[1]), 1).indices, 0)
        return output * keep[:, :, None, None].to(output.dtype)

    if edit.mode == "gate_off":
        gates = [g for g in (site.channel_gate, site.spatial_gate) if g is not None]
        return [g.register_forward_hook(gate_off) for g in gates]
    return [site.module.register_forward_hook(zero_top_k)]



def _record(i: int, site: _Site, seen: dict) -> AttentionRecord:
    top, maps = seen[(i, "top")]
    block_name = _block_name(site.module_name)
    match = BLOCK_NAME.search(block_name)
    return AttentionRecord(
        name=block_name, module=site.module_name, kind=site.kind,
        stage=int(match[1]) if match else None, block=int(match[2]) if match else None,
        channel=seen[(i, "channel")], spatial=seen.get((i, "spatial")),
        feature_size=tuple(maps.shape[2:]), top_channels=top, top_maps=maps)
