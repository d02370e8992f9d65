"""One image through one model, and everything the views compute from it. `Subject` owns the choice
of store: results of a shipped model are kept once per process for every session (keyed by the
image's hash and the model's key), those of a user's own checkpoint in its session only (its model
lives there; a process-wide cache would keep it alive after the session moved on). The views ask
the subject and never build a cache key."""
from collections.abc import Callable
from dataclasses import astuple, dataclass

import pyarrow as pa
import streamlit as st

import pretrained
from lens import Inspection, inspect_image
from lens.faithfulness import Panel, block_panel
from lens.sanity import Sanity, sanity_report
from viz import SpatialView
from viz.channels import channel_weights_chart

from .internals import arrow_bytes
from .picture import Picture
from .session import in_session


# ---------- the process-wide stores, one per kind of result (each bounded; never mutated) ----------

@st.cache_resource(show_spinner=False, max_entries=32)
def _inspections(digest: str, model_key: str, _compute: Callable) -> Inspection:
    """One forward pass per (image, model), whatever the display controls say."""
    return _compute()


@st.cache_resource(show_spinner=False, max_entries=64)
def _edits(digest: str, model_key: str, edit: tuple, _compute: Callable) -> Inspection:
    return _compute()


@st.cache_resource(show_spinner=False, max_entries=64)
def _cams(digest: str, model_key: str, edit: tuple | None, block: str, target: int, _compute: Callable):
    """One backward pass per (image, model, edit, block, class)."""
    return _compute()


@st.cache_resource(show_spinner=False, max_entries=16)
def _all_cams(digest: str, model_key: str, target: int, _compute: Callable) -> dict:
    """One backward pass per (image, model, class) for every block."""
    return _compute()


@st.cache_resource(show_spinner=False, max_entries=64)
def _sanity(digest: str, model_key: str, block: str, _compute: Callable) -> Sanity:
    """A model copy per seed, numbers kept."""
    return _compute()


@st.cache_data(show_spinner=False, max_entries=64)
def _localisation(digest: str, model_key: str, block: str, top_k: int, _compute: Callable) -> list[dict]:
    """Scoring costs more than the rest of the page, and every new session's first page shows it."""
    return _compute()


@st.cache_resource(show_spinner=False, max_entries=128)
def _faithfulness(digest: str, model_key: str, block: str, target: int, fill: str, channels: int | None,
                  _compute: Callable) -> Panel:
    """~150 forward passes per (image, model, block, class, fill) with the blur fill, ~900 with ROAD."""
    return _compute()


@st.cache_data(show_spinner=False, max_entries=256)
def _channel_chart(digest: str, model_key: str, block: str, sort: bool, top_k: int, _compute: Callable) -> dict:
    return _compute()


def _kept(store: Callable, model: pretrained.LoadedModel, digest: str, model_key: str, *key, compute: Callable):
    """`compute()` kept in `store` for a shipped model, in the session for a user's checkpoint."""
    if model.source == "file":
        return in_session((store.__name__, digest, model_key, *key), compute)
    return store(digest, model_key, *key, _compute=compute)


# ---------- the subject ----------

@dataclass(frozen=True)
class Subject:
    picture: Picture
    model: pretrained.LoadedModel
    model_key: str
    inspection: Inspection

    @classmethod
    def of(cls, picture: Picture, model: pretrained.LoadedModel, model_key: str) -> "Subject":
        """The image through the model: one forward pass, kept where the model's results are kept."""
        inspection = _kept(_inspections, model, picture.digest, model_key,
                           compute=lambda: inspect_image(model, picture.data, picture.name, picture.mask))
        return cls(picture, model, model_key, inspection)

    def _kept(self, store: Callable, *key, compute: Callable):
        return _kept(store, self.model, self.picture.digest, self.model_key, *key, compute=compute)

    def with_picture(self, picture: Picture) -> "Subject":
        return Subject.of(picture, self.model, self.model_key)

    def with_model(self, model: pretrained.LoadedModel, model_key: str) -> "Subject":
        return Subject.of(self.picture, model, model_key)

    def edited(self, block: str, mode: str, top_k: int) -> Inspection:
        """The image through the model with one block edited (`Inspection.intervene`)."""
        edit = (block, mode, top_k)
        return self._kept(_edits, edit, compute=lambda: self.inspection.intervene(*edit))

    def grad_cam(self, block: str, target: int, edited: Inspection | None = None) -> SpatialView:
        """Grad-CAM of class `target` at `block`, through the edited model for an edited inspection."""
        inspection = edited or self.inspection
        edit = None if inspection.edit is None else astuple(inspection.edit)
        return self._kept(_cams, edit, block, target, compute=lambda: inspection.grad_cam(block, target))

    def top_cam(self, block: str) -> SpatialView:
        return self.grad_cam(block, self.inspection.predictions(1)[0].index)

    def grad_cams(self) -> dict[str, SpatialView]:
        """Grad-CAM of the top class at every block (one backward pass)."""
        top = self.inspection.predictions(1)[0].index
        return self._kept(_all_cams, top, compute=lambda: self.inspection.grad_cams(None, top))

    def sanity(self, block: str) -> Sanity:
        return self._kept(_sanity, block, compute=lambda: sanity_report(self.inspection, block))

    def localisation(self, block: str, top_k: int) -> list[dict]:
        cam = self.top_cam(block)
        return self._kept(_localisation, block, top_k,
                          compute=lambda: self.inspection.localisation(block, top_k, cam))

    def faithfulness(self, block: str, target: int, fill: str, top_k: int) -> Panel:
        """Deletion and insertion for the block's map (a spatial gate, or where the top-k channels
        fire) beside its baselines and the random band."""
        channels = None if self.inspection.capture.layer(block).attention.has_spatial_gate else top_k  # the gate ignores k
        return self._kept(_faithfulness, block, target, fill, channels,
                          compute=lambda: block_panel(self.inspection, block, target, fill, top_k=top_k))

    def channel_chart(self, block: str, sort: bool, top_k: int) -> dict:
        """The block's Vega-Lite chart, its datasets already the Arrow bytes Streamlit sends (from Arrow
        tables: Streamlit converts rows through pandas, ~10 ms for 512 channels against 0.5 ms)."""
        def compute() -> dict:
            spec = channel_weights_chart(self.inspection.view(block, top_k).weights, sort=sort, top_k=top_k,
                                         fixed_scale=True)
            spec["datasets"] = {n: arrow_bytes(pa.Table.from_pylist(rows)) for n, rows in spec["datasets"].items()}
            return spec
        return self._kept(_channel_chart, block, sort, top_k, compute=compute)
