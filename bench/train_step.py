"""Training-step time of the bundled shapes models: fp32 (recipe 2) against bf16 autocast with
channels-last tensors (recipe 3), the same `training.train.train_step` either way.

    python -m bench.train_step [--runs 9] [--batch 96]

One batch of recipe-sized inputs (128 px), this machine's CPU threads, candidates interleaved in
one process; prints per model the median of per-round ratios fp32 / mixed (above 1: mixed is
faster) and each candidate's median milliseconds per image. bf16 pays on CPUs with AVX512-BF16 or
AMX; elsewhere autocast emulates it and may be slower.
"""
import argparse

import torch

from bench.timing import interleaved
from training.train import RECIPES, build, train_step

KINDS = ("none", "se", "eca", "cbam")


def step_of(kind: str, recipe, batch: int):
    model, optimizer = build(None if kind == "none" else kind, recipe)
    model.train()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, recipe.size, recipe.size, generator=generator)
    labels = torch.randint(10, (batch,), generator=generator)
    return lambda: train_step(model, optimizer, x, labels, recipe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--batch", type=int, default=96)
    args = parser.parse_args()
    fp32, mixed = RECIPES[2], RECIPES[3]
    print(f"{torch.get_num_threads()} threads, batch {args.batch}, {fp32.size} px")
    for kind in KINDS:
        timings = interleaved({"fp32": step_of(kind, fp32, args.batch), "mixed": step_of(kind, mixed, args.batch)},
                              runs=args.runs, warmup=2)
        ms = {name: 1000 * timings.median(name) / args.batch for name in ("fp32", "mixed")}
        print(f"{kind:>5}: fp32 / mixed {timings.ratio('fp32', 'mixed')}; "
              f"{ms['fp32']:.2f} vs {ms['mixed']:.2f} ms per image")


if __name__ == "__main__":
    main()
