"""Cost of capture_attention over a plain forward pass of the same model.

    python -m bench.capture_overhead [--runs 15]

CBAM/SE/ECA-ResNet-50, batch 1, 224x224, inference mode; interleaved medians in one process.
Target (issue #3): capture time / plain forward time <= 1.03.
"""
import argparse

import torch

from bench.timing import interleaved_medians
from blocks import attention_resnet, capture_attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.runs} interleaved runs")
    for kind in ("cbam", "se", "eca"):
        model = attention_resnet(50, kind).eval()

        def plain():
            with torch.inference_mode():
                model(x)

        t = interleaved_medians({"plain": plain, "capture": lambda: capture_attention(model, x)}, runs=args.runs)
        print(f"{kind:>4}-ResNet-50: capture / plain forward = {t['capture'] / t['plain']:.3f}x "
              f"(plain {t['plain'] * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
