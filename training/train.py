"""Train the bundled offline models on the procedural shapes dataset (`training.shapes`).

    python -m training.train --attention cbam      # or se, eca, none; recipe 4 (v2); see --help
    python -m training.train_all --recipe 5 --out DIR   # all four on a GPU, within minutes

Writes `<name>.safetensors` (fp16) whose metadata describes the architecture, the preprocessing,
the class names and the training, so `pretrained.load` needs nothing else, and `<name>.train.json`:
per-epoch loss, validation accuracy and seconds, total wall time, torch threads and the recipe.

Training saves a checkpoint after every epoch (model, optimizer, schedule, the torch, numpy and
data-order generator states, the log) to `--checkpoint-dir`, and a rerun with the same arguments
resumes from the last completed epoch and ends with the same weights as an uninterrupted run, so
the four models can be trained in parts. All four in the background, one after another, from the
repository root (one line; rerun the same line after an interruption: each model resumes from its
last completed epoch, a finished one is skipped in seconds):

    mkdir -p ~/.cache/attention-lens/train && setsid nohup sh -c 'for a in cbam se eca none; do n=$a; [ $a = none ] && n=plain; nice -n 19 .venv/bin/python -m training.train --attention $a --out "$HOME/.cache/attention-lens/train/final" >> "$HOME/.cache/attention-lens/train/$n-resnet18-shapes.log" 2>&1 || exit 1; done' >/dev/null 2>&1 &

Checkpoints: `~/.cache/attention-lens/train/<name>.pt`; weights and `<name>.train.json` land in
`.../train/final`. Check them with `python -m lens card --weights .../train/final`
(the card of the four, beside them); to bundle them, copy the `.safetensors` and `.train.json`
files into `pretrained/weights/`, then run `python -m training.samples` (the app's samples, from
shapes v2) and `python -m lens card` (the bundled card the tests check).

Recipes for v2 (AdamW, one-cycle, 40,000 images, no label smoothing; attention never supervised:
masks are not used). Label smoothing caps the logits (the optimal margin is finite), so gates that
only rescale features can raise confidence when switched off without a cost in accuracy; without it
the targets are one-hot.
- 2: 22 epochs, weight decay 2.0 on the attention modules' parameters (0.05 on the rest). CBAM
  reached 88.2% on 500 fresh images, its gates dead: channel weights barely moved with the image
  (standard deviation over images 0.00-0.03 in stages 1-3, inter-class correlation 1.00) and the
  spatial gates were flat (mass ratio 0.97-1.04) and ranked the object below the background in
  stages 2-3 (AUC 0.13-0.23). Small objects failed: 31% correct under 15% of the image side.
- 3: 30 epochs, gate weight decay 0.5, bf16 autocast and channels-last: `bench/train_step.py` puts
  a step at 1.6x (CBAM) to 2.2x (plain) faster than fp32 on this AVX512-BF16 CPU. CBAM pilots on
  v1 (5,000 images x 8 epochs) had put the share of channel weights within 1e-6 of 0 or 1 at up to
  34% in a block with gate decay 0.05, 7% with 0.5 and 1.6% with 2.0. Stopped at epoch 9 of 30
  (validation 78.1%): the decay of 0.5 already left stage 2-3 channel gates nearly static (standard
  deviation over images 0.007-0.024) while 16-20% of the weights of layer3.0 and layer4.1 lay
  within 1e-6 of 0 or 1, and the spatial gates ranked the object below the background at layer2.0
  and layer3.0 (AUC 0.12-0.13): a weight decay both silences some gates and fails to stop others
  from saturating.
- 4 (the bundled models): recipe 3 with the ordinary weight decay (0.05) on the gates and, instead,
  a penalty on what saturation is: 0.1 x mean((|logit| - 6)+^2) over every channel gate's logits
  (`GateLogits`), free within sigmoid(+-6) = 0.0025..0.9975 and growing past it (1e-6 from 0 or 1
  needs |logit| > 13.8). Measured wall times on both cores: CBAM 53.5 min, SE 42.1, ECA 34.9, plain
  34.0 (`<name>.train.json`); what they reach is in `pretrained/MODEL_CARD.md`.
- Resolution pilot: recipe 4 with `--size 160`, ECA, 55.2 minutes (validation 92.2%). On the card's
  test scenes rendered at 160 px: 93.4% in distribution, 87.6% small, 93.8% grayscale, 89.6% low
  contrast, 91.6% clutter, 50.0% for objects under 15% of the side; attention off costs 11.8
  points (layer1.0). Better than 128 px on every set, short of the 95% / 90% targets.
- 5 (for a lent GPU, all four at once: `python -m training.train_all --recipe 5 --out DIR`, sized
  to fit 8 minutes on an H200; its pilot on both cores here estimated 57 hours): recipe 4 with
  - no stem max-pool (`stem_pool=False`): the lever the pilot measured is resolution (160 px: +2.0
    in distribution, +6.8 on below-median objects), and objects under 15% of the side are the most
    errors (46-56% correct). Dropping the pool makes every feature map twice as fine (layer1 64x64,
    layer4 8x8 on 128 px, where 160 px gave 1.25x) for the same parameters, 3.4x the FLOPs and
    1.4-1.7x the CPU forward at batch 1 (`bench/recipe5_speed.py`). 128 px stays: shapes renders at
    most 160 px, and 160 px on top would be 5.2x the FLOPs (the H200 estimate's training: 353 s
    against 226 s) and 1.3x the rendering.
  - width 16 kept: width 32 is 4x the FLOPs and was never piloted; the budget goes to resolution.
  - 80,000 images, 25 epochs: twice the distinct scenes of recipe 4 and 1.7x its 1.2 M image-steps
    (more scenes rather than more passes over the same ones).
  - batch 384, learning rate 0.008: four times recipe 4's batch keeps a GPU's kernels full (a step of
    96 images of this small net is launch-bound there); twice its rate by Adam's square-root scaling
    rule (Malladi et al., "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", 2022).
  - as recipe 4: no label smoothing, the saturation penalty 0.1 beyond +-6 with the ordinary gate
    decay (0.0% of channel weights pinned at 0 or 1 in every block of the bundled models), bf16
    autocast and channels-last (on the GPU too), and attention never supervised (the masks are not used).
"""
import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from blocks import attention_resnet, attention_sites

from pretrained.bundled import MEAN, STD, WEIGHTS_DIR, model_name, to_input

from .shapes import CLASSES, render_batch

TRAIN_SEED, VALIDATION_SEED = 0, 1                          # TEST_SEED (model card) is 2026
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Recipe:
    dataset: int = 1                # training.shapes version
    depth: int = 18
    width: int = 16                 # stem width: stages have 16, 32, 64, 128 channels
    ratio: int = 4                  # r for SE/CBAM: 16 would leave 1 hidden unit at 16 channels
    size: int = 128
    train_images: int = 30_000
    validation_images: int = 1000
    epochs: int = 12
    batch: int = 96
    lr: float = 4e-3
    weight_decay: float = 0.05
    gate_weight_decay: float = 0.05  # AdamW decay of the attention modules' parameters
    label_smoothing: float = 0.1
    seed: int = 0
    mixed_precision: bool = False   # bf16 autocast, channels-last: 1.7x faster on an AVX512-BF16 CPU
    gate_logit_penalty: float = 0.0  # weight of the penalty on channel-gate logits beyond +-LOGIT_MARGIN
    stem_pool: bool = True          # the stem's 3x3/2 max-pool (False: every stage at twice the resolution)


RECIPES = {
    1: Recipe(),                    # the recipe of the first bundled models (shapes v1)
    2: Recipe(dataset=2, train_images=40_000, epochs=22, label_smoothing=0.0, gate_weight_decay=2.0),
    3: Recipe(dataset=2, train_images=40_000, epochs=30, label_smoothing=0.0, gate_weight_decay=0.5,
              mixed_precision=True),
    4: Recipe(dataset=2, train_images=40_000, epochs=30, label_smoothing=0.0, gate_weight_decay=0.05,
              mixed_precision=True, gate_logit_penalty=0.1),
    5: Recipe(dataset=2, stem_pool=False, train_images=80_000, epochs=25, batch=384, lr=8e-3, label_smoothing=0.0,
              gate_weight_decay=0.05, mixed_precision=True, gate_logit_penalty=0.1),
}
BUNDLED_RECIPE = 4              # the recipe of the weights in pretrained/weights/: the command's default
LOGIT_MARGIN = 6.0              # sigmoid(6) = 0.9975: a gate can say "keep" or "drop" clearly and still move


def default_checkpoint_dir() -> Path:
    home = os.environ.get("ATTENTION_LENS_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "attention-lens") / "train"


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and quarter turns: the classes are defined up to rotation and reflection."""
    if torch.rand((), generator=generator) < 0.5:
        x = x.flip(3)
    return x.rot90(int(torch.randint(4, (), generator=generator)), (2, 3))


def rendered(seed: int, count: int, recipe: Recipe, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Samples start..start+count-1 of `seed` at the recipe's size and dataset version: the images and
    labels (the masks are not used: attention is never supervised)."""
    images, _, labels = render_batch(seed, start, count, recipe.size, recipe.dataset)
    return images, labels


@dataclass(frozen=True)
class Data:
    """The training and validation sets a run keeps in memory: uint8 images [N, H, W, 3], int64 labels [N]."""
    images: torch.Tensor
    labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor

    @classmethod
    def render(cls, recipe: Recipe, render=rendered) -> "Data":
        """The recipe's sets, each drawn by `render(seed, count, recipe)` -> (images, labels) as numpy
        arrays (default: on one core)."""
        sets = (render(TRAIN_SEED, recipe.train_images, recipe),
                render(VALIDATION_SEED, recipe.validation_images, recipe))
        return cls(*(torch.from_numpy(a) for images, labels in sets for a in (images, labels)))

    def to(self, device: torch.device) -> "Data":
        return Data(*(getattr(self, f.name).to(device) for f in fields(self)))


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


@torch.inference_mode()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 250) -> float:
    model.eval()
    correct = sum(int((model(to_input(images[i:i + batch])).argmax(1) == labels[i:i + batch]).sum())
                  for i in range(0, len(images), batch))
    return correct / len(images)


def parameter_groups(model: torch.nn.Module, recipe: Recipe) -> list[dict]:
    """The attention modules' parameters (`layerS.I.attn.*`) decay with `gate_weight_decay`."""
    gate = [p for n, p in model.named_parameters() if ".attn." in n]
    rest = [p for n, p in model.named_parameters() if ".attn." not in n]
    return [{"params": rest, "weight_decay": recipe.weight_decay},
            {"params": gate, "weight_decay": recipe.gate_weight_decay}]


_MULTIARRAY = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray     # numpy 2 / 1.26
# what np.random.get_state() pickles: the only objects besides tensors a training checkpoint holds,
# so a checkpoint is read with weights_only=True like any other file
NUMPY_RNG_STATE = [_MULTIARRAY._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _layout(recipe: Recipe) -> torch.memory_format:
    return torch.channels_last if recipe.mixed_precision else torch.contiguous_format


def build(attention: str | None, recipe: Recipe, device: torch.device = CPU
          ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A freshly initialised model (initialised on the CPU, then on `device` in the recipe's memory
    layout) and its optimizer (fused on a GPU: one kernel per step)."""
    model = attention_resnet(recipe.depth, attention, num_classes=len(CLASSES), width=recipe.width,
                             ratio=recipe.ratio, zero_init_residual=True, stem_pool=recipe.stem_pool)
    model = model.to(device, memory_format=_layout(recipe))
    return model, torch.optim.AdamW(parameter_groups(model, recipe), lr=recipe.lr, fused=device.type == "cuda")


class GateLogits:
    """Within `with`, keeps the input of every channel gate's sigmoid (its logits) of `model`'s forward passes."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.logits = model, []

    def __enter__(self) -> "GateLogits":
        self.handles = [site.channel_gate.register_forward_pre_hook(lambda module, inputs: self.logits.append(inputs[0]))
                        for site in attention_sites(self.model)]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()

    def penalty(self) -> torch.Tensor:
        """Mean over gates of mean(relu(|logit| - LOGIT_MARGIN)^2): zero while every gate stays within
        sigmoid(+-6), growing with how far past it a gate is driven (towards exactly 0 or 1)."""
        return torch.stack([F.relu(z.float().abs() - LOGIT_MARGIN).square().mean() for z in self.logits]).mean()


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor,
               recipe: Recipe) -> torch.Tensor:
    """One optimisation step on inputs `x` [B, 3, H, W] (on the model's device); returns the
    classification loss as a 0-d tensor there, so that a GPU step needs no wait for the last one."""
    x = x.contiguous(memory_format=_layout(recipe))
    with torch.autocast(x.device.type, torch.bfloat16, enabled=recipe.mixed_precision), GateLogits(model) as gates:
        logits = model(x)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
    penalised = recipe.gate_logit_penalty and gates.logits
    optimizer.zero_grad(set_to_none=True)
    (loss + recipe.gate_logit_penalty * gates.penalty() if penalised else loss).backward()
    optimizer.step()
    return loss.detach()


class RecipeMismatch(SystemExit):
    """A checkpoint exists for this model but was made with another recipe."""


def _load_checkpoint(path: Path, attention: str | None, recipe: Recipe) -> dict | None:
    if not path.exists():
        return None
    with torch.serialization.safe_globals(NUMPY_RNG_STATE):
        state = torch.load(path, map_location="cpu", weights_only=True)
    ours = {"attention": attention, **asdict(recipe)}
    theirs = {"attention": state["attention"], **asdict(Recipe()), **state["recipe"]}   # older: defaults
    differ = [f"{k}: checkpoint {theirs.get(k)!r}, now {v!r}" for k, v in ours.items() if theirs.get(k) != v]
    if differ:
        raise RecipeMismatch(f"{path} was trained with another recipe ({'; '.join(differ)}); "
                             "rerun with its arguments to resume it, or delete it / pass another "
                             "--checkpoint-dir to start over")
    return state


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write-then-rename, so an interruption never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(attention: str | None, recipe: Recipe, checkpoint_dir: Path, log=print, data: Data | None = None,
          device: torch.device = CPU) -> tuple[torch.nn.Module, dict]:
    """Train (or resume) one model on `device`, on `data` (rendered here if None); returns it in eval
    mode and its training log."""
    start = time.perf_counter()
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model, optimizer = build(attention, recipe, device)
    steps_per_epoch = recipe.train_images // recipe.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=recipe.epochs * steps_per_epoch,
                                                   pct_start=0.15)
    path = checkpoint_dir / f"{model_name(attention)}.pt"
    state = _load_checkpoint(path, attention, recipe)
    history = {"epochs": [], "wall_seconds": 0.0, "threads": []}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        generator.set_state(state["generator"])
        history = state["history"]
        log(f"resuming {path} after epoch {len(history['epochs'])}/{recipe.epochs}")
    history["threads"].append(torch.get_num_threads())

    remaining = range(len(history["epochs"]), recipe.epochs)
    if remaining:                                           # a finished run needs no data
        if data is None:
            data = Data.render(recipe)
            log(f"generated {len(data.images)} training images in {time.perf_counter() - start:.0f} s")
        data = data.to(device)
    history["wall_seconds"] += time.perf_counter() - start

    for epoch in remaining:
        began = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.images), generator=generator).to(device)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch:(step + 1) * recipe.batch]
            losses.append(train_step(model, optimizer, augment(to_input(data.images[idx]), generator),
                                     data.labels[idx], recipe))
            schedule.step()
            if step % 50 == 0:
                log(f"epoch {epoch + 1}/{recipe.epochs} step {step}/{steps_per_epoch} "
                    f"loss {torch.stack(losses[-50:]).mean():.3f} ({time.perf_counter() - began:.0f} s into the epoch)")
        loss = torch.stack(losses).mean().item()            # waits for the device's last step
        seconds = time.perf_counter() - began
        history["epochs"].append({"epoch": epoch + 1, "loss": loss,
                                  "validation_accuracy": accuracy(model, data.val_images, data.val_labels),
                                  "seconds": round(seconds, 1), "device": device_name(device)})
        history["wall_seconds"] += time.perf_counter() - began
        _save_checkpoint(path, {"attention": attention, "recipe": asdict(recipe), "model": model.state_dict(),
                                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                                "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                                "generator": generator.get_state(), "history": history})
        log(f"epoch {epoch + 1}: {history['epochs'][-1]}, checkpoint saved")
    return model.eval(), {**history, "wall_seconds": round(history["wall_seconds"]), "recipe": asdict(recipe)}


def save(model: torch.nn.Module, attention: str | None, recipe: Recipe, info: dict, out: Path = WEIGHTS_DIR) -> Path:
    """fp16 safetensors whose metadata is everything `pretrained.load` needs, and the training log
    as `<name>.train.json` beside it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{model_name(attention)}.safetensors"
    training = {"train_seconds": info["wall_seconds"], "validation_accuracy": info["epochs"][-1]["validation_accuracy"],
                "dataset_version": recipe.dataset, "recipe": asdict(recipe)}
    metadata = {
        "architecture": json.dumps({"depth": recipe.depth, "attention": attention, "width": recipe.width,
                                    "num_classes": len(CLASSES), "options": {"ratio": recipe.ratio},
                                    "stem_pool": recipe.stem_pool}),
        "preprocess": json.dumps({"input_size": recipe.size, "crop_pct": 1.0, "interpolation": "bilinear",
                                  "mean": MEAN, "std": STD}),
        "labels": json.dumps(list(CLASSES)),
        "training": json.dumps(training),
    }
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    (out / f"{model_name(attention)}.train.json").write_text(json.dumps(info, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train a bundled shapes model, resuming from its last "
                                                 "checkpoint (progress is printed).")
    parser.add_argument("--attention", choices=["none", "se", "eca", "cbam"], required=True)
    parser.add_argument("--recipe", type=int, choices=sorted(RECIPES), default=BUNDLED_RECIPE,
                        help="1: the v1 models; 2-5: shapes v2, 5 for a GPU (`training.train_all`) "
                             "(default: %(default)s, the bundled models')")
    parser.add_argument("--epochs", type=int, help="override the recipe's")
    parser.add_argument("--train-images", type=int, help="override the recipe's")
    parser.add_argument("--gate-weight-decay", type=float, help="override the recipe's")
    parser.add_argument("--size", type=int, help="override the recipe's image side in pixels")
    parser.add_argument("--checkpoint-dir", type=Path, default=default_checkpoint_dir(),
                        help="where the per-epoch checkpoints go (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR,
                        help="where the weights and the training log go (default: %(default)s; required with an "
                             "override)")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    attention = None if args.attention == "none" else args.attention
    recipe = RECIPES[args.recipe]
    overrides = {k: v for k, v in (("epochs", args.epochs), ("train_images", args.train_images),
                                   ("gate_weight_decay", args.gate_weight_decay), ("size", args.size))
                 if v is not None}
    if overrides and args.out == WEIGHTS_DIR:
        parser.error(f"--{next(iter(overrides)).replace('_', '-')} makes a pilot: give it an --out folder "
                     "(the bundled weights come from a recipe as it stands)")
    recipe = replace(recipe, **overrides)
    model, info = train(attention, recipe, args.checkpoint_dir, log=lambda s: print(s, flush=True))
    print(f"saved {save(model, attention, recipe, info, args.out)}: {info['epochs'][-1]}, "
          f"{info['wall_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
