"""Cost of Grad-CAM and Score-CAM (blocks.attribution) over a plain forward pass of the same model.

    python -m bench.attribution_cost [--runs 10] [--score-runs 2]

CBAM-ResNet-50, batch 1, 224x224, eval mode; the plain forward runs in inference mode, as
`capture_attention` does. Calls interleaved in one process, ratio = median of per-round ratios.
Grad-CAM is one forward with autograd recording plus one backward from the logit to the earliest
block asked for (issue #11: at most one backward per image, model, block set and class), so one
block costs about as much as all 16 when it is the first. Score-CAM takes no gradient but one
forward per channel of its block (batches of 16): it runs on layer1.0 (256 channels), in fewer rounds.
"""
import argparse

import torch

from bench.timing import interleaved
from blocks import attention_resnet, grad_cam, grad_cams, residual_blocks, score_cam

SCORE_BLOCK = "layer1.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--score-runs", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    model = attention_resnet(50, "cbam").eval()
    blocks = residual_blocks(model)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CBAM-ResNet-50, 224 px, batch 1")

    def plain():
        with torch.inference_mode():
            model(x)

    t = interleaved({"plain": plain, "last": lambda: grad_cam(model, x, "layer4.2"),
                     "first": lambda: grad_cam(model, x, "layer1.0"),
                     "all": lambda: grad_cams(model, x, blocks)}, runs=args.runs, warmup=1)
    print(f"{args.runs} interleaved rounds, plain forward {t.median('plain') * 1e3:.0f} ms")
    print(f"  Grad-CAM of layer4.2 / plain forward = {t.ratio('last', 'plain')}")
    print(f"  Grad-CAM of layer1.0 / plain forward = {t.ratio('first', 'plain')}")
    print(f"  Grad-CAM of all {len(blocks)} blocks in one pass / plain forward = {t.ratio('all', 'plain')}")
    channels = model.get_submodule(SCORE_BLOCK).conv3.out_channels
    t = interleaved({"plain": plain, "score": lambda: score_cam(model, x, SCORE_BLOCK)},
                    runs=args.score_runs, warmup=0)
    print(f"{args.score_runs} interleaved rounds: Score-CAM of {SCORE_BLOCK} ({channels} channels) / plain forward "
          f"= {t.ratio('score', 'plain')}, {t.median('score'):.1f} s")


if __name__ == "__main__":
    main()
