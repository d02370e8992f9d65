"""Does the model use what a map marks? Deletion and insertion (Petsiuk et al., "RISE: Randomized
Input Sampling for Explanation of Black-box Models", BMVC 2018, Sec. 4.1), on torchcam 0.5's grid,
and, for one block of an `Inspection`, beside baselines and a null band of random maps.

`curves` ranks the input's pixels by a map (upsampled bilinearly to the input, align_corners=False;
a stable descending sort, so of equal values the earlier pixel in raster order comes first).
Deletion replaces the highest-ranked pixels by a fill, a step at a time, and records the softmax
probability of the target class; insertion starts from the fill and restores the highest-ranked
pixels first. A step is ceil(HW / steps) pixels, the last one shorter; `fractions` are the pixels
replaced (deletion) or restored (insertion) over HW; an AUC is the trapezoid over the fractions. A
map the model depends on gives a low deletion AUC and a high insertion AUC. The curves equal
torchcam's `DeletionInsertionMetric` given the same fill as its baseline (a test).

Fills (what a removed pixel becomes):
- "blur": the image blurred by RISE's kernel -- an 11 x 11 Gaussian of sigma 5, made as RISE's
  evaluation code makes it (`gkern(klen=11, nsig=5)`: a unit impulse smoothed by scipy's
  `gaussian_filter`, which reflects at the kernel's edges), zero-padded as its `conv2d` is. RISE
  starts insertion from it; here, as torchcam's one baseline, it is both curves' fill.
- "mean": zero in normalised space, i.e. the dataset's mean colour (torchcam's default baseline).
- "road": ROAD's noisy linear imputation (Rong et al., ICML 2022; `lens.road`): the removed pixels
  filled from the kept ones, so the image stays closer to what the model was trained on; deletion
  is then ROAD's most-relevant-first order and insertion its least-relevant-first one. With `seed`
  None there is no noise (the imputation is deterministic); with an integer seed, ROAD's noise
  (std `ROAD_NOISE`, in the input's units) comes from a generator seeded with it. With no pixel
  kept (deletion's last point, insertion's first) there is nothing to impute from: the mean fill.

Every perturbed input goes through the model in batches of `BATCH`, under `torch.inference_mode`:
no hooks, no gradients. A model in training mode is put in eval mode for the call and its flags are
restored after (as torch-cam does; other threads see that change, so share eval-mode models only).
Cost (bench/faithfulness_cost.py, bundled CBAM model, 128 px, one thread): one block's panel (12 maps,
20 steps: 480 perturbed inputs) took 125-200 plain forward passes of the image with the blur fill
(1.1-1.4 s) and 800-1,000 with ROAD (9-10 s, most of it the imputation), over two runs.
"""
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d
from torch import nn

from blocks.attribution import target_classes
from blocks.hooks import on_model_device

from .localisation import centred_gaussian
from .road import impute

BATCH = 32                  # perturbed inputs per forward pass
BLUR_SIZE, BLUR_SIGMA = 11, 5.0   # RISE's blur kernel (klen, nsig)
ROAD_NOISE = 0.01           # ROAD's noise, as in the authors' code
RANDOM_MAPS = 8             # random maps of the block's resolution: the null band
BAND = (0.05, 0.95)         # the null band's quantiles


@dataclass(frozen=True)
class Curves:
    fractions: torch.Tensor      # [S+1] share of the pixels removed (deletion) or restored (insertion), 0..1
    deletion: torch.Tensor       # [B, S+1] softmax probability of the target as pixels are removed
    insertion: torch.Tensor      # [B, S+1] ... as pixels are restored onto the fill
    deletion_auc: torch.Tensor   # [B] trapezoid over the fractions: lower = more faithful
    insertion_auc: torch.Tensor  # [B] higher = more faithful
    target: torch.Tensor         # [B] the class scored
    fill: str


def curves(model: nn.Module, x: torch.Tensor, saliency, target=None, steps: int = 20, fill: str = "blur",
           seed: int | None = None) -> Curves:
    """Deletion and insertion curves of `model` on `x` [B, 3, H, W] (as the model takes it) for the
    maps `saliency` [B, h, w] (any resolution, tensor or array). `target`: a class index, one per
    image, or None for each image's top class. `fill`: "blur", "mean" or "road"; `seed`: the ROAD
    noise's seed (None: no noise). Tensors come back on the CPU."""
    x, maps = _checked(model, x, saliency, steps, fill, seed)
    batch, _, h, w = x.shape
    with _evaluating(model), torch.inference_mode():
        x = on_model_device(model, x)
        clean = _probabilities(model, x)                                                # [B, classes]
        classes = target_classes(target, clean)                                               # [B]
        values = F.interpolate(maps[:, None].to(x.device), size=(h, w), mode="bilinear",
                               align_corners=False)[:, 0].flatten(1)                   # [B, H*W]
        ranks = values.argsort(dim=1, descending=True, stable=True).argsort(dim=1)     # [B, H*W] 0: first
        pixels = h * w
        step = -(-pixels // steps)
        counts = [*range(0, pixels, step), pixels]
        inner = torch.tensor(counts[1:-1], device=x.device)                            # [S-1]
        removed = ranks[:, None] < inner[:, None]                                       # [B, S-1, H*W]
        keep = torch.cat([~removed, removed, torch.zeros_like(removed[:, :1])], 1)     # from x: deletion's
        keep = keep.view(batch, -1, h, w)                                               # inputs, insertion's, none
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        scores = _scores(model, FILLS[fill](x, generator), keep, classes)               # [B, 2S-1]
    fractions = torch.tensor(counts, dtype=torch.float32) / pixels                     # [S+1]
    clean_score = clean.gather(1, classes[:, None].to(clean.device)).cpu()             # [B, 1]
    n = len(inner)
    deletion = torch.cat([clean_score, scores[:, :n], scores[:, -1:]], 1)               # [B, S+1]
    insertion = torch.cat([scores[:, -1:], scores[:, n:2 * n], clean_score], 1)
    return Curves(fractions, deletion, insertion, torch.trapezoid(deletion, fractions, dim=1),
                  torch.trapezoid(insertion, fractions, dim=1), classes, fill)


def blur_kernel() -> torch.Tensor:
    """[11, 11] RISE's blur: a unit impulse smoothed by a Gaussian of sigma 5, reflected at the edges."""
    impulse = np.zeros(BLUR_SIZE)
    impulse[BLUR_SIZE // 2] = 1
    line = torch.from_numpy(gaussian_filter1d(impulse, BLUR_SIGMA))                     # [11], sums to 1
    return torch.outer(line, line).float()


def _blurred(x: torch.Tensor, generator) -> Callable:
    channels = x.shape[1]
    kernel = blur_kernel().to(x)[None, None].expand(channels, 1, -1, -1)               # [C, 1, 11, 11]
    fill = F.conv2d(x, kernel, padding=BLUR_SIZE // 2, groups=channels)                # [B, C, H, W]
    return lambda keep, images: torch.where(keep[:, None], x[images], fill[images])


def _mean(x: torch.Tensor, generator) -> Callable:
    return lambda keep, images: x[images] * keep[:, None]


def _imputed(x: torch.Tensor, generator) -> Callable:
    noise = 0.0 if generator is None else ROAD_NOISE
    return lambda keep, images: impute(x[images], keep, noise, generator)


# fill -> (x [B, C, H, W], generator) -> (keep [n, H, W] bool: pixels from x, images [n]) -> inputs [n, C, H, W]
FILLS = {"blur": _blurred, "mean": _mean, "road": _imputed}


def _scores(model, inputs, keep, classes) -> torch.Tensor:
    """[B, J] the target's probability for each perturbed input: `keep` [B, J, H, W] says which
    pixels come from x, the rest from the fill; all B*J inputs in batches of `BATCH`."""
    batch, jobs = keep.shape[:2]
    images = torch.arange(batch, device=keep.device).repeat_interleave(jobs)          # [B*J]
    keep = keep.flatten(0, 1)                                                           # [B*J, H, W]
    scores = []
    for start in range(0, len(images), BATCH):
        part = images[start:start + BATCH]
        probabilities = _probabilities(model, inputs(keep[start:start + BATCH], part))  # [n, classes]
        scores.append(probabilities.gather(1, classes[part.cpu(), None].to(probabilities.device))[:, 0].cpu())
    return torch.cat(scores).view(batch, jobs)


def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).float().softmax(1)                                                  # [n, classes]


@contextmanager
def _evaluating(model: nn.Module):
    """The model in eval mode for the call, every module's `.training` flag as it was after."""
    training = [m for m in model.modules() if m.training]
    for module in training:
        module.training = False              # one module at a time: train() would recurse into the rest
    try:
        yield
    finally:
        for module in training:
            module.training = True


def _checked(model, x, saliency, steps, fill, seed) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor [B, 3, H, W] with B >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    try:
        maps = torch.as_tensor(np.asarray(saliency.detach().cpu() if isinstance(saliency, torch.Tensor) else saliency,
                                          dtype=np.float32))
    except (TypeError, ValueError) as error:
        raise ValueError(f"saliency must be numbers [B, h, w], got {type(saliency).__name__}") from error
    if maps.ndim != 3 or maps.shape[0] != x.shape[0] or 0 in maps.shape:
        raise ValueError(f"saliency must be [B, h, w] with one map per image of x ({x.shape[0]}), "
                         f"got {list(maps.shape)}")
    if not maps.isfinite().all():
        raise ValueError("saliency has NaN or infinite values: a map must be finite to rank pixels by it")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; fills: {', '.join(FILLS)}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be None (no ROAD noise) or a whole number, got {seed!r}")
    return x.detach(), maps


@dataclass(frozen=True)
class MapScore:
    """One map's AUCs and where they fall against the random maps' band."""
    label: str
    deletion_auc: float
    insertion_auc: float
    deletion_verdict: str        # "better than chance" | "no better than chance" | "worse than chance"
    insertion_verdict: str


@dataclass(frozen=True)
class Panel:
    """Deletion and insertion for one block's map, its baselines and its null band, on one image."""
    block: str
    target: int
    target_label: str
    fill: str
    curves: Curves               # one row per map of `scores`, then one per random map
    scores: tuple[MapScore, ...]
    random_deletion: tuple[float, float, float]    # the random maps' mean AUC, then the band's ends
    random_insertion: tuple[float, float, float]

    # `block_panel` scores the block's own map, the same map reversed, Grad-CAM, a centred Gaussian, in that order
    own = property(lambda self: self.scores[0])
    grad_cam = property(lambda self: self.scores[2])
    gaussian = property(lambda self: self.scores[3])

    def band(self, curve: str) -> str:
        """The random maps' 5-95% band of `curve`'s ("deletion" or "insertion") AUC, "0.412-0.655"."""
        _, low, high = self.random_deletion if curve == "deletion" else self.random_insertion
        return f"{low:.3f}-{high:.3f}"

    def rows(self) -> list[dict]:
        """The AUC table: one row per scored map, then one for the random maps (their mean, and the band)."""
        rows = [{"map": s.label, "deletion AUC": s.deletion_auc, "by deletion": s.deletion_verdict,
                 "insertion AUC": s.insertion_auc, "by insertion": s.insertion_verdict} for s in self.scores]
        rows.append({"map": f"random maps (mean; band {self.band('deletion')} / {self.band('insertion')})",
                     "deletion AUC": self.random_deletion[0], "by deletion": "the band of chance",
                     "insertion AUC": self.random_insertion[0], "by insertion": "the band of chance"})
        return rows

    def sentence(self, score: MapScore) -> str:
        """One plain sentence on `score`, e.g. for the app's caption."""
        band = (f"{len(self.curves.target) - len(self.scores)} random maps' {BAND[0]:.0%}-{BAND[1]:.0%} band: "
                f"deletion {self.band('deletion')}, insertion {self.band('insertion')}")
        both = {score.deletion_verdict, score.insertion_verdict}
        if both == {"better than chance"}:
            head = (f"The model depends on what {score.label} marks for '{self.target_label}': removing it first "
                    "lowers the probability faster, and restoring it first raises it faster, than random maps do")
        elif both == {"no better than chance"}:
            head = f"{score.label} is no better than chance at marking what the model uses for '{self.target_label}'"
        else:
            head = (f"{score.label} for '{self.target_label}': by deletion {score.deletion_verdict}, "
                    f"by insertion {score.insertion_verdict}")
        return (f"{head} (deletion AUC {score.deletion_auc:.3f}, lower is better; insertion AUC "
                f"{score.insertion_auc:.3f}, higher is better; {band}).")

    def chart_rows(self) -> tuple[list[dict], list[dict]]:
        """The curves for a chart: rows (map, curve, fraction, probability) for each scored map, and
        rows (curve, fraction, low, high) of the random maps' 5-95% band at each fraction."""
        fractions = self.curves.fractions.tolist()
        lines, band = [], []
        for curve, values in (("deletion", self.curves.deletion), ("insertion", self.curves.insertion)):
            for score, row in zip(self.scores, values.tolist()):
                lines += [{"map": score.label, "curve": curve, "fraction": f, "probability": p}
                          for f, p in zip(fractions, row)]
            random = values[len(self.scores):].double()
            low, high = torch.quantile(random, torch.tensor(BAND, dtype=torch.float64), dim=0).tolist()
            band += [{"curve": curve, "fraction": f, "low": lo, "high": hi} for f, lo, hi in zip(fractions, low, high)]
        return lines, band


def block_panel(inspection, name: str, target: int | None = None, fill: str = "blur", randoms: int = RANDOM_MAPS,
                seed: int = 0, steps: int = 20, top_k: int = 5) -> Panel:
    """Deletion and insertion on `inspection`'s image for block `name`'s map (CBAM's spatial gate; for
    SE/ECA where its top-weighted channels fire, as `Inspection.view` shows it), the same map reversed,
    Grad-CAM of the same class at the block and a centred Gaussian (`lens.localisation`), beside
    `randoms` uniform random maps of the block's resolution (seeded by `seed`): all in one call of
    `curves`. A map whose AUC lies inside the random maps' 5-95% band is no better than chance.
    `target`: the class (default the top prediction); `top_k`: the SE/ECA map's channels, as the page
    shows it (the card and the study score `blocks.ACTIVITY_CHANNELS`)."""
    if inspection.edit is not None:
        raise ValueError("block_panel scores the model as it is: use the inspection without its edit")
    if isinstance(randoms, bool) or not isinstance(randoms, int) or randoms < 2:
        raise ValueError(f"randoms must be a whole number >= 2 (a band needs two), got {randoms!r}")
    index = inspection.predictions(1)[0].index if target is None else target
    view, cam = inspection.view(name, top_k), inspection.grad_cam(name, index)
    shape = view.map.values.shape
    maps = {view.map.label: view.map.values, f"{view.map.label}, reversed": -view.map.values,
            cam.label: cam.values, "a centred Gaussian (baseline)": centred_gaussian(shape)}
    noise = torch.rand(randoms, *shape, generator=torch.Generator().manual_seed(seed))    # [R, h, w]
    stack = torch.cat([torch.as_tensor(np.stack(list(maps.values())), dtype=torch.float32), noise])
    x = inspection.x.expand(len(stack), -1, -1, -1)
    result = curves(inspection.model.model, x, stack, index, steps, fill)
    bands = []
    for auc in (result.deletion_auc, result.insertion_auc):
        random = auc[len(maps):].double()
        low, high = torch.quantile(random, torch.tensor(BAND, dtype=torch.float64)).tolist()
        bands.append((float(random.mean()), low, high))
    scores = tuple(MapScore(label, float(d), float(i), _verdict(float(d), bands[0], lower=True),
                            _verdict(float(i), bands[1], lower=False))
                   for label, d, i in zip(maps, result.deletion_auc, result.insertion_auc))
    return Panel(name, index, inspection.model.labels[index], fill, result, scores, *bands)


def _verdict(auc: float, band: tuple[float, float, float], lower: bool) -> str:
    _, low, high = band
    if low <= auc <= high:
        return "no better than chance"
    return "better than chance" if (auc < low) == lower else "worse than chance"


FILL_NAMES = {"blur": "blurred image (RISE)", "mean": "dataset mean colour", "road": "ROAD imputation (slower)"}
WHAT_IT_SHOWS = (
    "Deletion removes the pixels a map ranks highest first and records the class's probability; insertion "
    "restores them first onto a blank (Petsiuk et al., BMVC 2018). A map the prediction depends on makes "
    "deletion fall fast (low AUC) and insertion rise fast (high AUC). Random maps of the block's resolution give "
    "the band of chance; the centred Gaussian and the reversed map are baselines that look at nothing in "
    "particular. What it does not show: half-removed images are unlike anything the model was trained on, so a "
    "fall can come from the removal itself (ROAD, Rong et al., ICML 2022, fills the pixels from their "
    "neighbours to limit that); it scores one image and one class; and a map that passes shows where the "
    "evidence lies, not that attention explains the model (Jain & Wallace, NAACL 2019).")
