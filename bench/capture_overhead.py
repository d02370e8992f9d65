"""Cost of capture_attention over a plain forward pass of the same model.

    python -m bench.capture_overhead [--runs 60]

CBAM/SE/ECA-ResNet-50, batch 1, 224x224, inference mode; the two calls interleaved in one process,
ratio = median of per-round ratios. Target (issue #3): capture time / plain forward time <= 1.03.
Also printed: the same with the channel maps the app keeps for its SE/ECA view (an opt-in extra).
"""
import argparse

import torch

from bench.timing import interleaved
from blocks import attention_resnet, capture_attention

APP_CHANNEL_MAPS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.runs} interleaved rounds")
    for kind in ("cbam", "se", "eca"):
        model = attention_resnet(50, kind).eval()

        def plain():
            with torch.inference_mode():
                model(x)

        t = interleaved({"plain": plain, "capture": lambda: capture_attention(model, x),
                         "maps": lambda: capture_attention(model, x, channel_maps=APP_CHANNEL_MAPS)},
                        runs=args.runs)
        print(f"{kind:>4}-ResNet-50: capture / plain forward = {t.ratio('capture', 'plain')}, "
              f"plain {t.median('plain') * 1e3:.1f} ms")
        print(f"      with {APP_CHANNEL_MAPS} channel maps kept per block (the app's setting): "
              f"{t.ratio('maps', 'plain')}")


if __name__ == "__main__":
    main()
