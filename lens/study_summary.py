"""What a study's totals say, per block: how class-specific the excitations are (SE paper, Hu et
al., CVPR 2018, Sec. 7.2 and Fig. 6: early blocks excite the same channels for every class, late
blocks are class-specific), which channels are dead, saturated or never vary, and how well each
block's map sits on the object beside content-free baselines.

Class specificity is read two ways: the mean Pearson correlation between the classes' mean
excitation vectors (high: class-agnostic), and eta squared, the share of the channel weights'
variance over images that the class explains (between-class sum of squares over total, pooled over
channels; 0: class says nothing, 1: the class fixes every weight).
"""
import numpy as np

from .localisation import BASELINES, CENTRED_GAUSSIAN, MEASURES
from .study_faithfulness import faithfulness_summary
from .study_stats import DEAD_AT, SATURATED_AT, Partial

STATIC_STD = 0.01          # a channel whose weight varies less than this over the images does not vary
MAX_CORRELATION_MATRIX = 50   # class x class correlations are kept in the summary up to this many classes


def _mean(total: np.ndarray, count: np.ndarray):
    return float(total / count) if count else None


def _json_float(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def block_moments(total: Partial, block: str):
    """(per-class count [K], per-class mean [K, C], variance over all images [C], eta squared per channel [C])."""
    count, mean, m2 = (total.arrays[f"{block}|{f}"] for f in ("count", "mean", "m2"))
    n = count.sum()
    overall = (count[:, None] * mean).sum(0) / n
    between = (count[:, None] * (mean - overall) ** 2).sum(0)
    total_ss = between + m2.sum(0)
    variance = total_ss / (n - 1) if n > 1 else np.full(total_ss.shape, np.nan)
    eta = np.divide(between, total_ss, out=np.full(between.shape, np.nan), where=total_ss > 0)
    return count, mean, variance, eta, between.sum() / total_ss.sum() if total_ss.sum() > 0 else np.nan


def class_correlation(count: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """[K, K] Pearson correlations of the classes' mean excitations (NaN for a class with no images,
    and between a class whose mean is constant and any other), in one `np.corrcoef`."""
    k = len(count)
    matrix = np.full((k, k), np.nan)
    present = np.flatnonzero(count)
    with np.errstate(invalid="ignore", divide="ignore"):      # a constant mean vector correlates with nothing
        matrix[np.ix_(present, present)] = np.corrcoef(mean[present]) if present.size > 1 else 1.0
    matrix[present, present] = 1.0
    return matrix


def _localisation(total: Partial, prefix: str, class_names) -> dict:
    sums, counts = total.arrays[f"{prefix}|score_sum"], total.arrays[f"{prefix}|score_count"]
    return {measure: {"mean": _json_float(_mean(sums[:, j].sum(), counts[:, j].sum())),
                      "images": int(counts[:, j].sum()),
                      "per_class": {c: _json_float(_mean(sums[i, j], counts[i, j])) for i, c in enumerate(class_names)}}
            for j, measure in enumerate(MEASURES)}


def summarise(total: Partial, blocks: list[tuple[str, str]], class_names: tuple[str, ...]) -> dict:
    """The JSON summary: per block (in forward order; `blocks` = (name, kind)) its class
    specificity, channel health and localisation; per class the image count."""
    images = total.arrays["|images"]
    summary = {"images": int(images.sum()), "per_class_images": dict(zip(class_names, map(int, images))),
               "thresholds": {"saturated_at": SATURATED_AT, "dead_at": DEAD_AT, "static_std": STATIC_STD},
               "blocks": []}
    for name, kind in blocks:
        count, mean, variance, eta, eta_pooled = block_moments(total, name)
        n, channels = int(count.sum()), mean.shape[1]
        correlation = class_correlation(count, mean)
        pairs = correlation[np.triu_indices(len(count), 1)]
        pairs = pairs[np.isfinite(pairs)]
        high, low = total.arrays[f"{name}|high"].sum(0), total.arrays[f"{name}|low"].sum(0)
        std = np.sqrt(variance)
        entry = {"block": name, "kind": kind, "channels": channels, "images": n,
                 "inter_class_correlation": _json_float(pairs.mean()) if pairs.size else None,
                 "eta_squared": _json_float(eta_pooled),
                 "dead_channels": int((low == n).sum()), "saturated_channels": int((high == n).sum()),
                 "static_channels": int((std < STATIC_STD).sum()),
                 "saturated_share": _json_float(high.sum() / (n * channels)),
                 "dead_share": _json_float(low.sum() / (n * channels)),
                 "weight_std": _json_float(np.nanmean(std))}
        if len(count) <= MAX_CORRELATION_MATRIX:
            entry["class_correlation"] = [[_json_float(v) for v in row] for row in correlation]
        if f"{name}|score_sum" in total.arrays:
            entry["localisation"] = _localisation(total, name, class_names)
        if f"{name}|faith_sum" in total.arrays:
            entry["faithfulness"] = faithfulness_summary(total, name, class_names)
        summary["blocks"].append(entry)
    if f"~{CENTRED_GAUSSIAN}|score_sum" in total.arrays:
        summary["baselines"] = {b: _localisation(total, f"~{b}", class_names) for b in BASELINES}
    return summary
