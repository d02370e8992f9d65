"""CPU forward time of recipe 5's architecture against the bundled models', and the size of its weights.

    python -m bench.recipe5_speed [--runs 30] [--threads N]

Per attention (plain, SE, ECA, CBAM): the bundled model as the app loads it (`pretrained.load`,
recipe 4: 128 px, stem max-pool) against a recipe-5 model (128 px, no stem max-pool) written by
`train.save` and read back by the bundled loader (`registry.load_trained`); batch 1, eval,
inference mode, this machine's CPU threads (or `--threads`), candidates interleaved
(`bench.timing`). Prints the median of per-round ratios recipe 5 / bundled (target, issue 21: at
most 4x) and the four fp16 files' sizes (target: at most 40 MB together).
"""
import argparse
import tempfile
from pathlib import Path

import torch

import pretrained
from bench.timing import interleaved
from pretrained.bundled import model_name
from pretrained.registry import load_trained
from training.train import BUNDLED_RECIPE, RECIPES, build, save
from training.train_all import ATTENTIONS

RATIO_TARGET, SIZE_TARGET = 4.0, 40e6


def recipe5_file(attention: str | None, out: Path) -> Path:
    """A freshly initialised recipe-5 model, as `train.save` writes it (fp16, with its metadata)."""
    model, _ = build(attention, RECIPES[5])
    return save(model.eval(), attention, RECIPES[5], {"wall_seconds": 0, "epochs": [{"validation_accuracy": 0.0}]}, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, {args.runs} interleaved rounds; "
          f"recipe 5 / bundled (recipe {BUNDLED_RECIPE}), quartiles of the per-round ratios")
    sizes = {}
    with tempfile.TemporaryDirectory() as folder:
        for attention in ATTENTIONS:
            name = model_name(attention)
            path = recipe5_file(attention, Path(folder))
            sizes[name] = path.stat().st_size
            new, old = load_trained(path), pretrained.load(name, device="cpu")
            x_new = torch.rand(1, 3, new.preprocess.input_size, new.preprocess.input_size)
            x_old = torch.rand(1, 3, old.preprocess.input_size, old.preprocess.input_size)
            with torch.inference_mode():
                t = interleaved({"recipe 5": lambda: new.model(x_new), "bundled": lambda: old.model(x_old)},
                                runs=args.runs)
            ratio = t.ratio("recipe 5", "bundled")
            print(f"{name}: {t.median('recipe 5') * 1e3:.1f} ms vs {t.median('bundled') * 1e3:.1f} ms, {ratio} "
                  f"({'within' if ratio.median <= RATIO_TARGET else 'over'} {RATIO_TARGET:g}x); "
                  f"{sizes[name] / 1e6:.2f} MB fp16")
    total = sum(sizes.values())
    print(f"the four fp16 files: {total / 1e6:.2f} MB ({'within' if total <= SIZE_TARGET else 'over'} "
          f"{SIZE_TARGET / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
