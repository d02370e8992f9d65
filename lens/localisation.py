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

from viz.upsample import upsample

from .agreement import ranks

CENTRE_SIGMA = 0.25          # the centred Gaussian's standard deviation, as a share of the image side


def _checked(mask) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask is empty: there is no object to score against")
    return mask


def localisation_score(attention_map, mask) -> float:
    """Mass ratio: mass of the upsampled map inside `mask` ([H, W] bool) relative to uniform
    attention; NaN for a map with no mass at all (it points nowhere)."""
    mask = _checked(mask)
    values = upsample(attention_map, mask.shape)
    total = values.sum()
    return float(values[mask].sum() / total / mask.mean()) if total > 0 else float("nan")


def pointing_game(attention_map, mask) -> float:
    """1.0 if the upsampled map's maximum lies on the object, 0.0 if not; NaN for a flat map,
    which points nowhere. With several equal maxima, the share of them on the object."""
    mask = _checked(mask)
    values = upsample(attention_map, mask.shape)
    peak = values == values.max()
    return float(mask[peak].mean()) if not peak.all() else float("nan")


def auc(attention_map, mask) -> float:
    """ROC area of the upsampled map as a score for object pixels against background pixels
    (Mann-Whitney U over the pixels' ranks, ties averaged); NaN if the mask covers everything."""
    mask = _checked(mask)
    if mask.all():
        return float("nan")
    r = ranks(upsample(attention_map, mask.shape))
    inside, outside = int(mask.sum()), int((~mask).sum())
    return float((r[mask.ravel()].sum() - inside * (inside + 1) / 2) / (inside * outside))


MEASURES = {"mass ratio": localisation_score, "pointing game": pointing_game, "AUC": auc}


def centred_gaussian(shape: tuple[int, int]) -> np.ndarray:
    """A content-free map: a Gaussian bump on the image centre, sigma CENTRE_SIGMA of each side."""
    h, w = shape
    y, x = (np.arange(n, dtype=np.float64) + 0.5 for n in (h, w))
    return np.exp(-(((y[:, None] - h / 2) / (CENTRE_SIGMA * h)) ** 2
                    + ((x[None, :] - w / 2) / (CENTRE_SIGMA * w)) ** 2) / 2)


def localisation_table(maps: dict[str, np.ndarray], mask) -> list[dict]:
    """One row per map (and per baseline: a centred Gaussian, a uniform map), one column per measure."""
    shape = next(iter(maps.values())).shape if maps else np.asarray(mask).shape
    rows = {**maps, "centred Gaussian (baseline)": centred_gaussian(shape), "uniform (baseline)": np.ones(shape)}
    return [{"map": name, **{measure: score(values, mask) for measure, score in MEASURES.items()}}
            for name, values in rows.items()]
