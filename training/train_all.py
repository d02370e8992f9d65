"""Train the four shapes models (plain, SE, ECA, CBAM) in one command, on a GPU when there is one.

    python -m training.train_all --recipe 5 --out DIR             # on a lent H200: bench/gpu_train_all.sh
    python -m training.train_all --recipe 5 --out DIR --dry-run   # 192 + 64 images, one epoch (the tests)

Renders the training and validation images once, on every CPU core, keeps them in memory (on the
GPU, as uint8), then trains the four models one after another with `training.train.train` (bf16
autocast and channels-last on CUDA as on the CPU) and writes each with `train.save`: fp16
`<name>.safetensors` and `<name>.train.json` (per-epoch loss, validation accuracy, seconds, device),
then `summary.json` (estimate, wall times, final validation accuracies) into DIR; per-epoch
checkpoints go to DIR/checkpoints, so a rerun resumes.

Before it renders anything it prints an estimate of the whole run and stops if that exceeds
`--budget` (480 s: issue 21's 8 minutes, inside the lent machine's 10-minute command). The
estimate is a timed pilot on this machine: the seconds spent so far (after the imports), a small
parallel render scaled to all images, and per model a few timed training steps and a validation
pass scaled to the recipe's steps and epochs. Beside it, for planning from a machine without one,
the H200's: the pilot's render on 16 cores, and the recipe's FLOPs (3x the forward, counted by
`FlopCounterMode`) at `H200_BF16 * H200_UTILISATION`.
"""
import argparse
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from blocks import attention_resnet

from pretrained.bundled import model_name, to_input
from pretrained.device import resolve_device

from .shapes import CLASSES
from .train import (RECIPES, TRAIN_SEED, Data, Recipe, accuracy, build, device_name, rendered, save,
                    train, train_step)

ATTENTIONS = (None, "se", "eca", "cbam")
BUDGET_SECONDS = 480
DRY_RUN = {"train_images": 192, "validation_images": 64, "epochs": 1, "batch": 16}
CHUNK = 250                     # images a render worker draws at a time
PILOT_IMAGES_PER_WORKER, PILOT_WARMUP, PILOT_STEPS = 4, 2, 4
# A dense bf16 matrix product on the lent H200 (the device notes: 769-798 TFLOP/s measured, 990 on
# the datasheet). A step of these nets is far from that: 16-128 channels make a 3x3 conv's GEMM
# N = 16-128 wide and 20-60 FLOP per byte moved, against the H200's balance of about 200, and
# BatchNorm, ReLU, the gates and the residual add are separate memory-bound passes in eager mode.
# A roofline of recipe 5 at batch 384 (each pass at 4 TB/s, each conv at a quarter of the tensor
# cores) gives about 7%; half that is assumed, for kernels short of their roofline.
H200_BF16, H200_UTILISATION, H200_CORES = 790e12, 0.04, 16


@dataclass(frozen=True)
class Estimate:
    """Seconds a run takes: what was spent before it (start-up, pilot), rendering, each model's training."""
    spent: float
    render: float
    models: dict[str, float]

    @property
    def total(self) -> float:
        return self.spent + self.render + sum(self.models.values())

    def epochs_that_fit(self, budget: float, epochs: int) -> int:
        """The most epochs (each model's time is linear in them) that keep the run within `budget`."""
        per_epoch = sum(self.models.values()) / epochs
        return max(0, math.floor((budget - self.spent - self.render) / per_epoch))

    def __str__(self) -> str:
        return (f"{self.total:.0f} s: {self.spent:.0f} s so far, rendering {self.render:.0f} s, training "
                + ", ".join(f"{name} {s:.0f} s" for name, s in self.models.items()))


def forward_flops(attention: str | None, recipe: Recipe) -> int:
    """FLOPs of one image's forward pass through the recipe's model."""
    model = attention_resnet(recipe.depth, attention, len(CLASSES), recipe.width, ratio=recipe.ratio,
                             stem_pool=recipe.stem_pool).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, recipe.size, recipe.size))
    return counter.get_total_flops()


def training_flops(attention: str | None, recipe: Recipe) -> float:
    """A training run's FLOPs: per epoch, forward and backward (3x the forward) of every image
    trained on, and a forward of every validation image."""
    trained = recipe.train_images // recipe.batch * recipe.batch
    return recipe.epochs * forward_flops(attention, recipe) * (3 * trained + recipe.validation_images)


def h200_estimate(recipe: Recipe, render_core_seconds: float) -> Estimate:
    """The run on the lent H200: `render_core_seconds` per image on one core, spread over its 16
    cores, and each model's FLOPs at H200_BF16 * H200_UTILISATION."""
    images = recipe.train_images + recipe.validation_images
    return Estimate(0.0, images * render_core_seconds / H200_CORES,
                    {model_name(a): training_flops(a, recipe) / (H200_BF16 * H200_UTILISATION) for a in ATTENTIONS})


def render_parallel(pool, seed: int, count: int, recipe: Recipe, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """`train.rendered(seed, count, recipe)`, drawn in chunks by the pool's `workers` processes."""
    chunk = max(1, min(CHUNK, math.ceil(count / workers)))
    parts = pool.starmap(rendered, [(seed, min(chunk, count - start), recipe, start)
                                    for start in range(0, count, chunk)])
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pilot(recipe: Recipe, device: torch.device, pool, workers: int, started: float) -> tuple[Estimate, float]:
    """This machine's estimate of the run, and the seconds one core takes to render an image."""
    render_parallel(pool, TRAIN_SEED, workers, recipe, workers)     # one each first: a worker reads the photos once
    count = PILOT_IMAGES_PER_WORKER * workers
    began = time.perf_counter()
    images, labels = render_parallel(pool, TRAIN_SEED, count, recipe, workers)
    per_image = (time.perf_counter() - began) / count
    images, labels = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    batch = torch.arange(recipe.batch, device=device) % count
    x, y = to_input(images[batch]), labels[batch]
    models = {}
    for attention in ATTENTIONS:
        model, optimizer = build(attention, recipe, device)
        model.train()
        for _ in range(PILOT_WARMUP):
            train_step(model, optimizer, x, y, recipe)
        _synchronize(device)
        began = time.perf_counter()
        for _ in range(PILOT_STEPS):
            train_step(model, optimizer, x, y, recipe)
        _synchronize(device)
        step = (time.perf_counter() - began) / PILOT_STEPS
        began = time.perf_counter()
        accuracy(model, images, labels)
        validation = (time.perf_counter() - began) / count * recipe.validation_images
        models[model_name(attention)] = recipe.epochs * (recipe.train_images // recipe.batch * step + validation)
    render = per_image * (recipe.train_images + recipe.validation_images)
    return Estimate(time.perf_counter() - started, render, models), per_image * workers


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description="Train plain, SE, ECA and CBAM shapes models in one run, "
                                                 "on a GPU when there is one (progress is printed).")
    parser.add_argument("--recipe", type=int, choices=sorted(RECIPES), default=max(RECIPES),
                        help="a recipe of training/train.py (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="where the weights, logs and summary.json go")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"the same run on {DRY_RUN['train_images']} + {DRY_RUN['validation_images']} images, "
                             "one epoch")
    parser.add_argument("--epochs", type=int, help="override the recipe's")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help="stop before rendering if the estimate exceeds this many seconds (default: %(default)s)")
    parser.add_argument("--device", help="default: a CUDA GPU when there is one, else the CPU")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="render processes (default: every core, %(default)s)")
    args = parser.parse_args(argv)
    recipe = replace(RECIPES[args.recipe], **(DRY_RUN if args.dry_run else {}),
                     **({"epochs": args.epochs} if args.epochs else {}))
    pool = multiprocessing.get_context("fork").Pool(args.workers)   # forked before CUDA is touched
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True               # one input shape throughout
    torch.set_flush_denormal(True)
    say = lambda line: print(line, flush=True)          # noqa: E731
    say(f"recipe {args.recipe}{' (dry run)' if args.dry_run else ''} on {device_name(device)}, "
        f"{args.workers} render workers: {json.dumps(asdict(recipe))}")
    with pool:
        estimate, core_seconds = pilot(recipe, device, pool, args.workers, started)
        h200 = h200_estimate(recipe, core_seconds)
        say(f"estimate on this machine: {estimate}")
        say(f"estimate on the H200 ({H200_CORES} cores; {H200_BF16 / 1e12:.0f} TFLOP/s bf16 at "
            f"{H200_UTILISATION:.0%}): {h200} (start-up and pilot not counted)")
        if estimate.total > args.budget:
            fit = estimate.epochs_that_fit(args.budget, recipe.epochs)
            raise SystemExit(f"the estimate ({estimate.total:.0f} s) does not fit the budget of {args.budget:.0f} s: "
                             "stopped before rendering" + (f"; --epochs {fit} would fit" if fit else ""))
        began = time.perf_counter()
        data = Data.render(recipe, lambda seed, count, r: render_parallel(pool, seed, count, r, args.workers))
    render_seconds = time.perf_counter() - began
    say(f"rendered {len(data.images)} + {len(data.val_images)} images in {render_seconds:.0f} s")
    data = data.to(device)
    models = {}
    for attention in ATTENTIONS:
        model, info = train(attention, recipe, args.out / "checkpoints", say, data, device)
        path = save(model, attention, recipe, info, args.out)
        models[path.stem] = {"validation_accuracy": info["epochs"][-1]["validation_accuracy"],
                             "train_seconds": info["wall_seconds"]}
        say(f"saved {path}: {models[path.stem]}")
    summary = {"recipe": args.recipe, "dry_run": args.dry_run, "device": device_name(device), "workers": args.workers,
               "estimate_seconds": round(estimate.total), "h200_estimate_seconds": round(h200.total),
               "render_seconds": round(render_seconds), "models": models,
               "total_seconds": round(time.perf_counter() - started)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    say(f"summary: {json.dumps(summary)}")


if __name__ == "__main__":
    main()
