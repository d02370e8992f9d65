"""Evaluate the bundled models on freshly generated test images and write their model card.

    python -m lens card                  # writes pretrained/MODEL_CARD.md and weights/card.json
    python -m lens card --weights DIR    # candidates from training.train: DIR/MODEL_CARD.md
    python -m lens card --faithfulness 30 --faithfulness-only   # only deletion/insertion, into the card there

Every number in the card is measured here (`lens.card_evaluation`) from the committed weights,
on images of a seed that training never saw, or read from the training logs committed beside the
weights (`<name>.train.json`). The tests re-run `evaluate` and check the card's numbers.
"""
import argparse
import json
import math
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from safetensors import safe_open

from blocks import ACTIVITY_CHANNELS, attention_kind
from pretrained.bundled import CARD_JSON, CARD_MD, WEIGHTS_DIR
from pretrained.registry import load_trained
from training.shapes import SHIFTS
from training.train import LOGIT_MARGIN, RECIPES, Recipe

from .card_evaluation import (CARD_BASELINES, PINNED, PINNED_WITHIN, SIZE_BANDS, HeldOutSet, accuracy,
                              accuracy_by_size, correct, faithfulness, gate_off_costs, localisation, pinned_shares)
from .localisation import MEASURES
from .study_faithfulness import EXPLAINED, RANDOM, Faithfulness
from .study_stats import SATURATED_AT

TEST_SEED = 2026            # never used in training (0) or validation (1)
TEST_IMAGES = 500           # per test set: in distribution and each shift
PLAIN = "plain-resnet18-shapes"
IN_DISTRIBUTION = "in distribution"
# the targets the bundled models are held to (issue #10)
ACCURACY_TARGET, SHIFT_TARGET, PINNED_TARGET, GATE_OFF_TARGET = 0.95, 0.90, 0.05, 10.0


def models_in(weights: Path) -> list[str]:
    """The shapes models whose weights are in `weights`, the plain one (the baselines' source) last."""
    return sorted((p.name.removesuffix(".safetensors") for p in weights.glob("*-resnet18-shapes.safetensors")),
                  key=lambda n: (n == PLAIN, n != "cbam-resnet18-shapes", n))


def training_metadata(path: Path) -> dict:
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["training"])


@lru_cache(maxsize=2)        # keyed by the card's own constants, not by a user
def test_sets(seed: int, images: int, size: int, version: int) -> dict[str, HeldOutSet]:
    """The in-distribution test set and, for shapes v2, one per shift (the same scenes, one factor changed)."""
    shifts = SHIFTS if version == 2 else ()
    return {IN_DISTRIBUTION: HeldOutSet.render(seed, images, size, version),
            **{s: HeldOutSet.render(seed, images, size, version, s) for s in shifts}}


def evaluate(name: str, images: int = TEST_IMAGES, seed: int = TEST_SEED, weights: Path = WEIGHTS_DIR,
             faithful: Faithfulness | None = None) -> dict:
    """Everything the card says about model `name` (`weights/<name>.safetensors`), measured now. The
    localisation baselines come from the plain model in the same folder (none without one). With
    `faithful`, deletion and insertion too, on the first `faithful.images` in-distribution images (the
    slowest part by far: about 2,000 forward passes per image)."""
    path = weights / f"{name}.safetensors"
    loaded = load_trained(path)                 # on the CPU: the card's numbers are the CPU's, wherever it runs
    attention = loaded.model.attention
    training = training_metadata(path)
    version = training.get("dataset_version", 1)
    sets = test_sets(seed, images, loaded.preprocess.input_size, version)
    test = sets[IN_DISTRIBUTION]
    hits = correct(loaded.model, test)             # one pass: the accuracy and its split by object size
    result = {"attention": attention, "file_bytes": path.stat().st_size, "training": training,
              "parameters": sum(p.numel() for p in loaded.model.parameters()), "dataset_version": version,
              "test_images": images, "mask_share": round(float(test.masks.mean()), 4),
              "accuracy": {k: hits.double().mean().item() if s is test else accuracy(loaded.model, s)
                           for k, s in sets.items()},
              "accuracy_by_size": accuracy_by_size(hits, test.extents)}
    log = path.with_name(f"{name}.train.json")
    if log.exists():
        result["training_log"] = json.loads(log.read_text())
    if attention is not None:
        pinned = pinned_shares(loaded.model, test)
        costs = gate_off_costs(loaded.model, test, list(pinned), result["accuracy"][IN_DISTRIBUTION])
        plain = weights / f"{PLAIN}.safetensors"
        places = localisation(loaded.model, load_trained(plain).model if plain.exists() else None, test)
        result["blocks"] = {b: {"pinned": pinned[b], "gate_off_cost": costs[b], "localisation": places[b]}
                            for b in pinned}
        if faithful is not None:
            record_faithfulness(result, loaded.model, test, faithful, name)
    return result


def record_faithfulness(entry: dict, model, test: HeldOutSet, plan: Faithfulness, name: str = "") -> None:
    """Into a card entry of an attention model: the settings (with the images scored and the seconds it
    took) under "faithfulness", and each block's means (`card_evaluation.faithfulness`) under its
    "faithfulness"; the entry's other fields are left as they are."""
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"{name}: deletion and insertion on {done} of {total} images, {time.perf_counter() - start:.0f} s",
              flush=True)

    measured = faithfulness(model, test, plan, progress)
    entry["faithfulness"] = {**plan.settings(), "scored": min(plan.images, len(test.labels)),
                             "seconds": round(time.perf_counter() - start, 1)}
    for block, means in measured.items():
        entry["blocks"][block]["faithfulness"] = means


def add_faithfulness(card: dict, plan: Faithfulness, weights: Path = WEIGHTS_DIR, seed: int = TEST_SEED) -> dict:
    """`card` (card.json's contents) with deletion and insertion measured now for every attention model
    on the first `plan.images` of the images its accuracy was measured on (at most its "test_images"),
    written in as `evaluate` writes them; every other field stays as it was (the input is not changed)."""
    card = json.loads(json.dumps(card))
    for name, entry in card.items():
        if entry["attention"] is None:
            continue
        loaded = load_trained(weights / f"{name}.safetensors")
        test = HeldOutSet.render(seed, min(plan.images, entry["test_images"]), loaded.preprocess.input_size,
                                 entry["dataset_version"])          # the first images of `test_sets`' set
        record_faithfulness(entry, loaded.model, test, plan, name)
    return card


def targets(card: dict) -> list[dict]:
    """One row per model and target: what was measured and whether it meets the target."""
    rows = []
    for name, c in card.items():
        acc = c["accuracy"]
        rows.append({"model": name, "target": f"accuracy in distribution >= {ACCURACY_TARGET:.0%}",
                     "measured": f"{acc[IN_DISTRIBUTION]:.1%}", "met": acc[IN_DISTRIBUTION] >= ACCURACY_TARGET})
        shifts = {k: v for k, v in acc.items() if k != IN_DISTRIBUTION}
        if shifts:
            worst = min(shifts, key=shifts.get)
            rows.append({"model": name, "target": f"accuracy on every shift >= {SHIFT_TARGET:.0%}",
                         "measured": f"lowest: {shifts[worst]:.1%} ({worst})", "met": shifts[worst] >= SHIFT_TARGET})
        blocks = c.get("blocks")
        if not blocks:
            continue
        most = max(blocks, key=lambda b: blocks[b]["pinned"])
        shown = {f"{b['pinned']:.1%}" for b in blocks.values()}
        rows.append({"model": name, "target": f"pinned channel weights < {PINNED_TARGET:.0%} in every block",
                     "measured": f"{shown.pop()} in every block" if len(shown) == 1
                     else f"highest: {blocks[most]['pinned']:.1%} ({most})",
                     "met": blocks[most]["pinned"] < PINNED_TARGET})
        costly = max(blocks, key=lambda b: blocks[b]["gate_off_cost"])
        rows.append({"model": name, "target": f"attention off costs >= {GATE_OFF_TARGET:.0f} points at the most "
                                              "important block",
                     "measured": f"{blocks[costly]['gate_off_cost']:.1f} points ({costly})",
                     "met": blocks[costly]["gate_off_cost"] >= GATE_OFF_TARGET})
        if attention_kind(c["attention"]).has_spatial_gate:
            beating = [b for b in blocks if beats_baselines(blocks[b]["localisation"])]
            rows.append({"model": name, "target": "spatial gate beats all three baselines on AUC at >= half its blocks",
                         "measured": f"{len(beating)} of {len(blocks)} blocks" + (f" ({', '.join(beating)})" if beating else ""),
                         "met": 2 * len(beating) >= len(blocks)})
    return rows


def beats_baselines(scores: dict, measure: str = "AUC") -> bool:
    """Whether the block's own map scores above every baseline on `measure`; a score that was not
    measured (no plain model, or a map without mass on every image) cannot be beaten or claimed."""
    values = [scores[m][measure] for m in ("attention", *CARD_BASELINES)]
    return None not in values and all(values[0] > v for v in values[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lens card",
                                     description="Measure the shapes models and write their model card.")
    parser.add_argument("--weights", type=Path, help="a folder of candidate weights from training.train: its "
                        "card goes beside them (default: the bundled models and pretrained/MODEL_CARD.md)")
    parser.add_argument("--images", type=int, default=TEST_IMAGES, help="test images per set (default: %(default)s)")
    parser.add_argument("--faithfulness", type=int, default=TEST_IMAGES, metavar="N",
                        help="deletion and insertion of every block's map on the first N in-distribution test "
                        "images (default: %(default)s; 0: not measured): about 2,000 forward passes per image and "
                        "model, 3-6 s on two CPU cores (beside other work, OMP_NUM_THREADS=1 keeps it near 6 s)")
    parser.add_argument("--faithfulness-only", action="store_true", help="measure only deletion and insertion, "
                        "into the card.json already there: every other number in it stays as it is")
    args = parser.parse_args(argv)
    weights = args.weights or WEIGHTS_DIR
    if not models_in(weights):
        parser.error(f"no shapes models (*-resnet18-shapes.safetensors) in {weights}")
    if args.faithfulness < 0 or (args.faithfulness_only and args.faithfulness == 0):
        parser.error(f"--faithfulness must be a whole number >= {1 if args.faithfulness_only else 0}")
    plan = Faithfulness(args.faithfulness) if args.faithfulness else None
    if args.faithfulness_only:
        if not (weights / CARD_JSON.name).exists():
            parser.error(f"no card to add to: {weights / CARD_JSON.name} (run python -m lens card first)")
        card = add_faithfulness(json.loads((weights / CARD_JSON.name).read_text()), plan, weights)
    else:
        card = {}
        for name in models_in(weights):
            card[name] = evaluate(name, args.images, weights=weights, faithful=plan)
            print(name, card[name]["accuracy"], flush=True)
    (weights / CARD_JSON.name).write_text(json.dumps(card, indent=1) + "\n")
    (weights / CARD_MD.name if args.weights else CARD_MD).write_text(render_card(card))
    return 0


def _score(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _defined(scores: dict) -> str:
    """The share of images where a map has mass; "-" for a baseline that was not measured."""
    measured = any(scores[m] is not None for m in MEASURES) or scores["defined"] > 0
    return f"{scores['defined']:.0%}" if measured else "-"


def _accuracy_rows(card: dict) -> str:
    columns = [IN_DISTRIBUTION, *(s for s in SHIFTS if any(s in c["accuracy"] for c in card.values()))]
    head = "| model | attention | parameters | file | " + " | ".join(columns) + " |\n|---|---|---|---|" + "---|" * len(columns)
    rows = [f"| `{name}` | {c['attention'] or 'none'} | {c['parameters']:,} | {c['file_bytes'] / 1e6:.1f} MB | "
            + " | ".join(f"{c['accuracy'][k]:.1%}" if k in c["accuracy"] else "-" for k in columns) + " |"
            for name, c in card.items()]
    return "\n".join([head, *rows])


def _size_rows(card: dict) -> str:
    """Accuracy in distribution by band of object size, with each band's number of images."""
    head = ("| model | " + " | ".join(band for band, _, _ in SIZE_BANDS) + " |\n|---|" + "---|" * len(SIZE_BANDS))
    rows = [f"| `{name}` | " + " | ".join(_band(c["accuracy_by_size"][band]) for band, _, _ in SIZE_BANDS) + " |"
            for name, c in card.items() if "accuracy_by_size" in c]
    return "\n".join([head, *rows]) if rows else "Not measured for these models."


def _band(measured: dict) -> str:
    return "-" if measured["accuracy"] is None else f"{measured['accuracy']:.1%} ({measured['images']})"


def _block_rows(blocks: dict) -> str:
    maps = ("attention", *CARD_BASELINES)
    head = ("| block | pinned | attention off: cost (points) | AUC | mass ratio | pointing game | map defined |\n"
            "|---|---|---|---|---|---|---|")
    rows = [f"| {b} | {v['pinned']:.1%} | {v['gate_off_cost']:+.1f} | "
            + " | ".join(" / ".join(_score(v["localisation"][m][measure]) for m in maps)
                         for measure in ("AUC", "mass ratio", "pointing game"))
            + " | " + " / ".join(_defined(v["localisation"][m]) for m in maps) + " |"
            for b, v in blocks.items()]
    return "\n".join([head, *rows])


def _faithfulness_rows(blocks: dict) -> str:
    """Per block: each map's mean deletion / insertion AUC, the random maps' band, and where the block
    map's deletion AUC fell against its image's band."""
    head = ("| block | block map: deletion / insertion | Grad-CAM | centred Gaussian | random maps: deletion (band) | "
            "random maps: insertion (band) | block map's deletion below / inside / above the band | Grad-CAM's "
            "below the band |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for b, v in blocks.items():
        f = v["faithfulness"]
        deletion, insertion = f["deletion_auc"], f["insertion_auc"]
        below, inside = f["better_than_chance"]["block map"]["deletion"], f["inside_band"]["block map"]["deletion"]
        cells = [f"{deletion[m]:.3f} / {insertion[m]:.3f}" for m in ("block map", "Grad-CAM", "centred Gaussian")]
        cells += [f"{a[RANDOM[0]]:.3f} ({a[RANDOM[1]]:.3f}-{a[RANDOM[2]]:.3f})" for a in (deletion, insertion)]
        cells += [f"{below:.0%} / {inside:.0%} / {max(0.0, 1 - below - inside):.0%}",
                  f"{f['better_than_chance']['Grad-CAM']['deletion']:.0%}"]
        rows.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows])


def faithfulness_reading(c: dict) -> str:
    """What one model's deletion and insertion measured, in plain words, from its card entry."""
    blocks = {b: v["faithfulness"] for b, v in c["blocks"].items()}
    n = len(blocks)
    deletion = {b: f["deletion_auc"] for b, f in blocks.items()}
    under_mean = [b for b, d in deletion.items() if d["block map"] < d[RANDOM[0]]]
    under_band = [b for b, d in deletion.items() if d["block map"] < d[RANDOM[1]]]
    over_mean = [b for b, f in blocks.items() if f["insertion_auc"]["block map"] > f["insertion_auc"][RANDOM[0]]]
    cam_lower = [b for b, d in deletion.items() if d["Grad-CAM"] < d["block map"]]
    blob_lower = [b for b, d in deletion.items() if d["centred Gaussian"] < d["block map"]]
    better = {b: f["better_than_chance"]["block map"]["deletion"] for b, f in blocks.items()}
    inside = {b: f["inside_band"]["block map"]["deletion"] for b, f in blocks.items()}
    best = max(better, key=better.get)

    def where(names: list[str]) -> str:
        return f"{len(names)} of {n} blocks" + (f" ({', '.join(names)})" if names and len(names) < n else "")

    return (f"The block map's mean deletion AUC is below the random maps' mean at {where(under_mean)}, and below "
            f"the band's averaged low end at {where(under_band)}; its mean insertion AUC is above the random maps' "
            f"mean at {where(over_mean)}. Image by image, the map's deletion AUC was below its image's random band "
            f"(better than chance) on {min(better.values()):.0%} to {max(better.values()):.0%} of the images per "
            f"block (most: {best}, {better[best]:.0%}), and inside it (no better than chance) on "
            f"{min(inside.values()):.0%} to {max(inside.values()):.0%}. Lower than the block map's mean deletion "
            f"AUC: Grad-CAM's at {where(cam_lower)}, the centred Gaussian's at {where(blob_lower)}.")


def _faithfulness_section(card: dict) -> str:
    measured = {n: c for n, c in card.items() if "faithfulness" in c}
    if not measured:
        return "Not measured for these models (`python -m lens card --faithfulness N`)."
    settings = next(iter(measured.values()))["faithfulness"]
    scored = sorted({c["faithfulness"]["scored"] for c in measured.values()})
    count = f"{scored[0]}" if len(scored) == 1 else " or ".join(map(str, scored))
    per_image = sum(c["faithfulness"]["seconds"] for c in measured.values()) / sum(
        c["faithfulness"]["scored"] for c in measured.values())
    head = FAITHFULNESS_TEMPLATE.format(
        count=count, n=next(iter(measured.values()))["test_images"], explained=EXPLAINED, steps=settings["steps"],
        fill=settings["fill"], randoms=settings["randoms"], seed=settings["seed"], activity=ACTIVITY_CHANNELS,
        low=f"{settings['band'][0]:.0%}", high=f"{settings['band'][1]:.0%}", per_image=per_image)
    models = [f"### `{name}`: {c['faithfulness']['scored']} images\n\n{faithfulness_reading(c)}\n\n"
              f"{_faithfulness_rows(c['blocks'])}" for name, c in measured.items()]
    return "\n\n".join([head, *models])


FAITHFULNESS_TEMPLATE = """Deletion and insertion (`lens.faithfulness`, each image scored as `python -m lens study \
--faithfulness` scores it) on the first {count} of the {n} in-distribution test images. Each image costs \
about 2,000 forward passes per model ({per_image:.1f} s per image and model in the run that measured it), \
so `python -m lens card --faithfulness N` sets how many. {explained}

Here: each image's top prediction as the class, the {fill} fill, {steps} steps; the block map is the one \
localised above (CBAM: its spatial gate; SE/ECA: where its {activity} most-excited channels fire); Grad-CAM \
is the model's own, at the block; {randoms} uniform random maps of the block's resolution (seed {seed}) make \
each image's band, their {low} and {high} quantiles. Each cell is a mean over the images; the random band in \
brackets is the images' band ends averaged (not a spread of the images' mean random AUC). The last columns \
share out the images: the block map's deletion AUC below its image's band (better than chance), inside it \
(no better than chance) or above it (worse than chance)."""


def _training_rows(card: dict) -> str:
    logs = {n: c["training_log"] for n, c in card.items() if "training_log" in c}
    if not logs:
        return ("No training logs are bundled with these weights. Their metadata records the training's "
                "wall time and last validation accuracy: " + "; ".join(
                    f"`{n}` {c['training']['train_seconds'] / 60:.1f} min, {c['training']['validation_accuracy']:.1%}"
                    for n, c in card.items()) + ".")
    head = ("| model | epochs | wall time | threads | final validation accuracy |\n|---|---|---|---|---|")
    rows = [f"| `{n}` | {len(log['epochs'])} | {log['wall_seconds'] / 60:.1f} min{_devices(log)} | "
            f"{', '.join(map(str, log['threads']))} | {log['epochs'][-1]['validation_accuracy']:.1%} |"
            for n, log in logs.items()]
    rows += [f"| `{n}` | no log bundled | | | |" for n in card if n not in logs]
    epochs = max(len(log["epochs"]) for log in logs.values())
    per_epoch = ["| epoch | " + " | ".join(f"`{n}` loss / validation" for n in logs) + " |",
                 "|---|" + "---|" * len(logs)]
    for i in range(epochs):
        cells = [f"{log['epochs'][i]['loss']:.3f} / {log['epochs'][i]['validation_accuracy']:.1%}"
                 if i < len(log["epochs"]) else "-" for log in logs.values()]
        per_epoch.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows, "", *per_epoch])


def _devices(log: dict) -> str:
    """The wall time's ' on NVIDIA H200': the devices a log's epochs ran on (older logs name none)."""
    devices = sorted({e["device"] for e in log["epochs"] if "device" in e})
    return f" on {', '.join(devices)}" if devices else ""


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def recipe_reasons(recipe: dict) -> str:
    """The recipe's number in `train.RECIPES` (fields a log lacks take `Recipe`'s defaults, as
    `train` reads old checkpoints), its fields as logged, and why its choices, one line per choice."""
    logged, recipe = recipe, {**asdict(Recipe()), **recipe}
    number = next((n for n, r in RECIPES.items() if asdict(r) == recipe), None)
    lines = [(f"Recipe {number} of `training/train.py`" if number else "A recipe not in `training/train.py`")
             + f": `{json.dumps(logged)}`."]
    if not recipe["stem_pool"]:
        lines.append("- No max-pool after the stem: every feature map twice as fine (the resolution pilot, 160 px, "
                     "gained most on small objects, which make most errors), for the same parameters.")
    if recipe["batch"] > Recipe.batch:
        lines.append(f"- Batch {recipe['batch']} at learning rate {recipe['lr']:g} (recipe 4: {Recipe.batch} at "
                     f"{Recipe.lr:g}): fewer, fuller steps for a GPU, the rate scaled by Adam's square-root rule "
                     "(Malladi et al., 2022).")
    if recipe["label_smoothing"] == 0:
        lines.append("- No label smoothing: it caps the optimal logit margin, so a gate that only rescales "
                     "features can be switched off and raise the top class's confidence at no cost in accuracy "
                     "(the v1 models, trained with 0.1, did); with one-hot targets every bit of margin counts.")
    if recipe["gate_logit_penalty"]:
        lines.append(f"- Saturation is penalised where it happens: {recipe['gate_logit_penalty']} x "
                     f"mean((|logit| - {LOGIT_MARGIN:g})+^2) over every channel gate's logits, free within "
                     f"sigmoid(+-{LOGIT_MARGIN:g}) = {sigmoid(-LOGIT_MARGIN):.4f}..{sigmoid(LOGIT_MARGIN):.4f} (a "
                     f"weight {PINNED} needs |logit| > {math.log(1 / PINNED_WITHIN - 1):.1f}), so a gate can say "
                     "keep or drop and still move with the image.")
    if recipe["gate_logit_penalty"] and recipe["gate_weight_decay"] == recipe["weight_decay"]:
        lines.append(f"- The gates decay like every other weight ({recipe['weight_decay']}): a stronger decay on "
                     "them left them static over images (2.0 in recipe 2, 0.5 in recipe 3) and, with 0.5, still let "
                     f"some weights be pinned ({PINNED}).")
    elif recipe["gate_weight_decay"] != recipe["weight_decay"]:
        lines.append(f"- The gates decay {recipe['gate_weight_decay']} (the other weights {recipe['weight_decay']}), "
                     "to hold them off their rails.")
    if recipe["mixed_precision"]:
        lines.append("- bf16 autocast and channels-last tensors: 1.6x (CBAM) to 2.2x (plain) faster steps than "
                     "fp32 on the training CPU (`bench/train_step.py`).")
    return "\n".join(lines)


def _recipes(card: dict) -> str:
    """The recipe argued once when every model shares it, else each model's."""
    recipes = [c["training"]["recipe"] for c in card.values()]
    if all(r == recipes[0] for r in recipes):
        return recipe_reasons(recipes[0])
    return "\n\n".join(f"`{name}`: {recipe_reasons(r)}" for name, r in zip(card, recipes))


def render_card(card: dict) -> str:
    first = next(iter(card.values()))
    target_rows = "\n".join(f"| `{r['model']}` | {r['target']} | {r['measured']} | {'met' if r['met'] else 'missed'} |"
                            for r in targets(card))
    blocks = "\n\n".join(f"### `{name}`\n\n{_block_rows(c['blocks'])}" for name, c in card.items() if c.get("blocks"))
    return CARD_TEMPLATE.format(
        recipe=_recipes(card), version=first["dataset_version"], seed=TEST_SEED,
        n=first["test_images"], accuracy=_accuracy_rows(card), sizes=_size_rows(card), targets=target_rows,
        blocks=blocks, faithfulness=_faithfulness_section(card), training=_training_rows(card),
        mask_share=first["mask_share"], pinned=PINNED,
        saturated_at=SATURATED_AT, activity=ACTIVITY_CHANNELS)


CARD_TEMPLATE = """# Model card: the bundled shapes models

Small attention ResNets that ship with Attention Lens so the app works offline: each was trained
from scratch by `python -m training.train` on the procedural shapes dataset (`training/shapes.py`,
version {version}: 10 shape classes in random colour, size, rotation and position, with distractors
and a ground-truth object mask per image). Every number below is measured by
`python -m lens card` from the committed weights and logs; the tests re-measure them.

## Architecture
ResNet-18 layout (torchvision names), stem width 16 (stages of 16, 32, 64, 128 channels), 10
classes, RGB input normalised with ImageNet's mean and std. Attention after the last BN of every
residual block: SE (r=4, biases), ECA (adaptive k), CBAM (MLP r=4 with biases, 7x7 spatial conv +
BN). r=4 rather than the papers' 16 because 16 channels / 16 would leave one hidden unit. Weights
are fp16 safetensors whose metadata holds architecture, preprocessing, labels and training.

## Training
{recipe}

Masks are never used in training: the attention maps are the models' own. What each earlier recipe
measured is in `training/train.py`.

{training}

## Accuracy
{n} freshly generated test images of seed {seed} (never used in training or validation) per
column; each shift column re-renders the same scenes with one factor changed (`shapes.SHIFTS`:
objects below the training median size, grayscale, low contrast, clutter drawn over the object).

{accuracy}

By object size (its diameter over the image side), on the in-distribution column's images; the
number of images in each band in brackets:

{sizes}

## Targets

| model | target | measured | |
|---|---|---|---|
{targets}

## Per block
On the in-distribution test images. "pinned": the share of the block's channel weights
{pinned} (ties make a "top-k channels" pick arbitrary; not the study's looser "saturated", at
or above {saturated_at}). "attention off": accuracy lost when every gate of the block outputs 1
(negative: accuracy gained). Localisation of the block's map (CBAM: its spatial gate; SE/ECA, which
have none: the mean activity of the {activity} most-excited channels), each cell "map / centred
Gaussian / plain model's channel-mean activation at the block /
plain model's Grad-CAM at the block for the true class". AUC: the probability that an object pixel
outranks a background pixel (0.5: chance); mass ratio: the map's mass on the object over the
object's share of the image (1: uniform; objects cover {mask_share:.1%} of the image on average);
pointing game: the share of images whose map peaks on the object. Means over the images where the
map has any mass ("map defined", for each of the four maps). A baseline that could not be measured
(no plain model beside the weights) reads "-", and the spatial gate is not counted as beating it.

{blocks}

## Does the model use what the map marks?
{faithfulness}

## Limits
Trained on synthetic shapes only: on photographs the predictions are meaningless, although the
attention maps still show what the blocks respond to (edges, colour blobs). Use an ImageNet model
for photographs.
"""


if __name__ == "__main__":
    raise SystemExit(main())
