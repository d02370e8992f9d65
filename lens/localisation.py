"""How well a map sits on an object, given the object's mask, by three measures and against two
content-free baselines.

Every measure first upsamples the map onto the image (`viz.upsample`, the alignment the overlays use):
- mass ratio: the share of the map's mass inside the mask over the mask's share of the image;
  1.0 is no better than uniform attention, the most any map can reach is 1 / (mask share);
- pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016):
  whether the map's highest point lies on the object;
- AUC: the probability that a random object pixel outranks a random background pixel (the ROC
  area of the map as an object detector; ties count one half); 0.5 is chance.
Baselines: a centred Gaussian (objects are often near the middle: a map that does not beat it has
not shown that it found the object) and a uniform map (mass ratio 1, AUC 0.5).
"""
import numpy as np
import torch
import torch.nn.functional as F

from viz.upsample import as_map

CENTRE_SIGMA = 0.25          # the centred Gaussian's standard deviation, as a share of the image side


def _checked(mask) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask is empty: there is no object to score against")
    return mask


def batch_scores(maps, masks) -> dict[str, np.ndarray]:
    """Every measure for a batch at once: `maps` [B, h, w], `masks` [B, H, W] bool (none empty)
    -> {measure: [B] scores}. Upsampled as `viz.upsample` does (bilinear, align_corners=False);
    the single-map functions below are this with B = 1."""
    masks = torch.from_numpy(np.asarray(masks, dtype=bool))
    if not masks.flatten(1).any(1).all():
        raise ValueError("the mask is empty: there is no object to score against")
    maps = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    values = F.interpolate(maps[:, None], size=tuple(masks.shape[1:]), mode="bilinear",
                           align_corners=False)[:, 0].flatten(1)                   # [B, H*W] float32
    inside = masks.flatten(1)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    total = values.sum(1, dtype=torch.float64)
    mass = torch.where(total > 0, (values * inside).sum(1, dtype=torch.float64) / total / inside.double().mean(1), nan)
    peak = values == values.amax(1, keepdim=True)
    pointing = torch.where(peak.all(1), nan, (peak & inside).sum(1) / peak.sum(1))
    return {"mass ratio": mass.numpy(), "pointing game": pointing.numpy(), "AUC": _auc(values.numpy(), inside.numpy())}


def _auc(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per row: the share of (object, background) pixel pairs in which the object pixel scores
    higher, ties counting one half (Mann-Whitney U / (n_object * n_background)); NaN where the
    mask covers everything. Counted by binary search in the sorted background values."""
    scores = np.full(len(values), np.nan)
    for i, (row, mask) in enumerate(zip(values, inside)):
        background, on_object = np.sort(row[~mask]), np.sort(row[mask])    # sorted needles: faster search
        if background.size:
            below = np.searchsorted(background, on_object, "left").sum()
            below_or_tied = np.searchsorted(background, on_object, "right").sum()
            scores[i] = (below + below_or_tied) / 2 / (on_object.size * background.size)
    return scores


def _one(measure: str, attention_map, mask) -> float:
    mask = _checked(mask)
    return float(batch_scores(as_map(attention_map)[None], mask[None])[measure][0])


def localisation_score(attention_map, mask) -> float:
    """Mass ratio: mass of the upsampled map inside `mask` ([H, W] bool) relative to uniform
    attention; NaN for a map with no mass at all (it points nowhere)."""
    return _one("mass ratio", attention_map, mask)


def pointing_game(attention_map, mask) -> float:
    """1.0 if the upsampled map's maximum lies on the object, 0.0 if not; NaN for a flat map,
    which points nowhere. With several equal maxima, the share of them on the object."""
    return _one("pointing game", attention_map, mask)


def auc(attention_map, mask) -> float:
    """ROC area of the upsampled map as a score for object pixels against background pixels
    (Mann-Whitney U over the pixels' ranks, ties averaged); NaN if the mask covers everything."""
    return _one("AUC", attention_map, mask)


MEASURES = {"mass ratio": localisation_score, "pointing game": pointing_game, "AUC": auc}
EXPLAINED = ("Each map upsampled onto the image and scored against the object's mask. Mass ratio: the share of the "
             "map's mass on the object over the object's share of the image (1 = uniform). Pointing game: whether "
             "its highest point is on the object; undefined (left blank) for the uniform map, which has no highest point. AUC: "
             "the chance that an object pixel outranks a background pixel (0.5 = chance). A map that does not beat "
             "the centred Gaussian has not shown that it found the object: objects tend to sit near the middle, "
             "and a bump there, which looks at nothing, scores well.")


def centred_gaussian(shape: tuple[int, int]) -> np.ndarray:
    """A content-free map: a Gaussian bump on the image centre, sigma CENTRE_SIGMA of each side."""
    h, w = shape
    y, x = (np.arange(n, dtype=np.float64) + 0.5 for n in (h, w))
    return np.exp(-(((y[:, None] - h / 2) / (CENTRE_SIGMA * h)) ** 2
                    + ((x[None, :] - w / 2) / (CENTRE_SIGMA * w)) ** 2) / 2)


def uniform(shape: tuple[int, int]) -> np.ndarray:
    """A content-free map that marks nothing: mass ratio 1, AUC 0.5, no highest point."""
    return np.ones(shape)


CENTRED_GAUSSIAN = "centred Gaussian"
# The content-free baselines, name -> the map at a shape: every map's scores are read beside them (the
# app's table, `localisation_table`; the study). The model card reads the first beside two maps of its
# plain model (`lens.card_evaluation.CARD_BASELINES`), which only a trained plain twin can give.
BASELINES = {CENTRED_GAUSSIAN: centred_gaussian, "uniform": uniform}


def localisation_table(maps: dict[str, np.ndarray], mask) -> list[dict]:
    """One row per map (and per baseline of BASELINES, "... (baseline)"), one column per measure."""
    shape = next(iter(maps.values())).shape if maps else np.asarray(mask).shape
    rows = {**maps, **{f"{name} (baseline)": baseline(shape) for name, baseline in BASELINES.items()}}
    return [{"map": name, **{measure: score(values, mask) for measure, score in MEASURES.items()}}
            for name, values in rows.items()]
