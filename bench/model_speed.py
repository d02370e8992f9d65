"""Forward time of our attention ResNet-50s versus plain ResNet-50 and timm's equivalents.

    python -m bench.model_speed [--runs 15] [--formats contiguous channels_last]

Batch 1, 224x224, eval, inference mode, this machine's CPU threads. Prints ratios of medians of
interleaved runs (the machine is shared and noisy: absolute times mean little).
Targets (issue #2): ours <= 1.0x timm's equivalent; CBAM-ResNet-50 <= 1.10x plain ResNet-50.
"""
import argparse

import torch
from timm.models.resnet import Bottleneck, ResNet

from blocks import attention_resnet
from bench.timing import interleaved_medians

KINDS = ("se", "eca", "cbam")


def timm_resnet50(attention):
    return ResNet(Bottleneck, (3, 4, 6, 3), block_args=dict(attn_layer=attention))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--formats", nargs="+", default=["contiguous", "channels_last"],
                        choices=["contiguous", "channels_last"])
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {"resnet50": attention_resnet(50)}
    for kind in KINDS:
        models[f"ours-{kind}"] = attention_resnet(50, kind, bias=kind != "cbam")  # timm CBAM: no MLP bias
        models[f"timm-{kind}"] = timm_resnet50(kind)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, 224x224, "
          f"medians of {args.runs} interleaved runs")
    for fmt in args.formats:
        memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        x = torch.randn(1, 3, 224, 224).to(memory_format=memory_format)
        calls = {}
        for name, model in models.items():
            model = model.eval().to(memory_format=memory_format)
            calls[name] = lambda m=model: m(x)
        with torch.inference_mode():
            t = interleaved_medians(calls, runs=args.runs)
        print(f"\n[{fmt}] plain ResNet-50: {t['resnet50'] * 1e3:.1f} ms")
        for kind in KINDS:
            ours, timm, plain = t[f"ours-{kind}"], t[f"timm-{kind}"], t["resnet50"]
            print(f"  {kind:>4}: ours/timm = {ours / timm:.3f}x   ours/plain = {ours / plain:.3f}x")


if __name__ == "__main__":
    main()
