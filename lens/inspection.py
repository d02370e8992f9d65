"""One image through one model: everything the app, the report and a notebook show about it.

    from lens import inspect_image
    inspection = inspect_image(pretrained.load("cbam-resnet18-shapes"), "assets/shapes-star.png")
    inspection.predictions(3); inspection.view("layer3.1", top_k=5).map.values
    inspection.intervene("layer3.1", "gate_off").predictions(3)

An `Inspection` is immutable and holds one forward pass (`blocks.capture_attention`, keeping
`MAX_TOP_K` channel maps per block, so any top-k up to that needs no new pass). Per-block views
drop the batch index.
"""
import os
from copy import deepcopy
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from blocks import Capture, Intervention, capture_attention, grad_cams, interventions
from pretrained import LoadedModel, decode_image, frames_note
from viz import (DEFAULT_CMAP, SpatialView, channel_depth_figure, channel_weights_figure, spatial_grid_figure,
                 spatial_view_figure)

from .agreement import channel_agreement, rank_agreement
from .block_view import BlockView
from .export import attention_json, weights_csv
from .intervention import edited_map
from .localisation import localisation_table
from .teach import explain

MAX_TOP_K = 32     # channel maps kept per block: the largest top-k a view can ask for


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float           # softmax, 0..1


@dataclass(frozen=True, eq=False)
class Inspection:
    model: LoadedModel
    image_name: str
    image: Image.Image           # the model's input as it sees it: resized and cropped, not normalised
    input_notes: tuple[str, ...]  # what decoding, resizing and cropping cost the image, if anything
    x: torch.Tensor              # [1, 3, H, W] the normalised input
    capture: Capture             # its one forward pass
    mask: np.ndarray | None = None   # [H, W] bool object mask aligned with `image`, when known
    edit: Intervention | None = None

    # ---------- blocks ----------

    @property
    def has_attention(self) -> bool:
        return bool(self.capture.layers)

    @cached_property
    def block_names(self) -> list[str]:
        return [r.name for r in self.capture.layers]

    @cached_property
    def stages(self) -> list[list[str]]:
        """Block names by stage, stages in the model's order (blocks of no declared stage last)."""
        stages = sorted({r.stage for r in self.capture.layers}, key=lambda s: (s is None, s))
        return [[r.name for r in self.capture.layers if r.stage == s] for s in stages]

    def stage_of(self, name: str) -> int:
        """The position of `name`'s stage in `stages`."""
        return next(i for i, names in enumerate(self.stages) if name in names)

    def view(self, name: str, top_k: int = 5) -> BlockView:
        return BlockView.of(self.capture.layer(name), self._top_k(top_k))

    def views(self, top_k: int = 5) -> list[BlockView]:
        return [BlockView.of(r, self._top_k(top_k)) for r in self.capture.layers]

    def _top_k(self, top_k: int) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {top_k!r}")
        return top_k

    def parameters(self, name: str) -> int:
        """Parameters of the block's attention module."""
        return sum(p.numel() for p in self.model.model.get_submodule(self.capture.layer(name).module).parameters())

    def formula(self, name: str) -> str:
        """Markdown: what the block computes, with its real sizes and parameter count."""
        view = self.view(name)
        return explain(self.model.model.get_submodule(view.module), view, self.model.model)

    def localisation(self, name: str, top_k: int = 5, cam: SpatialView | None = None) -> list[dict] | None:
        """The block's map -- and `cam`, its Grad-CAM, when given -- against the object mask, beside a
        centred Gaussian and a uniform map: mass ratio, pointing game and AUC per map
        (`lens.localisation`); None without a mask."""
        if self.mask is None:
            return None
        view = self.view(name, top_k)
        maps = {view.map.label: view.map.values, **({cam.label: cam.values} if cam is not None else {})}
        return localisation_table(maps, self.mask)

    def grad_cam(self, name: str, target: int | None = None) -> SpatialView:
        """Grad-CAM (Selvaraju et al., ICCV 2017) of class `target` (default: the top prediction) at
        block `name`'s output, as a map to draw: attribution, stretched like any non-gate map."""
        return self.grad_cams([name], target)[name]

    def grad_cams(self, names: list[str] | None = None, target: int | None = None) -> dict[str, SpatialView]:
        """`grad_cam` at every block of `names` (default: all), from one forward and one backward pass;
        through the edited model when this inspection has an edit."""
        index = self.predictions(1)[0].index if target is None else target
        label = self.model.labels[index]
        maps = grad_cams(self.model.model, self.x, names or self.block_names, index, self.edit)
        return {name: SpatialView(m[0].numpy(), f"Grad-CAM of '{label}' (attribution, not attention)", False,
                                  "class evidence", "" if m.any() else
                                  f"nothing at this block raises the score of '{label}' (all zero)")
                for name, m in maps.items()}

    def cam_agreement(self, name: str, cam: SpatialView, top_k: int = 5) -> float:
        """Spearman's rank correlation, over the map's cells, of the block's map (its gate, or where
        its top-k channels fire) and an attribution map of the same block; NaN if either is flat."""
        return rank_agreement(self.view(name, top_k).map.values, cam.values)

    def sanity_check(self, name: str, seed: int = 0, cam: SpatialView | None = None) -> dict[str, float]:
        """Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018), cascading randomisation:
        the same image through a copy of the model whose weights from block `name` onward are
        re-initialised (seeded). Returns the rank agreement of the block's map and of its Grad-CAM
        (same class) with the trained model's: a map that barely changes does not depend on what the
        model learned from that block on. The shared model is never touched. `cam`: the trained
        model's Grad-CAM of the top class at the block, when already computed."""
        top = self.predictions(1)[0].index
        cam = cam or self.grad_cam(name, top)
        randomised = replace(self.model, model=randomised_from(self.model.model, name, seed))
        other = replace(self, model=randomised, capture=_capture(randomised, self.x, self.edit))
        return {"map": rank_agreement(self.view(name).map.values, other.view(name).map.values),
                "grad_cam": rank_agreement(cam.values, other.grad_cam(name, top).values)}

    # ---------- notes ----------

    @property
    def notes(self) -> tuple[str, ...]:
        """Everything a reader should know before trusting what is shown: the input's notes, then the output's."""
        return self.input_notes + ((self.output_note,) if self.output_note else ())

    @cached_property
    def output_note(self) -> str:
        """What is wrong with the model's output, if anything ("" when every class score is finite):
        a NaN or infinite score makes the probabilities meaningless."""
        logits = self.capture.logits[0]
        counts = ((int(logits.isnan().sum()), "NaN (not a number)"), (int(logits.isinf().sum()), "infinite"))
        if not any(n for n, _ in counts):
            return ""
        what = " and ".join(f"{n} {'is' if n == 1 else 'are'} {kind}" for n, kind in counts if n)
        return (f"The model's output is unusable: of its {logits.numel()} class scores, {what}, so its "
                "probabilities mean nothing. Its weights are probably broken (a NaN or infinite weight, or weights "
                "so large that they overflow).")

    # ---------- predictions and edits ----------

    def predictions(self, k: int = 5) -> list[Prediction]:
        labels = self.model.labels
        return [Prediction(c, labels[c], p) for c, p in self.capture.top_k(k)]

    def probability(self, index: int) -> float:
        return float(self.capture.logits[0].softmax(0)[index])

    def intervention_modes(self, name: str) -> tuple[str, ...]:
        """The edits `intervene` offers for this block (CBAM's two gates can be switched off alone)."""
        return interventions(self.capture.layer(name).kind)

    def intervene(self, name: str, mode: str = "gate_off", k: int = 5) -> "Inspection":
        """The same image through the same model with one block's attention edited
        (`blocks.Intervention`); the shared model is not changed."""
        edit = Intervention(name, mode, k)
        return replace(self, capture=_capture(self.model, self.x, edit), edit=edit)

    def edited_map(self, top_k: int = 5) -> SpatialView:
        """The edited block's map as the edit left it (`lens.intervention.edited_map`): what acted in
        the edited pass, where `view` shows what the gates computed. Only for an `intervene` result."""
        if self.edit is None:
            raise ValueError("edited_map needs an edited inspection: call intervene(name, mode) first")
        return edited_map(self.capture.layer(self.edit.block), self.edit, self._top_k(top_k))

    def agreement(self, other: "Inspection") -> list[float]:
        """Per block, the correlation of this image's channel weights with `other`'s (same model)."""
        return channel_agreement(self.capture.layers, other.capture.layers)

    # ---------- exports ----------

    def to_json(self, top_k: int = 5, cams: dict[str, SpatialView] | None = None) -> dict:
        """Strict-JSON data (`lens.export.attention_json`); `cams`: Grad-CAM views to include."""
        return attention_json(self, self._top_k(top_k), cams)

    def to_csv(self) -> str:
        return weights_csv(self)

    def channels_figure(self, name: str, *, sort: bool = False, top_k: int = 5) -> Figure:
        view = self.view(name, top_k)
        return channel_weights_figure(view.weights, sort=sort, top_k=top_k, title=(
            f"{view.name} ({view.attention.display}): {view.channels} channel weights"))

    def map_figure(self, name: str, *, top_k: int = 5, cmap: str = DEFAULT_CMAP, alpha: float = 0.5,
                   stretch: bool = False, cells: bool = False) -> Figure:
        view = self.view(name, top_k)
        return spatial_view_figure(self.image, view.map, cmap=cmap, alpha=alpha, stretch=stretch,
                                   title=f"{view.name}: {view.map.label}", cells=cells)

    def overview_figure(self, *, top_k: int = 5, cmap: str = DEFAULT_CMAP, alpha: float = 0.5, stretch: bool = False,
                        cells: bool = False) -> Figure:
        views = {v.name: v for v in self.views(top_k)}
        rows = [[(views[n].title, views[n].map) for n in names] for names in self.stages]
        return spatial_grid_figure(self.image, rows, cmap=cmap, alpha=alpha, stretch=stretch, cells=cells)

    def depth_figure(self) -> Figure:
        return channel_depth_figure(self.block_names, [r.channel[0] for r in self.capture.layers])


def randomised_from(model: torch.nn.Module, block: str, seed: int = 0) -> torch.nn.Module:
    """A copy of `model` whose modules from `block` on (in registration order, which is forward
    order in a ResNet: the block, every later block, the classifier) get fresh initial weights."""
    copy = deepcopy(model)
    names = [n for n, _ in copy.named_modules()]
    if block not in names:
        raise ValueError(f"no module named {block!r} in the model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _, module in list(copy.named_modules())[names.index(block):]:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return copy


def _capture(model: LoadedModel, x: torch.Tensor, edit: Intervention | None = None) -> Capture:
    return capture_attention(model.model, x, edit, require_attention=False, channel_maps=MAX_TOP_K)


def inspect_image(model: LoadedModel, image: bytes | str | os.PathLike | Image.Image, name: str | None = None,
                  mask: Image.Image | np.ndarray | str | os.PathLike | None = None) -> Inspection:
    """Run `image` (a file's bytes, a path or a PIL image) through `model` once.

    Bytes and paths are decoded as untrusted uploads (`pretrained.decode_image`: an `ImageError`
    says what is wrong). `mask`: the object's mask at the image's size (an image, a path to one or
    a bool array), resized and cropped with it.
    """
    if isinstance(mask, (str, os.PathLike)):
        mask = Image.open(mask)
    if isinstance(image, (str, os.PathLike)):
        name = name or Path(image).name
        image = Path(image).read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = decode_image(bytes(image))
    preprocess = model.preprocess
    view = preprocess.view(image)
    x = preprocess.to_tensor(view)[None]
    notes = tuple(filter(None, (frames_note(image), preprocess.caveat(image))))
    return Inspection(model, name or "image", view, notes, x, _capture(model, x),
                      None if mask is None else preprocess.mask(mask))
