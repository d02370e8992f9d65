"""Forward time of our attention ResNet-50s versus plain ResNet-50 and timm's equivalents.

    python -m bench.model_speed [--runs 30] [--formats contiguous channels_last]

Batch 1, 224x224, eval, inference mode, this machine's CPU threads. Prints medians of per-round
ratios of interleaved runs (the machine is shared and noisy: absolute times mean little).
Targets (issue #2): ours <= 1.0x timm's equivalent; CBAM-ResNet-50 <= 1.10x plain ResNet-50.
Also printed, to show where CBAM's cost lies: a lower bound for any CBAM built from separate
PyTorch ops (`CBAMMemoryPasses`), and the same passes with CBAM's real channel MLP
(`CBAMWithoutSpatialConv`): everything but the spatial conv, BatchNorm and sigmoid.
"""
import argparse
from collections.abc import Callable

import torch
from timm.models.resnet import Bottleneck, ResNet
from torch import nn

from bench.timing import interleaved
from blocks import attention_resnet
from blocks.cbam import ChannelAttentionMLP

KINDS = ("se", "eca", "cbam")
TIMM_BIAS = {"se": True, "eca": True, "cbam": False}     # timm's CBAM MLP has no bias


class CBAMMemoryPasses(nn.Module):
    """Only the six passes over the feature map that CBAM makes when each op is its own kernel:
    mean and max over space, the channel scaling, max and mean over channels, the spatial
    scaling -- no MLP, no conv, no BatchNorm. No unfused CBAM can be faster than this."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(torch.sigmoid(x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True)))
        return x.mul_(torch.sigmoid(x.amax(1, keepdim=True) + x.mean(1, keepdim=True)))


class CBAMWithoutSpatialConv(nn.Module):
    """CBAM's real channel stage (shared MLP, no bias as in timm), then the spatial stage's
    three passes without its conv, BatchNorm and sigmoid-of-conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel = ChannelAttentionMLP(channels, bias=False, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel(x)
        return x.mul_(torch.sigmoid(x.amax(1, keepdim=True) + x.mean(1, keepdim=True)))


def resnet50_with(attention: Callable[[int], nn.Module]) -> nn.Module:
    """Plain ResNet-50 with `attention(channels)` after every block's last BatchNorm."""
    model = attention_resnet(50)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            block.attn = attention(block.bn3.num_features)
    return model


def timm_resnet50(attention):
    return ResNet(Bottleneck, (3, 4, 6, 3), block_args=dict(attn_layer=attention))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--formats", nargs="+", default=["contiguous", "channels_last"],
                        choices=["contiguous", "channels_last"])
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {"resnet50": attention_resnet(50), "cbam-passes": resnet50_with(lambda channels: CBAMMemoryPasses()),
              "cbam-no-spatial-conv": resnet50_with(CBAMWithoutSpatialConv)}
    for kind in KINDS:
        models[f"ours-{kind}"] = attention_resnet(50, kind, bias=TIMM_BIAS[kind])
        models[f"timm-{kind}"] = timm_resnet50(kind)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, 224x224, "
          f"{args.runs} interleaved rounds; ratio (quartiles of the per-round ratios)")
    for fmt in args.formats:
        memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        x = torch.randn(1, 3, 224, 224).to(memory_format=memory_format)
        calls = {}
        for name, model in models.items():
            model = model.eval().to(memory_format=memory_format)
            calls[name] = lambda m=model: m(x)
        with torch.inference_mode():
            t = interleaved(calls, runs=args.runs)
        print(f"\n[{fmt}] plain ResNet-50: {t.median('resnet50') * 1e3:.1f} ms")
        for kind in KINDS:
            print(f"  {kind:>4}: ours/timm = {t.ratio(f'ours-{kind}', f'timm-{kind}')}   "
                  f"ours/plain = {t.ratio(f'ours-{kind}', 'resnet50')}")
        print(f"  CBAM's six memory passes alone / plain = {t.ratio('cbam-passes', 'resnet50')}")
        print(f"  CBAM without its spatial conv / plain = {t.ratio('cbam-no-spatial-conv', 'resnet50')}")


if __name__ == "__main__":
    main()
