"""Checks that what a page shows can mean something: the cascading-randomisation sanity check with a
null band, and a hint when the model itself looks untrained or broken.

Sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3.1): the
block's map and its Grad-CAM after the model's weights from that block on are re-initialised
(`Inspection.sanity_check`), for several seeds, as Spearman's rank correlation with the trained
model's maps over the map's cells. How large a correlation is depends on how many cells it is over,
so it is read against the null band: the same correlation between two independent random maps of
as many cells (5-95%). A map whose correlation stays above that band barely changed: it does not
depend on what the model learned from that block on.

Untrained-model hint: a randomly initialised network predicts close to uniformly, and its sigmoid
gates see inputs near zero and sit near 0.5 (SE, ECA; CBAM's spatial gates follow BatchNorm's
untrained statistics and need not).
"""
from dataclasses import dataclass

import numpy as np
import torch

from .agreement import rank_agreement

READING = ("Near the null band or below it: the map depends on the learned weights. Above it: the map hardly "
           "changed when the weights from this block on were replaced by random ones, so it does not show what the "
           "model learned there (it may reflect the image, or the architecture). Passing says a map is not "
           "independent of the model; it does not say the map explains the model.")
SEEDS = (0, 1, 2)
NULL_PAIRS = 1000            # random map pairs behind the null band
BAND = (0.05, 0.95)
UNIFORM_ENTROPY = 0.98       # predictions whose entropy is this share of log(classes) or more read as uniform
GATE_CENTRE, GATE_SPREAD = 0.05, 0.1   # a gate within this of 0.5 on average, with at most this std


@dataclass(frozen=True)
class Sanity:
    block: str
    cells: int                             # the map's cells: what each rank correlation is over
    seeds: tuple[int, ...]
    map: tuple[float, ...]                 # per seed: the block's map after randomisation vs before
    grad_cam: tuple[float, ...]            # per seed: its Grad-CAM (the top class) after vs before
    null: tuple[float, float]              # two independent random maps of `cells` cells: 5-95% band

    def verdict(self, correlations: tuple[float, ...]) -> str:
        """'passes' (inside or below the null band for every seed), 'fails' (above it for every
        seed), 'flat' (a map with one value everywhere ranks nothing), else 'mixed'."""
        if any(np.isnan(correlations)):
            return "flat"
        above = [r > self.null[1] for r in correlations]
        return "fails" if all(above) else "passes" if not any(above) else "mixed"

    def sentence(self, which: str = "map") -> str:
        """One plain sentence on the block's map ("map") or its Grad-CAM ("grad_cam")."""
        correlations = self.map if which == "map" else self.grad_cam
        what = "the block's map" if which == "map" else "its Grad-CAM"
        values = ", ".join("n/a" if np.isnan(r) else f"{r:+.2f}" for r in correlations)
        null = f"two unrelated random maps of {self.cells} cells correlate {self.null[0]:+.2f} to {self.null[1]:+.2f}"
        head = {"passes": f"Re-initialising the weights from {self.block} on changes {what} as much as "
                          "unrelated maps differ: it depends on what the model learned",
                "fails": f"Re-initialising the weights from {self.block} on barely changes {what}: it does not "
                         "depend on what the model learned from this block on",
                "mixed": f"Re-initialising the weights from {self.block} on changes {what} for some seeds only",
                "flat": f"{what.capitalize()} is flat before or after re-initialising the weights from "
                        f"{self.block} on, so it ranks nothing"}[self.verdict(correlations)]
        return (f"{head} (rank correlation with the trained model's over {self.cells} cells, "
                f"{len(self.seeds)} seeds: {values}; {null}, 5-95%).")


def sanity_report(inspection, name: str, seeds: tuple[int, ...] = SEEDS) -> Sanity:
    """The sanity check of block `name` for every seed in `seeds`, beside the null band."""
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of whole numbers, got {seeds!r}")
    cam = inspection.grad_cam(name)
    runs = [inspection.sanity_check(name, seed, cam) for seed in seeds]
    cells = inspection.view(name).map.values.size
    return Sanity(name, cells, tuple(seeds), tuple(r["map"] for r in runs), tuple(r["grad_cam"] for r in runs),
                  null_band(cells))


def null_band(cells: int, pairs: int = NULL_PAIRS, seed: int = 0) -> tuple[float, float]:
    """The 5-95% band of Spearman's rank correlation between two independent uniform random maps
    of `cells` cells, from `pairs` seeded pairs."""
    draws = np.random.default_rng(seed).random((pairs, 2, cells))
    correlations = [rank_agreement(a, b) for a, b in draws]
    low, high = np.quantile(correlations, BAND)
    return float(low), float(high)


def model_hint(inspection) -> str | None:
    """A sentence to show above the maps when the model looks untrained or broken -- predictions
    close to uniform, or every gate of every block near 0.5 with little spread -- else None."""
    probabilities = inspection.capture.logits[0].double().softmax(0)
    classes = len(probabilities)
    if not probabilities.isfinite().all() or classes < 2:
        return None                                     # a NaN output has its own note (`output_note`)
    entropy = float(-(probabilities * probabilities.clamp(min=1e-300).log()).sum() / np.log(classes))
    uniform = entropy >= UNIFORM_ENTROPY
    gates = [g for r in inspection.capture.layers for g in (r.channel[0], r.spatial[0] if r.spatial is not None
                                                             else None) if g is not None]
    centred = bool(gates) and all(abs(float(g.double().mean()) - 0.5) <= GATE_CENTRE
                                  and float(g.double().std()) <= GATE_SPREAD for g in gates)
    if not (uniform or centred):
        return None
    top = float(probabilities.max())
    said = []
    if uniform:
        said.append(f"its predictions are close to uniform (the top class has {top:.1%} over {classes} classes; "
                    f"their entropy is {entropy:.1%} of the most possible)")
    if centred:
        means = torch.stack([g.double().mean() for g in gates])
        spread = max(float(g.double().std()) for g in gates)
        said.append(f"every attention gate of every block sits near 0.5 (means {float(means.min()):.2f} to "
                    f"{float(means.max()):.2f}, spread at most {spread:.2f}), as sigmoid gates do before training")
    return ("This model looks untrained or broken: " + " and ".join(said)
            + ". Its maps then say little about what a trained model attends to.")
