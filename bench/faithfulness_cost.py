"""Cost of deletion and insertion (lens.faithfulness) and of the ROAD fill (lens.road).

    python -m bench.faithfulness_cost [--runs 5] [--road-runs 3] [--block layer3.1] [--threads N] [--road-size PX] [--road-only]

1. One block's panel (`block_panel`: the block's map, its reverse, Grad-CAM, a centred Gaussian and
   8 random maps; deletion and insertion, 20 steps) on the bundled CBAM model and its star sample,
   as a multiple of one plain forward pass of that image (inference mode), for the blur and ROAD fills.
2. The ROAD imputation against grad-cam's `NoisyLinearImputer(noise=0)` on the same image with the
   same masks: the 38 masks of the block map's 20-step deletion and insertion, and one mask with
   half the pixels missing (the block map's lower-ranked half: one large hole); `--road-size` resizes
   the image (and so the masks) for this part, e.g. 224 for an ImageNet model's input.
Calls interleaved in one process (bench.timing), ratios = medians of per-round ratios.
"""
import argparse

import torch
import torch.nn.functional as F
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

import pretrained
from bench.timing import interleaved
from lens import inspect_image
from lens.faithfulness import block_panel
from lens.road import impute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--road-runs", type=int, default=3)
    parser.add_argument("--block", default="layer3.1")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own)")
    parser.add_argument("--road-size", type=int, help="the ROAD comparison's image size (default: the model's input)")
    parser.add_argument("--road-only", action="store_true", help="only part 2, the ROAD imputation against grad-cam's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = pretrained.load("cbam-resnet18-shapes")
    inspection = inspect_image(model, "assets/shapes-star.png")
    x = inspection.x
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {model.name}, "
          f"{x.shape[-2]}x{x.shape[-1]} px, block {args.block}")

    def plain():
        with torch.inference_mode():
            model.model(x)

    if not args.road_only:
        t = interleaved({"plain": plain, "blur": lambda: block_panel(inspection, args.block)}, runs=args.runs,
                        warmup=1)
        print(f"{args.runs} interleaved rounds, plain forward {t.median('plain') * 1e3:.1f} ms")
        print(f"  panel, blur fill / plain forward = {t.ratio('blur', 'plain')}, {t.median('blur'):.2f} s")
        t = interleaved({"plain": plain, "road": lambda: block_panel(inspection, args.block, fill="road")},
                        runs=args.road_runs, warmup=0)
        print(f"  panel, ROAD fill / plain forward = {t.ratio('road', 'plain')}, {t.median('road'):.1f} s")

    if args.road_size:
        x = F.interpolate(x, size=(args.road_size, args.road_size), mode="bilinear", align_corners=False)
    h, w = x.shape[-2:]
    print(f"ROAD on {h}x{w} px")
    values = F.interpolate(torch.as_tensor(inspection.view(args.block).map.values)[None, None], size=(h, w),
                           mode="bilinear", align_corners=False).flatten()
    ranks = values.argsort(descending=True, stable=True).argsort().view(h, w)
    step = -(-h * w // 20)
    counts = range(step, h * w, step)
    known = torch.stack([ranks >= c for c in counts] + [ranks < c for c in counts])     # [38, H, W]
    half = (ranks < h * w // 2)[None]                                                    # [1, H, W]
    reference, image = NoisyLinearImputer(noise=0), x[0]
    for name, masks in ((f"the {len(known)} masks of deletion and insertion", known), ("half the pixels", half)):
        t = interleaved({"grad-cam": lambda: [reference(image, m.float()) for m in masks],
                         "ours": lambda: impute(image.expand(len(masks), -1, -1, -1), masks)},
                        runs=args.road_runs, warmup=1)
        print(f"ROAD imputation, {name}: grad-cam {t.median('grad-cam') / len(masks) * 1e3:.0f} ms a mask, "
              f"ours {t.median('ours') / len(masks) * 1e3:.0f} ms; grad-cam / ours = {t.ratio('grad-cam', 'ours')}")


if __name__ == "__main__":
    main()
