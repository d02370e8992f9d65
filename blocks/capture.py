"""Capture what every attention block of a model computed for one input, in one forward pass.

Works on our `attention_resnet` models and on timm's (`SEModule`, `EcaModule`, `CbamModule`, the
legacy SENet `SEModule`): each attention module exposes its sigmoid gates as submodules, and a
forward hook on a gate reads the attention without touching `forward` (the torch-cam pattern).

Safe on a model shared between threads (one per browser session): hooks are registered per call
and act only for the call that registered them (`blocks.hooks.CallHooks`), so concurrent
captures never see each other's activations, and they are removed when the call ends; the
model's `.training` flags and `requires_grad` are left as they were.
"""
from dataclasses import dataclass

import torch
from torch import nn

from .hooks import CallHooks
from .sites import ATTENTION_MODULES, AttentionKind, AttentionSite, attention_kind, attention_sites

# The map of a block without a spatial gate (SE, ECA: `AttentionRecord.activity`) averages this many of
# its most-excited channels wherever no one chooses: the model card (`lens.card_evaluation`) and the
# study (`lens.study_stats`) use it, so their scores compare across models and runs. The app and
# `python -m lens report` follow the user's top-k instead (the sidebar's, `--top-k`), which also picks
# the channels the charts label: the map shows where the listed channels fire.
ACTIVITY_CHANNELS = 8

@dataclass(frozen=True)
class AttentionRecord:
    """What one attention block computed. Tensors are on the CPU, batch first."""
    name: str                      # the residual block, e.g. "layer3.5"
    module: str                    # the attention module, e.g. "layer3.5.attn" (timm: ".se")
    kind: str                      # the kind's name, "se" | "eca" | "cbam": its record is `attention`
    stage: int | None              # 1..4 for ResNets (layerS), else None
    block: int | None              # index within the stage
    channel: torch.Tensor          # [B, C] channel weights in [0, 1]
    spatial: torch.Tensor | None   # [B, h, w] spatial weights in [0, 1]; None for SE/ECA
    feature_size: tuple[int, int]  # (h, w) of the block's feature map
    # kept only when asked for (`capture_attention(..., channel_maps=K)`), else None:
    top_channels: torch.Tensor | None  # [B, K] indices of the K highest channel weights, descending
    top_maps: torch.Tensor | None      # [B, K, h, w] the block's attended output on those channels

    @property
    def channels(self) -> int:
        return self.channel.shape[1]

    @property
    def attention(self) -> AttentionKind:
        return attention_kind(self.kind)

    def activity(self, k: int = ACTIVITY_CHANNELS) -> torch.Tensor:
        """[B, h, w]: mean positive activation of the k most-excited channels -- where the
        channels the gate favours fire. A view of features, not a spatial gate."""
        if self.top_maps is None:
            raise ValueError("this capture kept no channel maps: call capture_attention(model, x, "
                             "channel_maps=K) to keep the K most-excited channels of every block")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {k!r}")
        k = min(k, self.top_maps.shape[1])             # a block with fewer maps kept uses them all
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
    "channel_gate_off" / "spatial_gate_off": only CBAM's channel (Eq. 2) or spatial (Eq. 3) gate
    outputs 1, the other still acts; for SE/ECA "channel_gate_off" is "gate_off".
    "zero_top_k": the block's output is zeroed on its k highest-weighted channels.
    The block's own record still shows what its gates computed; everything after it changes."""
    block: str                     # a record name, e.g. "layer3.1"
    mode: str = "gate_off"
    k: int = 5

    def __post_init__(self):
        if self.mode not in INTERVENTIONS:
            raise ValueError(f"unknown intervention {self.mode!r}; choose one of {', '.join(map(repr, INTERVENTIONS))}")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {self.k!r}")


INTERVENTIONS = ("gate_off", "channel_gate_off", "spatial_gate_off", "zero_top_k")
ONE_OF_TWO_GATES = ("channel_gate_off", "spatial_gate_off")   # one of two gates alone (CBAM's)


def interventions(kind: str) -> tuple[str, ...]:
    """The edits that mean something for a block of the kind named `kind`: a kind with one gate
    (SE, ECA) has "only the channel gate" off equal to all of it off, and no spatial gate."""
    two_gates = attention_kind(kind).has_spatial_gate
    return INTERVENTIONS if two_gates else tuple(m for m in INTERVENTIONS if m not in ONE_OF_TWO_GATES)


def strongest_channels(weights: torch.Tensor, k: int) -> torch.Tensor:
    """[B, min(k, C)] indices of the k highest of `weights` [B, C], highest first; ties go to the
    lower channel index, as the channel charts label them (SE/ECA gates often saturate at 1)."""
    return weights.argsort(dim=1, descending=True, stable=True)[:, :k]


def capture_attention(model: nn.Module, x: torch.Tensor, intervention: Intervention | None = None,
                      require_attention: bool = True, channel_maps: int = 0) -> Capture:
    """Run `model` on `x` ([B, 3, H, W]) once and return its logits and every block's attention,
    optionally with one block's attention edited (`Intervention`). A model without attention
    blocks is an error unless `require_attention=False` (then `layers` is empty).

    `channel_maps=K` also keeps each block's output on its K highest-weighted channels
    (`record.top_maps`, behind `record.activity`: the SE/ECA spatial view); choosing and copying
    32 of them costs about 5% of a ResNet-50 forward pass, so they are kept only on request.

    The model runs in its current mode: in train mode BatchNorm normalises with batch statistics
    and updates its running averages, as any training-mode forward does (`model.eval()` first for
    inference behaviour). Records are on the CPU whatever the model's device."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a [B, 3, H, W] tensor with B >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(channel_maps, int) or channel_maps < 0:
        raise ValueError(f"channel_maps must be a whole number >= 0, got {channel_maps!r}")
    sites = attention_sites(model)
    if not sites and require_attention:
        raise ValueError(f"{type(model).__name__} has no SE, ECA or CBAM attention blocks to capture "
                         f"(known modules: {', '.join(sorted(ATTENTION_MODULES))})")
    call, seen = CallHooks(), {}

    def recorder(key, transform):
        def hook(module, inputs, output):
            if call.mine():
                seen[key] = transform(output)
        return hook

    def block_output(i):
        def transform(output):                              # output: [B, C, h, w]
            if not channel_maps:
                return output.shape[2:], None, None
            weights = seen[(i, "channel")]
            top = strongest_channels(weights, channel_maps)  # [B, K]
            # index_select copies whole channel planes (3x faster than gather at 56x56), and the
            # copy is safe from the in-place residual add and ReLU that follow
            maps = torch.stack([o.index_select(0, t.to(o.device)) for o, t in zip(output, top)])
            return output.shape[2:], top.cpu(), maps.float().cpu()
        return transform

    with call:
        for i, site in enumerate(sites):
            call.add(site.channel_gate, recorder((i, "channel"), lambda o: o.reshape(o.shape[0], -1).float().cpu()))
            if site.spatial_gate is not None:
                call.add(site.spatial_gate, recorder((i, "spatial"), lambda o: o[:, 0].float().cpu()))
            if channel_maps or site.spatial_gate is None:   # CBAM's spatial gate gives the size
                call.add(site.module, recorder((i, "output"), block_output(i)))
        if intervention is not None:                        # after the recorders: records stay unedited
            register_intervention(intervention, sites, call)
        with torch.inference_mode():
            logits = call.run(model, x)
    return Capture(logits.float().cpu(), [_record(i, site, seen) for i, site in enumerate(sites)
                                          if (i, "channel") in seen],   # a module forward never ran: no record
                   tuple(x.shape[2:]))


def register_intervention(edit: Intervention, sites: list[AttentionSite], call: CallHooks) -> None:
    """Hooks on `call` that apply `edit` to the forward passes it runs: the edited gates output 1,
    or the block's output loses its k highest-weighted channels. Hooks on one module run in the
    order they were registered, so hooks registered before these see what the gates computed."""
    names = [s.name for s in sites]
    if edit.block not in names:
        raise ValueError(f"no attention block named {edit.block!r}; blocks: {', '.join(names)}")
    site = sites[names.index(edit.block)]

    def gate_off(module, inputs, output):
        return torch.ones_like(output) if call.mine() else None

    if edit.mode == "zero_top_k":
        weights = {}

        def keep_weights(module, inputs, output):          # output: [B, C] or [B, C, 1, 1]
            if call.mine():
                weights["channel"] = output.detach().reshape(output.shape[0], -1)

        def zero_top_k(module, inputs, output):            # output: [B, C, h, w]
            if not call.mine():
                return None
            w = weights["channel"]
            keep = torch.ones_like(w).scatter_(1, strongest_channels(w, edit.k), 0)
            return output * keep[:, :, None, None].to(output.dtype)

        call.add(site.channel_gate, keep_weights)
        call.add(site.module, zero_top_k)
        return
    if edit.mode == "spatial_gate_off" and site.spatial_gate is None:
        raise ValueError(f"{edit.block} is {site.attention.display}: it has no spatial gate to switch off; "
                         "use 'gate_off' or 'zero_top_k'")
    gates = {"gate_off": (site.channel_gate, site.spatial_gate), "channel_gate_off": (site.channel_gate,),
             "spatial_gate_off": (site.spatial_gate,)}[edit.mode]
    for gate in gates:
        if gate is not None:
            call.add(gate, gate_off)


def _record(i: int, site: AttentionSite, seen: dict) -> AttentionRecord:
    spatial = seen.get((i, "spatial"))
    feature_size, top, maps = seen.get((i, "output")) or (spatial.shape[1:], None, None)
    return AttentionRecord(
        name=site.name, module=site.module_name, kind=site.kind, stage=site.stage, block=site.block,
        channel=seen[(i, "channel")], spatial=spatial,
        feature_size=tuple(feature_size), top_channels=top, top_maps=maps)
