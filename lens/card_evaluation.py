"""What the model card measures, on shapes images that training never saw.

For one model: accuracy in distribution and under each of the dataset's shifts (`shapes.SHIFTS`),
and in distribution by band of object size; per attention block, the share of its channel weights
pinned at 0 or 1 (within PINNED_WITHIN = 1e-6: ties that make "the top-k channels" an arbitrary
pick; not the study's looser "saturated", at or above 0.99), the accuracy lost when the block's
attention is switched off (every gate outputs 1), and how well the block's map sits on the object.
The map is the block's spatial gate (CBAM: Woo et al., ECCV 2018, Eq. 3) or, for a kind without one
(SE, ECA), the mean activity of the block's `blocks.ACTIVITY_CHANNELS` (8) most-excited channels.
Each is scored with the three measures of `lens.localisation` beside three baselines on the same
images and at the same block (CARD_BASELINES): the centred Gaussian (content-free, the first of
`lens.localisation.BASELINES`), the plain model's channel-mean activation, and Grad-CAM (Selvaraju
et al., ICCV 2017) of the plain model for the image's true class.

Does the model use what the map marks (`faithfulness`): deletion and insertion of each block's map
for the image's top class (Petsiuk et al., BMVC 2018), beside Grad-CAM of that class at the block,
a centred Gaussian and random maps of the block's resolution, scored per image by
`lens.study_faithfulness.faithfulness_batch` (the study's `--faithfulness`, whose maps are
`lens.faithfulness.block_panel`'s) and averaged over the images here.
"""
from dataclasses import dataclass

import numpy as np
import torch

from blocks import ACTIVITY_CHANNELS, Intervention, attention_sites, capture_attention
from blocks.hooks import on_model_device
from blocks.attribution import block_outputs, grad_cams
from pretrained.bundled import to_input
from training.shapes import render

from .localisation import CENTRED_GAUSSIAN, MEASURES, batch_scores, centred_gaussian
from .study_faithfulness import CURVES, MAPS, RANDOM, Faithfulness, faithfulness_batch

PINNED_WITHIN = 1e-6          # a channel weight this close to 0 or 1 is "pinned": float32 sigmoids tie there
PINNED = f"within {PINNED_WITHIN:.0e} of 0 or 1".replace("e-0", "e-")      # the same, in words
PLAIN_MEAN, PLAIN_GRAD_CAM = "plain channel mean", "plain Grad-CAM"
CARD_BASELINES = (CENTRED_GAUSSIAN, PLAIN_MEAN, PLAIN_GRAD_CAM)
BATCH = 100
FAITHFULNESS_BATCH = 10       # images per faithfulness_batch call: ~2,000 forward passes each, so progress shows
# object diameter / image side (shapes v2 draws 8% to 90%): name, from (inclusive), to (exclusive)
SIZE_BANDS = (("under 15%", 0.0, 0.15), ("15-25%", 0.15, 0.25), ("25-50%", 0.25, 0.5), ("50% and over", 0.5, np.inf))


@dataclass(frozen=True)
class HeldOutSet:
    """Rendered test images: uint8 [N, H, W, 3], object masks bool [N, H, W], labels int64 [N], and
    each object's diameter over the image side [N]."""
    images: torch.Tensor
    masks: np.ndarray
    labels: torch.Tensor
    extents: np.ndarray

    @classmethod
    def render(cls, seed: int, count: int, size: int, version: int, shift: str | None = None) -> "HeldOutSet":
        samples = [render(seed, i, size, version, shift) for i in range(count)]
        return cls(torch.from_numpy(np.stack([s.image for s in samples])), np.stack([s.mask for s in samples]),
                   torch.tensor([s.label for s in samples]), np.array([s.attributes.extent for s in samples]))

    def batches(self):
        """(inputs [B, 3, H, W], masks [B, H, W], labels [B]) in chunks of BATCH."""
        for i in range(0, len(self.labels), BATCH):
            yield to_input(self.images[i:i + BATCH]), self.masks[i:i + BATCH], self.labels[i:i + BATCH]


@torch.inference_mode()
def correct(model: torch.nn.Module, test: HeldOutSet, edit: Intervention | None = None) -> torch.Tensor:
    """Whether each image's top-1 prediction is its label, bool [N]; with `edit`, of the model with
    that block's attention edited."""
    hits = []
    for x, _, labels in test.batches():
        logits = model(on_model_device(model, x)) if edit is None else capture_attention(model, x, edit).logits
        hits.append(logits.argmax(1).cpu() == labels)
    return torch.cat(hits)


def accuracy(model: torch.nn.Module, test: HeldOutSet, edit: Intervention | None = None) -> float:
    """Top-1 accuracy; with `edit`, of the model with that block's attention edited."""
    return correct(model, test, edit).double().mean().item()


def accuracy_by_size(hits: torch.Tensor, extents: np.ndarray) -> dict[str, dict]:
    """Per band of object size (diameter over the image side, SIZE_BANDS): the number of test
    images whose object falls in it and the top-1 accuracy on them (None for an empty band), from
    `correct`'s hits and the set's `extents`."""
    hits = hits.numpy()
    result = {}
    for band, low, high in SIZE_BANDS:
        inside = (extents >= low) & (extents < high)
        result[band] = {"images": int(inside.sum()), "accuracy": float(hits[inside].mean()) if inside.any() else None}
    return result


@torch.inference_mode()
def pinned_shares(model: torch.nn.Module, test: HeldOutSet) -> dict[str, float]:
    """Per block: the share of channel weights (over images and channels) pinned, within
    PINNED_WITHIN of 0 or 1."""
    counts: dict[str, list[int]] = {}
    for x, _, _ in test.batches():
        for record in capture_attention(model, x).layers:
            w = record.channel.double()
            tied = (w <= PINNED_WITHIN) | (w >= 1 - PINNED_WITHIN)
            count = counts.setdefault(record.name, [0, 0])
            count[0] += int(tied.sum())
            count[1] += tied.numel()
    return {block: tied / total for block, (tied, total) in counts.items()}


def gate_off_costs(model: torch.nn.Module, test: HeldOutSet, blocks: list[str], base: float | None = None
                   ) -> dict[str, float]:
    """Per block: accuracy points lost (negative: gained) when its attention is switched off;
    `base`: the unedited model's accuracy on `test`, if already measured."""
    base = accuracy(model, test) if base is None else base
    return {block: 100 * (base - accuracy(model, test, Intervention(block, "gate_off"))) for block in blocks}


def localisation(model: torch.nn.Module, plain: torch.nn.Module | None, test: HeldOutSet) -> dict[str, dict]:
    """Per block: {map name: {measure: mean over the images where it is defined, "defined": share of
    images where it is}} for the block's own map ("attention") and each of CARD_BASELINES (the plain
    model's: None scores without a plain model)."""
    scores: dict[str, dict[str, list[dict]]] = {}
    for x, masks, labels in test.batches():
        with torch.inference_mode():
            capture = capture_attention(model, x, channel_maps=ACTIVITY_CHANNELS)
            names = [r.name for r in capture.layers]
            plain_outputs = block_outputs(plain, x, names) if plain is not None else {}
        cams = grad_cams(plain, x, names, target=labels) if plain is not None else {}
        gaussian = np.broadcast_to(centred_gaussian(masks.shape[1:]), masks.shape)
        for record in capture.layers:
            own = record.spatial if record.spatial is not None else record.activity(ACTIVITY_CHANNELS)
            maps = {"attention": own, CENTRED_GAUSSIAN: gaussian}
            if plain is not None:
                maps.update({PLAIN_MEAN: plain_outputs[record.name].mean(1), PLAIN_GRAD_CAM: cams[record.name]})
            for name, values in maps.items():
                scores.setdefault(record.name, {}).setdefault(name, []).append(
                    batch_scores(np.asarray(values, dtype=np.float32), masks))
    absent = {**dict.fromkeys(MEASURES), "defined": 0.0}
    return {block: {name: _summary(by_map[name]) if name in by_map else absent
                    for name in ("attention", *CARD_BASELINES)} for block, by_map in scores.items()}


def _summary(parts: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Each measure's mean over the images where the map has any mass (a map with none points
    nowhere: its AUC of 0.5 from ties would flatter or hide), and the share of such images."""
    values = {m: np.concatenate([p[m] for p in parts]) for m in MEASURES}
    defined = ~np.isnan(values["mass ratio"])
    means = {m: v[defined & ~np.isnan(v)] for m, v in values.items()}
    return {**{m: (float(v.mean()) if v.size else None) for m, v in means.items()}, "defined": float(defined.mean())}


def faithfulness(model: torch.nn.Module, test: HeldOutSet, plan: Faithfulness, progress=None) -> dict[str, dict]:
    """Per block, over the first `plan.images` images of `test` (all of them if fewer), each scored for
    its top prediction with `plan`'s fill, steps and random maps: {"images": n, "deletion_auc" and
    "insertion_auc": {map: mean AUC} for the block map, Grad-CAM, the centred Gaussian and the random
    maps (their mean, then the mean of each image's 5% and 95% band ends), "better_than_chance" and
    "inside_band": {"block map" | "Grad-CAM": {curve: share of images}}}. Better than chance: deletion
    AUC below the image's random band (insertion: above it); inside: within it, ends included, as
    `lens.faithfulness.block_panel` says "no better than chance". `progress(done, total)` after each
    FAITHFULNESS_BATCH images. Needs gradients (Grad-CAM): call it outside inference mode."""
    count, classes = min(plan.images, len(test.labels)), int(test.labels.max()) + 1
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, count, FAITHFULNESS_BATCH):
        stop = min(start + FAITHFULNESS_BATCH, count)
        _, rows = faithfulness_batch(model, to_input(test.images[start:stop]), test.labels[start:stop].numpy(),
                                     np.ones(stop - start, dtype=bool), classes, plan)
        for column, values in rows.items():
            parts.setdefault(column, []).append(values)
        if progress is not None:
            progress(stop, count)
    rows = {column: np.concatenate(values) for column, values in parts.items()}             # column -> [n]
    return {site.name: _faithfulness_means(rows, site.name, count) for site in attention_sites(model)}


def _faithfulness_means(rows: dict[str, np.ndarray], block: str, count: int) -> dict:
    def column(field: str) -> np.ndarray:
        return rows[f"{block} {field}"]

    means = {"images": count}
    for curve in CURVES:
        means[f"{curve}_auc"] = {m: float(column(f"{curve} AUC, {m}").mean()) for m in MAPS + RANDOM}
    means["better_than_chance"] = {m: {c: float(column(f"{m} {c}").mean()) for c in CURVES} for m in MAPS[:2]}
    inside = {}
    for m in MAPS[:2]:
        inside[m] = {}
        for c in CURVES:
            auc, low, high = (column(f"{c} AUC, {name}") for name in (m, *RANDOM[1:]))
            inside[m][c] = float(((low <= auc) & (auc <= high)).mean())
    means["inside_band"] = inside
    return means
