"""Train the bundled offline models on the procedural shapes dataset (`pretrained.shapes`).

    python -m pretrained.train --attention cbam          # or se, eca, none; see --help

Writes `pretrained/weights/<name>.safetensors` (fp16) whose metadata describes the architecture,
the preprocessing and the class names, so `pretrained.load` needs nothing else.
"""
import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from blocks import attention_resnet

from .bundled import MEAN, STD, WEIGHTS_DIR, model_name, to_input
from .shapes import CLASSES, render_batch

TRAIN_SEED, VALIDATION_SEED = 0, 1                          # TEST_SEED (model card) is 2026


@dataclass(frozen=True)
class Recipe:
    depth: int = 18
    width: int = 16                 # stem width: stages have 16, 32, 64, 128 channels
    ratio: int = 4                  # r for SE/CBAM: 16 would leave 1 hidden unit at 16 channels
    size: int = 128
    train_images: int = 30_000
    epochs: int = 12
    batch: int = 96
    lr: float = 4e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    seed: int = 0


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and quarter turns: the classes are defined up to rotation and reflection."""
    if torch.rand((), generator=generator) < 0.5:
        x = x.flip(3)
    return x.rot90(int(torch.randint(4, (), generator=generator)), (2, 3))


@torch.inference_mode()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 250) -> float:
    model.eval()
    correct = sum(int((model(to_input(images[i:i + batch])).argmax(1) == labels[i:i + batch]).sum())
                  for i in range(0, len(images), batch))
    return correct / len(images)


def train(attention: str | None, recipe: Recipe, log=print) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    start = time.perf_counter()
    images, _, labels = render_batch(TRAIN_SEED, 0, recipe.train_images, recipe.size)
    val_images, _, val_labels = render_batch(VALIDATION_SEED, 0, 1000, recipe.size)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    val_images, val_labels = torch.from_numpy(val_images), torch.from_numpy(val_labels)
    log(f"generated {len(images)} training images in {time.perf_counter() - start:.0f} s")

    model = attention_resnet(recipe.depth, attention, num_classes=len(CLASSES), width=recipe.width,
                             ratio=recipe.ratio, zero_init_residual=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = len(images) // recipe.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=recipe.epochs * steps_per_epoch,
                                                   pct_start=0.15)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch:(step + 1) * recipe.batch]
            x = augment(to_input(images[idx]), generator)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if step % 50 == 0:
                done = (epoch * steps_per_epoch + step + 1) / (recipe.epochs * steps_per_epoch)
                elapsed = time.perf_counter() - start
                log(f"epoch {epoch + 1}/{recipe.epochs} step {step}/{steps_per_epoch} loss {np.mean(losses[-50:]):.3f} "
                    f"elapsed {elapsed / 60:.1f} min, ~{elapsed / done / 60 - elapsed / 60:.1f} min left")
        log(f"epoch {epoch + 1}: validation accuracy {accuracy(model, val_images, val_labels):.4f}")
    seconds = time.perf_counter() - start
    info = {"train_seconds": round(seconds), "validation_accuracy": accuracy(model, val_images, val_labels),
            "recipe": asdict(recipe)}
    return model.eval(), info


def save(model: torch.nn.Module, attention: str | None, recipe: Recipe, info: dict) -> Path:
    """fp16 safetensors whose metadata is everything `pretrained.load` needs."""
    WEIGHTS_DIR.mkdir(exist_ok=True)
    path = WEIGHTS_DIR / f"{model_name(attention)}.safetensors"
    metadata = {
        "architecture": json.dumps({"depth": recipe.depth, "attention": attention, "width": recipe.width,
                                    "num_classes": len(CLASSES), "options": {"ratio": recipe.ratio}}),
        "preprocess": json.dumps({"input_size": recipe.size, "crop_pct": 1.0, "interpolation": "bilinear",
                                  "mean": MEAN, "std": STD}),
        "labels": json.dumps(list(CLASSES)),
        "training": json.dumps(info),
    }
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a bundled shapes model (progress is printed).")
    parser.add_argument("--attention", choices=["none", "se", "eca", "cbam"], required=True)
    parser.add_argument("--epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--train-images", type=int, default=Recipe.train_images)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    attention = None if args.attention == "none" else args.attention
    recipe = Recipe(epochs=args.epochs, train_images=args.train_images)
    model, info = train(attention, recipe, log=lambda s: print(s, flush=True))
    print(f"saved {save(model, attention, recipe, info)}: {info}")


if __name__ == "__main__":
    main()
