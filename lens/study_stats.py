"""Streaming statistics of a dataset study: what every attention block did, per class, merged
batch by batch so memory does not grow with the number of images.

A `Partial` holds, per block and class, the count, mean and sum of squared deviations of every
channel weight (merged exactly with Chan et al.'s parallel update of Welford's algorithm, "Updating
Formulae and a Pairwise Algorithm for Computing Sample Variances", 1979), how often each channel
sat at its floor or ceiling, the summed spatial map, and, where objects have masks, the summed
localisation scores of the block's map and of two content-free baselines (`lens.localisation`);
plus one row per image (prediction and per-block summaries). Partials merge associatively, so a
single process, shards on disk and Ray workers all reach the same totals.
"""
import io
from dataclasses import dataclass, field

import numpy as np

from blocks import ACTIVITY_CHANNELS, capture_attention

from .localisation import BASELINES, MEASURES, batch_scores

SATURATED_AT = 0.99      # a channel weight at or above this is saturated (the gate passes everything)
DEAD_AT = 0.01           # ... at or below this, shut


@dataclass
class Partial:
    """Statistics of some images. `arrays` maps "BLOCK|field" (and "|field" for whole-image
    fields) to NumPy arrays whose first axis is the class; `rows` maps column -> per-image values."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, np.ndarray] = field(default_factory=dict)   # "index", "reason": images that did not decode

    def merge(self, other: "Partial") -> "Partial":
        """These images and `other`'s (rows in this order, then other's)."""
        failed = {k: np.concatenate([self.failed.get(k, []), other.failed.get(k, [])]).astype(kind)
                  for k, kind in (("index", np.int64), ("reason", str))}
        if not self.arrays or not other.arrays:
            return Partial((self.arrays or other.arrays), (self.rows or other.rows), failed)
        a, b, merged = self.arrays, other.arrays, {}
        for key in a:
            block, name = key.split("|")
            if name == "mean":
                n_a, n_b = a[f"{block}|count"], b[f"{block}|count"]
                n = n_a + n_b
                share = np.divide(n_b, n, out=np.zeros(n.shape), where=n > 0)[:, None]
                both = np.divide(n_a * n_b, n, out=np.zeros(n.shape), where=n > 0)[:, None]
                delta = b[key] - a[key]
                merged[key] = a[key] + delta * share
                merged[f"{block}|m2"] = a[f"{block}|m2"] + b[f"{block}|m2"] + delta ** 2 * both
            elif name != "m2":
                merged[key] = a[key] + b[key]                # counts and sums
        rows = {k: np.concatenate([self.rows[k], other.rows[k]]) for k in self.rows}
        return Partial(merged, rows, failed)

    def to_bytes(self) -> bytes:
        """An .npz file's bytes (no pickles): how shards are saved and Ray workers send partials."""
        buffer = io.BytesIO()
        parts = {"a": self.arrays, "r": self.rows, "f": self.failed}
        np.savez(buffer, **{f"{p}:{k}": v for p, part in parts.items() for k, v in part.items()})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Partial":
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return cls(*({k[2:]: f[k] for k in f.files if k[:2] == f"{p}:"} for p in "arf"))


def _class_moments(values: np.ndarray, labels: np.ndarray, classes: int):
    """Per class: count [K], mean [K, C] and sum of squared deviations [K, C] of values [B, C]."""
    count = np.bincount(labels, minlength=classes)
    total = np.zeros((classes, values.shape[1]))
    np.add.at(total, labels, values)
    mean = total / np.maximum(count, 1)[:, None]
    m2 = np.zeros_like(total)
    np.add.at(m2, labels, (values - mean[labels]) ** 2)
    return count, mean, m2


def _per_class_sum(values: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((classes, *values.shape[1:]), dtype=values.dtype)
    np.add.at(out, labels, values)
    return out


def _scores(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[B, len(MEASURES)] localisation scores of each map against its image's mask (NaN where undefined)."""
    return np.stack(list(batch_scores(maps, masks).values()), axis=1)


def _add_scores(arrays: dict, prefix: str, scores: np.ndarray, labels: np.ndarray, classes: int) -> None:
    valid = ~np.isnan(scores)
    arrays[f"{prefix}|score_sum"] = _per_class_sum(np.where(valid, scores, 0.0), labels, classes)
    arrays[f"{prefix}|score_count"] = _per_class_sum(valid.astype(np.int64), labels, classes)


def study_map(record):
    """[B, h, w] the map a study keeps of a block: CBAM's spatial gate; for SE/ECA, where its
    `ACTIVITY_CHANNELS` most-excited channels fire."""
    return record.spatial if record.spatial is not None else record.activity(ACTIVITY_CHANNELS)


def study_batch(model, x, labels, masks: np.ndarray | None, index, image_ids, labels_of_model, classes: int
                ) -> Partial:
    """The statistics of one batch: `model` (an nn.Module with attention blocks) on inputs `x`
    [B, 3, H, W] whose true classes are `labels` [B] (0..classes-1) and objects `masks` [B, H, W]
    (or None); `index` and `image_ids` name the images in the rows."""
    capture = capture_attention(model, x, channel_maps=ACTIVITY_CHANNELS)
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = capture.logits.double().softmax(1).numpy()
    predicted = probabilities.argmax(1)
    arrays = {"|images": np.bincount(labels, minlength=classes)}
    rows = {"index": np.asarray(index, dtype=np.int64), "image": np.asarray(image_ids, dtype=str),
            "label": labels, "predicted": predicted, "predicted_label": np.asarray(
                [labels_of_model[p] for p in predicted], dtype=str),
            "probability": probabilities[np.arange(len(labels)), predicted]}
    if masks is not None:
        baselines = {name: baseline(masks.shape[1:]) for name, baseline in BASELINES.items()}
        for name, baseline in baselines.items():
            _add_scores(arrays, f"~{name}", _scores(np.broadcast_to(baseline, masks.shape), masks), labels, classes)
    for record in capture.layers:
        weights = record.channel.double().numpy()                                   # [B, C]
        maps = study_map(record).double().numpy()                                   # [B, h, w]
        b = record.name
        arrays[f"{b}|count"], arrays[f"{b}|mean"], arrays[f"{b}|m2"] = _class_moments(weights, labels, classes)
        arrays[f"{b}|high"] = _per_class_sum((weights >= SATURATED_AT).astype(np.int64), labels, classes)
        arrays[f"{b}|low"] = _per_class_sum((weights <= DEAD_AT).astype(np.int64), labels, classes)
        arrays[f"{b}|map_sum"] = _per_class_sum(maps, labels, classes)
        rows[f"{b} mean weight"] = weights.mean(1)
        rows[f"{b} saturated share"] = (weights >= SATURATED_AT).mean(1)
        if masks is not None:
            scores = _scores(maps, masks)
            _add_scores(arrays, b, scores, labels, classes)
            for j, measure in enumerate(MEASURES):
                rows[f"{b} {measure}"] = scores[:, j]
    return Partial(arrays, rows)
