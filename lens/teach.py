"""What a block computes, in words and numbers read from the actual module (for the Teach panel)."""
import math

from torch import nn

from blocks import AttentionKind, eca_kernel_size


def _first(module: nn.Module, kind, where=lambda m: True):
    return next((m for m in module.modules() if isinstance(m, kind) and where(m)), None)


def _hidden(module: nn.Module) -> int:
    fc1 = _first(module, (nn.Linear, nn.Conv2d), lambda m: getattr(m, "in_channels", 0) != 2)
    return fc1.out_features if isinstance(fc1, nn.Linear) else fc1.out_channels


def _eca_line(channels: int, k: int) -> str:
    value, adaptive = (math.log2(channels) + 1) / 2, eca_kernel_size(channels)
    return (f"1-D convolution across channels with kernel k = {k} (ECA-Net Eq. 12 with gamma = 2, b = 1 "
            f"gives |(log2 {channels} + 1) / 2|odd = |{value:.2f}|odd = {adaptive}"
            f"{'' if adaptive == k else '; this model fixes k per stage'}), no bias")


def _se(module: nn.Module, c: int, h: int, w: int) -> list[str]:
    r = _hidden(module)
    pool = "max" if getattr(module, "mode", "avg") == "max" else "avg"   # timm's SE: always avg
    return [f"- SE (Hu et al., CVPR 2018): squeeze by global {'maximum' if pool == 'max' else 'average'} "
            f"pooling -> FC {c} -> {r} -> ReLU -> FC {r} -> {c} -> sigmoid -> scale each channel",
            f"- reduction ratio r = {c} / {r} = {c // r}",
            f"- `w = sigmoid(W2 relu(W1 {pool}pool(x)))`, `y = w * x` (one weight per channel)"]


def _eca(module: nn.Module, c: int, h: int, w: int) -> list[str]:
    conv = _first(module, nn.Conv1d)
    return ["- ECA (Wang et al., CVPR 2020): global average pooling -> " + _eca_line(c, conv.kernel_size[0])
            + " -> sigmoid -> scale", "- `w = sigmoid(conv1d_k(avgpool(x)))`, `y = w * x` -- "
            "no dimensionality reduction: each channel's weight sees itself and its (k - 1) / 2 "
            "neighbours on each side"]


def _cbam(module: nn.Module, c: int, h: int, w: int) -> list[str]:
    spatial = _first(module, nn.Conv2d, lambda m: m.in_channels == 2)
    conv1d = _first(module, nn.Conv1d)
    channel, shared = ((_eca_line(c, conv1d.kernel_size[0]), "conv1d_k") if conv1d is not None else
                       (f"shared MLP {c} -> {_hidden(module)} -> {c} (r = {c // _hidden(module)})", "MLP"))
    k = spatial.kernel_size[0]
    has_bn = _first(module, nn.BatchNorm2d) is not None
    conv = f"BN(conv{k}x{k}([max_c; mean_c]))" if has_bn else f"conv{k}x{k}([max_c; mean_c])"
    return ["- CBAM (Woo et al., ECCV 2018), channel then spatial attention:",
            f"  - channel: avg- and max-pooled descriptors through a {channel}, summed -> sigmoid -> "
            f"scale each channel: `Mc = sigmoid({shared}(avgpool x) + {shared}(maxpool x))`",
            f"  - spatial: [max over channels, mean over channels] (2 x {h} x {w}) -> "
            f"{k}x{k} conv{' -> BatchNorm' if has_bn else ''} -> sigmoid -> scale each "
            f"position: `Ms = sigmoid({conv})`, one weight per pixel of the {h} x {w} map"]


# the kinds whose modules this file reads for their real sizes; any other kind is explained from its record
SIZED = {"se": _se, "eca": _eca, "cbam": _cbam}


def _from_record(kind: AttentionKind, h: int, w: int) -> list[str]:
    gates = (f"a channel gate, then a spatial gate (one weight per pixel of the {h} x {w} map)"
             if kind.has_spatial_gate else "a channel gate (one weight per channel)")
    return [f"- {kind.display} ({kind.paper}): {gates}", f"- `{kind.formula}`"]


def explain(module: nn.Module, record, model: nn.Module | None = None) -> str:
    """Markdown: the block's formula with its real sizes, and its parameter count."""
    c = record.channels
    h, w = record.feature_size
    kind = record.attention
    params = sum(p.numel() for p in module.parameters())
    share = ""
    if model is not None:
        total = sum(p.numel() for p in model.parameters())
        percent = 100 * params / total
        share = f" ({f'{percent:.3g}%' if percent >= 0.001 else 'under 0.001%'} of the model's {total:,})"
    sized = SIZED.get(kind.name)
    return "\n".join([f"**{record.name}** -- {kind.display} on a feature map of {c} channels x {h} x {w}",
                      f"- parameters of this attention block: **{params:,}**{share}",
                      *(sized(module, c, h, w) if sized else _from_record(kind, h, w))])
