"""Does the model use what each block's map marks, over a study's images? (`python -m lens study
--faithfulness N`): deletion and insertion (`lens.faithfulness.curves`) of every block's map on N
of the source's images, beside Grad-CAM, a centred Gaussian and random maps, streamed into the
study's per-class partials like every other statistic. No mask is needed: any source will do.

Per scored image and block, each map is scored for the image's top prediction with the same maps
`lens.faithfulness.block_panel` uses -- the block's map (the study's: CBAM's spatial gate, for
SE/ECA where the 8 most-excited channels fire), Grad-CAM of that class at the block, a centred
Gaussian of the block's resolution and `randoms` uniform random maps of it drawn from the same
seed -- so for a CBAM block an image's AUCs equal `block_panel`'s on that image (a test). Blocks
of one resolution share their Gaussian and random maps, which are then scored once per image. An
image's random band is the 5-95% quantiles of its random maps' AUCs; the block's map is "better
than chance" on it when its deletion AUC is below that band (insertion: above it).

Which images: N spread evenly over the source's order (image i is scored when (i+1)N // total >
iN // total), so an image folder, sorted by class, is scored in every class rather than in its
first classes only. Cost: (2 maps per block + 1 + `randoms` per resolution) x (2 x steps - 1)
perturbed inputs per image, in batches -- 52 x 39 = 2,028 for the bundled ResNet-18s at 20 steps
(bench/study_faithfulness_speed.py).
"""
from dataclasses import asdict, dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from blocks import attention_sites, capture_attention, grad_cams
from viz.faithfulness import faithfulness_depth_figure

from .faithfulness import BAND, FILLS, RANDOM_MAPS, curves
from .localisation import centred_gaussian
from .study_stats import ACTIVITY_CHANNELS, _per_class_sum, study_map

MAPS = ("block map", "Grad-CAM", "centred Gaussian")
RANDOM = ("random", f"random {BAND[0]:.0%}", f"random {BAND[1]:.0%}")     # the mean, then the band's ends
CURVES = ("deletion", "insertion")
BETTER = tuple(f"{m} {c}" for m in MAPS[:2] for c in CURVES)           # "better than chance" flags
FIELDS = tuple(f"{c} AUC, {m}" for c in CURVES for m in MAPS + RANDOM) + BETTER


READING = {"deletion": "lower = the model uses what the map marks", "insertion": "higher = the model uses it"}
EXPLAINED = (
    "Each scored image is perturbed for its top prediction: deletion removes the pixels a map ranks highest first "
    "and records the class's probability, insertion restores them first onto a blank (Petsiuk et al., BMVC 2018); "
    "the AUC is the area under that curve. Beside each block's own map: Grad-CAM of the same class at the block, "
    "a centred Gaussian (looks at nothing in particular) and random maps of the block's resolution, whose 5-95% "
    "band on each image is the band of chance (the table gives the band's ends averaged over images); \"better "
    "than chance\" is the share of images where the map's deletion AUC fell below its image's band (insertion: "
    "above it). What it does not show: removed pixels make images unlike the training data, so part of any fall "
    "comes from the removal itself (the blur and mean fills most; ROAD's imputation, Rong et al., ICML 2022, less); "
    "a map that beats chance shows where this model's evidence lies, not that attention explains the prediction "
    "(Jain & Wallace, NAACL 2019).")


@dataclass(frozen=True)
class Faithfulness:
    """What `--faithfulness N` scores: `images` of the source, `steps` per curve, the `fill`, the
    `randoms` random maps (from `seed`) of the band."""
    images: int = 200
    steps: int = 20
    fill: str = "blur"
    randoms: int = RANDOM_MAPS
    seed: int = 0

    def __post_init__(self):
        for name in ("images", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"faithfulness {name} must be a whole number >= 1, got {value!r}")
        if self.fill not in FILLS:
            raise ValueError(f"unknown fill {self.fill!r}; fills: {', '.join(FILLS)}")
        if isinstance(self.randoms, bool) or not isinstance(self.randoms, int) or self.randoms < 2:
            raise ValueError(f"randoms must be a whole number >= 2 (a band needs two), got {self.randoms!r}")

    def chosen(self, index, total: int) -> np.ndarray:
        """[B] bool: which of the images `index` (positions 0..total-1 in the source) are scored."""
        index, n = np.asarray(index, dtype=np.int64), min(self.images, total)
        return (index + 1) * n // total > index * n // total

    def settings(self) -> dict:
        return {**asdict(self), "band": list(BAND), "target": "each image's top prediction",
                "map": f"CBAM: its spatial gate; SE/ECA: where the {ACTIVITY_CHANNELS} most-excited channels fire"}


def columns(block: str) -> list[str]:
    """The images.parquet columns of one block: each AUC, then the better-than-chance flags (1/0)."""
    return [f"{block} {field}" for field in FIELDS]


def faithfulness_batch(model, x: torch.Tensor, labels: np.ndarray, chosen: np.ndarray, classes: int,
                       plan: Faithfulness) -> tuple[dict, dict]:
    """The arrays ("BLOCK|faith_sum" [K, len(FIELDS)], "BLOCK|faith_count" [K]) and rows (one column
    per block and field, NaN for the images not `chosen`) of a batch `x` [B, 3, H, W] whose true
    classes are `labels` [B]. Needs gradients (Grad-CAM): call it outside inference mode."""
    labels, chosen = np.asarray(labels, dtype=np.int64), np.asarray(chosen, dtype=bool)
    picked = np.flatnonzero(chosen)
    names = [site.name for site in attention_sites(model)]
    values = {}                                                                    # block -> [n, FIELDS]
    if picked.size:
        sub = x[torch.as_tensor(picked)]
        with torch.inference_mode():
            capture = capture_attention(model, sub, channel_maps=ACTIVITY_CHANNELS)
        predicted = capture.logits.argmax(1)                                       # [n] the class scored
        cams = grad_cams(model, sub, names, predicted)                             # block -> [n, h, w]
        maps = {r.name: study_map(r).float() for r in capture.layers}              # block -> [n, h, w]
        values = {name: np.empty((len(picked), len(FIELDS))) for name in names}
        for i in range(len(picked)):
            _score_image(model, sub[i:i + 1], int(predicted[i]), maps, cams, i, plan, values)
    arrays, rows = {}, {}
    for name in names:
        scores = np.full((len(labels), len(FIELDS)), np.nan)
        if picked.size:
            scores[picked] = values[name]
        counted = np.where(chosen[:, None], scores, 0.0)
        arrays[f"{name}|faith_sum"] = _per_class_sum(counted, labels, classes)
        arrays[f"{name}|faith_count"] = np.bincount(labels[chosen], minlength=classes).astype(np.int64)
        for j, column in enumerate(columns(name)):
            rows[column] = scores[:, j]
    return arrays, rows


def _score_image(model, x, target: int, maps: dict, cams: dict, i: int, plan: Faithfulness, values: dict) -> None:
    """One image's AUCs, one `curves` call per block resolution: each block's map and Grad-CAM, then
    that resolution's Gaussian and random maps (as `block_panel` draws them)."""
    by_shape = {}
    for name, stack in maps.items():
        by_shape.setdefault(tuple(stack.shape[1:]), []).append(name)
    for shape, names in by_shape.items():
        noise = torch.rand(plan.randoms, *shape, generator=torch.Generator().manual_seed(plan.seed))   # [R, h, w]
        own = [m for name in names for m in (maps[name][i], cams[name][i].float())]                  # 2 per block
        stack = torch.cat([torch.stack(own), torch.as_tensor(centred_gaussian(shape), dtype=torch.float32)[None],
                           noise])
        result = curves(model, x.expand(len(stack), -1, -1, -1), stack, target, plan.steps, plan.fill)
        stats = []                      # per curve: its AUCs [M], the Gaussian's, the random maps' mean, low, high
        for auc in (result.deletion_auc.double(), result.insertion_auc.double()):
            random = auc[len(own) + 1:]
            low, high = torch.quantile(random, torch.tensor(BAND, dtype=torch.float64)).tolist()
            stats.append((auc.tolist(), float(auc[len(own)]), float(random.mean()), low, high))
        (deletion, *_, deletion_low, _), (insertion, *_, insertion_high) = stats
        for k, name in enumerate(names):
            own_aucs = slice(2 * k, 2 * k + 2)                                     # the block map, Grad-CAM
            row = [v for auc, *shared in stats for v in (*auc[own_aucs], *shared)]
            row += [float(v) for removed, restored in zip(deletion[own_aucs], insertion[own_aucs])
                    for v in (removed < deletion_low, restored > insertion_high)]
            values[name][i] = row


def faithfulness_summary(total, block: str, class_names) -> dict:
    """A block's study.json entry: over the scored images and per class, each map's mean deletion
    and insertion AUC beside the random maps' (mean and the mean of each image's band ends), and the
    share of images on which the block map and Grad-CAM were better than chance."""
    sums, counts = total.arrays[f"{block}|faith_sum"], total.arrays[f"{block}|faith_count"]

    def described(values: np.ndarray, n: int) -> dict:
        mean = values / n if n else np.full(len(FIELDS), np.nan)
        out = {"images": int(n)}
        for curve in CURVES:
            out[f"{curve}_auc"] = {m: _finite(mean[FIELDS.index(f"{curve} AUC, {m}")]) for m in MAPS + RANDOM}
        out["better_than_chance"] = {m: {c: _finite(mean[FIELDS.index(f"{m} {c}")]) for c in CURVES}
                                     for m in MAPS[:2]}
        return out

    return {**described(sums.sum(0), counts.sum()),
            "per_class": {c: described(sums[k], counts[k]) for k, c in enumerate(class_names)}}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def faithfulness_figure(summary: dict) -> Figure:
    """A study's faithfulness per block, from its summary (study.json): each map's mean AUCs beside
    the random band, and the share of images better than chance."""
    entries = [e for e in summary["blocks"] if "faithfulness" in e]
    if not entries or "faithfulness" not in summary:
        raise ValueError("this study has no faithfulness scores (python -m lens study ... --faithfulness N)")

    def column(curve: str, name: str) -> list:
        return [e["faithfulness"][f"{curve}_auc"][name] for e in entries]

    settings = summary["faithfulness"]
    return faithfulness_depth_figure(
        [e["block"] for e in entries], {m: column("deletion", m) for m in MAPS},
        {m: column("insertion", m) for m in MAPS}, tuple(column("deletion", r) for r in RANDOM),
        tuple(column("insertion", r) for r in RANDOM),
        {m: [e["faithfulness"]["better_than_chance"][m]["deletion"] for e in entries] for m in MAPS[:2]},
        title=f"{summary.get('model_name', '')}: deletion and insertion on {settings['scored']} images "
              f"({settings['fill']} fill, {settings['steps']} steps, {settings['randoms']} random maps per image)")


def faithfulness_line(entry: dict) -> str:
    """A block's faithfulness in one line of the command's output."""
    deletion, better = entry["deletion_auc"], entry["better_than_chance"]["block map"]["deletion"]

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (f"deletion AUC: map {number(deletion['block map'])}, Grad-CAM {number(deletion['Grad-CAM'])}, "
            f"Gaussian {number(deletion['centred Gaussian'])}, random {number(deletion[RANDOM[0]])} "
            f"(band {number(deletion[RANDOM[1]])}-{number(deletion[RANDOM[2]])}); map better than chance on "
            + ("n/a" if better is None else f"{better:.0%}") + f" of {entry['images']} images")
