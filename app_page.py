"""Attention Lens's page: widgets, one cached inspection per (image, model, edit), layout. Every
number, map and figure comes from `lens.Inspection`; models come from `pretrained`. `app.py`, the
script Streamlit reruns, draws the frame and calls `main`: this module is imported once per process.
"""
import ctypes
import gc
import hashlib
import io
import json
import logging
import math
import re
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from time import monotonic

import pyarrow as pa
import streamlit as st
from streamlit.dataframe_util import convert_anything_to_arrow_bytes
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

import pretrained
from lens import MAX_TOP_K, UNCHANGED_POINTS, BlockView, Inspection, inspect_image, outcome
from lens.cost import too_costly
from lens.card_notes import block_note, model_note
from lens.domain_note import domain_note
from lens.localisation import MEASURES
from pretrained.image import decoding_for
from pretrained.preprocess import MIN_CROP
from study_page import study_page
from viz import SpatialView, colorbar_strip, figure_png, joint_range, overlay, shared_scale
from viz.channels import channel_agreement_chart, channel_depth_chart, channel_weights_chart
from viz.markup import md

ROOT = Path(__file__).parent
ASSETS = ROOT / "assets"
SAMPLES = json.loads((ASSETS / "samples.json").read_text())
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
WEIGHT_TYPES = [suffix[1:] for suffix in pretrained.WEIGHTS_SUFFIXES]
COLORMAPS = ["jet", "turbo", "viridis", "inferno", "magma", "gray"]
OWN_CHECKPOINT = "Your own checkpoint..."
SOURCE_TAGS = {"bundled": "offline", "timm": "ImageNet, downloads once", "official": "authors' file"}
IMAGE_SOURCES = ["Upload", "Sample", "Camera"]
try:
    LIBC = ctypes.CDLL("libc.so.6")          # glibc: malloc_trim (elsewhere nothing to trim)
except OSError:
    LIBC = None
KEPT_DIGESTS = 8             # upload hashes remembered per session
KEPT_RESULTS = 6             # inspections with a user's checkpoint kept per session
SIDEBAR_CHARS = 30           # longer model labels are cut in the sidebar's select box
SHOWN_CHARS = 600            # longer messages from the library or a file are cut in the middle
NAME_CHARS = 120             # and so are longer file names
UNCLAIMED_SECONDS = 30.0     # a stored file no uploader has held goes after this long (it may be on its way)
SHOWN_PIXELS = 1024          # an image shown without a model: its longer side at most
VIEWS = ["Block", "Overview", "Compare", "Intervene", "Downloads", "Study"]
MAPS = {"attention": "the blocks' own maps", "gradcam": "Grad-CAM of the top class"}
EDITS = {"gate_off": "switch this block's attention off (gates = 1)", "channel_gate_off": "only its channel gate off",
         "spatial_gate_off": "only its spatial gate off", "zero_top_k": "zero its top-{k} channels"}
EDIT_ACTS = {"gate_off": ("Switching `{block}`'s attention off", "this block's attention"),
             "channel_gate_off": ("Switching `{block}`'s channel gate off", "this channel gate"),
             "spatial_gate_off": ("Switching `{block}`'s spatial gate off", "this spatial gate"),
             "zero_top_k": ("Zeroing `{block}`'s top-{k} channels", "these channels")}
EDIT_OUTCOMES = {
    "raised": "{act} **raised** the probability of '{label}' from {p0} to {p1}. On this image {subject} held back "
              "evidence for '{label}', or the edit shifted the model's calibration (how sure it is) without adding "
              "evidence; it does not show that attention is harmful: the rest of the model was trained with it in place.",
    "lowered": "{act} **lowered** the probability of '{label}' from {p0} to {p1}: on this image the prediction is "
               "sensitive to {subject}. It does not show that what {subject} favours causes the class: the edit "
               "rescales the whole branch at once, and the blocks after it get features unlike those they were "
               "trained on.",
    "unchanged": "{act} moved the probability of '{label}' by less than {points} points ({p0} to {p1}): on this "
                 "image the prediction does not rely on {subject} (the shortcut carries the block's input past it, "
                 "and the blocks after it can make up for the change)."}
UNAVAILABLE = {  # what a visitor can do when a model's weights are not on the server (the log says where)
    "timm": "{name} is not available here: its ImageNet weights need a one-time download, which this server cannot "
            "make now. Choose another model (the bundled ones always work).",
    "official": "{name} is not available here: this server does not have the authors' checkpoint file. Choose "
                "another model, or, if you have the file, load it as your own checkpoint."}
NO_WEIGHTS = ("Upload a weights file (a state dict of one of our architectures, a timm SE/ECA/CBAM ResNet, or an "
              "official ECA-Net / CBAM checkpoint) in the sidebar, or choose another model.")
log = logging.getLogger(__name__)


# ---------- cached, shared by every session (content-keyed, never mutated) ----------

@st.cache_resource(show_spinner=False)
def model_entries() -> dict[str, pretrained.ModelEntry]:
    return {e.name: e for e in pretrained.available()}


@st.cache_resource(show_spinner=False, max_entries=6)
def load_model(name: str) -> pretrained.LoadedModel:
    return pretrained.load(name)


@st.cache_resource(show_spinner=False, max_entries=32)
def inspection_of(digest: str, model_key: str, _data: bytes, _name: str, _mask: str | None,
            _model: pretrained.LoadedModel) -> Inspection:
    """One forward pass per (image, model), whatever the display controls say."""
    return inspect_image(_model, _data, _name, None if _mask is None else ASSETS / _mask)


@st.cache_resource(show_spinner=False, max_entries=64)
def edited(digest: str, model_key: str, edit: tuple, _inspection: Inspection) -> Inspection:
    return _inspection.intervene(*edit)


@st.cache_resource(show_spinner=False, max_entries=64)
def cam_of(digest: str, model_key: str, edit: tuple | None, block: str, target: int, _inspection: Inspection):
    """Grad-CAM of one class at one block: one backward pass per (image, model, edit, block, class)."""
    return _inspection.grad_cam(block, target)


@st.cache_resource(show_spinner=False, max_entries=16)
def cams_of(digest: str, model_key: str, target: int, _inspection: Inspection) -> dict:
    """Grad-CAM of one class at every block: one backward pass per (image, model, class)."""
    return _inspection.grad_cams(None, target)


@st.cache_data(show_spinner=False, max_entries=64)
def sanity_of(digest: str, model_key: str, block: str, _inspection: Inspection, _cam: SpatialView) -> dict[str, float]:
    """The cascading-randomisation check of one block: a model copy per call, numbers kept."""
    return _inspection.sanity_check(block, cam=_cam)


@st.cache_data(show_spinner=False, max_entries=64)
def localisation_of(digest: str, model_key: str, block: str, top_k: int, _inspection: Inspection,
                    _cam: SpatialView) -> list[dict]:
    """The block's map and Grad-CAM scored against the sample's mask: scoring costs more than the
    rest of the page, and every new session's first page shows it."""
    return _inspection.localisation(block, top_k, _cam)


@st.cache_data(show_spinner=False, max_entries=256)
def channel_chart_spec(digest: str, model_key: str, block: str, sort: bool, top_k: int, _weights) -> dict:
    """The block's Vega-Lite chart, built once per (image, model, block, sort, top-k), its datasets
    already the Arrow bytes Streamlit sends (from Arrow tables: Streamlit converts rows through
    pandas, ~10 ms for 512 channels against 0.5 ms)."""
    spec = channel_weights_chart(_weights, sort=sort, top_k=top_k, fixed_scale=True)
    spec["datasets"] = {name: convert_anything_to_arrow_bytes(arrow(rows)) for name, rows in spec["datasets"].items()}
    return spec


@st.cache_resource(show_spinner=False, max_entries=len(COLORMAPS))
def colorbar_png(cmap: str) -> bytes:
    """The colour scale shown under the maps, encoded once per colormap."""
    return png(colorbar_strip(cmap))


def png(image) -> bytes:
    """A PIL image as PNG at zlib level 1, the same pixels that `st.image` sends: it encodes at
    level 6: ~6 ms for a 128 px overlay, ~1.3 ms here, for ~15% more bytes."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


# ---------- what the sidebar chose ----------

@dataclass(frozen=True)
class Picture:
    data: bytes
    name: str
    digest: str
    sample: dict | None = None        # a bundled sample: its title, file, mask and label

    def inspect(self, model: pretrained.LoadedModel, model_key: str) -> Inspection:
        mask = self.sample.get("mask") if self.sample else None
        if model.source == "file":                  # a user's checkpoint: its results stay in its session
            return in_session(("inspect", self.digest, model_key),
                              lambda: inspect_image(model, self.data, self.name, mask and ASSETS / mask))
        return inspection_of(self.digest, model_key, self.data, self.name, mask, model)


@dataclass(frozen=True)
class Display:
    cmap: str
    alpha: float
    stretch: bool
    cells: bool
    sort: bool
    top_k: int


def capitalised(text: str) -> str:
    """A map's label as a heading: "where the top-5 ..." -> "Where the top-5 ..."."""
    return text[:1].upper() + text[1:]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bounded(text: str, limit: int) -> str:
    """`text` cut in the middle to `limit` characters and a note of how many were cut: a file's name or
    a message quoting its contents can run to megabytes, every one of them sent to the browser."""
    if len(text) <= limit:
        return text
    head, cut = limit * 2 // 3, len(text) - limit
    return f"{text[:head]} ... ({cut:,} characters cut) ... {text[head + cut:]}"


def unlocated(text: str) -> str:
    """`text` with the server's folders named rather than spelled out: visitors cannot use them (the
    server's log and the README tell the operator)."""
    folders = {pretrained.weights_home(): "the server's weights folder", ROOT: "the app's folder",
               Path.home(): "a server folder"}
    for folder, name in folders.items():
        if folder.parent != folder:                     # never the root folder: "/" is in every path
            text = text.replace(str(folder), name)
    return text


def shown(message) -> str:
    """A message from the library or about a file as a visitor reads it: no server folders, bounded, escaped."""
    return md(bounded(unlocated(str(message)), SHOWN_CHARS))


def file_name(upload) -> str:
    """An upload's name as the page and the library use it: bounded (the visitor chose it)."""
    return bounded(upload.name, NAME_CHARS)


def remembered(store: str, key, compute, keep: int):
    """`compute()`, kept in this session under `key`: the last `keep` results of `store`."""
    kept = st.session_state.setdefault(store, {})
    if key not in kept:
        kept[key] = compute()
        trim(kept, keep)
    return kept[key]


def trim(store: dict, keep: int) -> None:
    """Drop the oldest entries of `store` beyond the last `keep`."""
    while len(store) > keep:
        store.pop(next(iter(store)))


def upload_digest(upload) -> str:
    """The content hash of an upload, computed once per uploaded file."""
    return remembered("digests", upload.file_id, lambda: sha(upload.getvalue()), KEPT_DIGESTS)


def in_session(key: tuple, compute):
    """What a user's own checkpoint computes, kept in its session only: the checkpoint's model lives
    there, and a process-wide cache would keep it alive (one model per entry) after the session
    moved on."""
    return remembered("results", key, compute, KEPT_RESULTS)


def forget_checkpoint() -> None:
    """Drop the session's checkpoint and everything computed with it, and hand the memory back."""
    st.session_state.pop("checkpoint", None)
    st.session_state.pop("results", None)
    give_back_memory()


def give_back_memory() -> None:
    """Return freed memory to the system: glibc keeps the pages of freed heap blocks (a checkpoint's
    worth, per upload) in the process unless asked, and the server would grow with every upload."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)


def release(upload) -> None:
    """Drop an upload's bytes from Streamlit's uploaded-file store once they have been used: the
    store keeps a file while its session lives, even after its uploader has left the page."""
    ctx = get_script_run_ctx()
    if ctx is not None:
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=upload.file_id)


def stored_files(ctx) -> set[str]:
    """The ids of the files Streamlit's store holds for this session. Streamlit lists them nowhere
    public: this reads `MemoryUploadedFileManager.file_storage` (session id -> file id -> file; a test
    checks it). Another store lists nothing, and so loses nothing."""
    storage = getattr(ctx.uploaded_file_mgr, "file_storage", {})
    return set(storage.get(ctx.session_id, ()))


def bound_uploads() -> None:
    """Keep in Streamlit's store only the files this session's uploaders hold: its image, its camera
    shot and a weights file that has not loaded. The store keeps every file a session sends until
    the session ends, also those that a newer upload replaced. A file an uploader held goes once
    none holds it; one that none has held yet (it may be on its way: a browser sends the file, then
    the widget that holds it) after `UNCLAIMED_SECONDS`."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    held = {value.file_id for value in map(st.session_state.get, list(st.session_state))
            if isinstance(value, UploadedFile)}
    now, seen, kept = monotonic(), st.session_state.get("stored_uploads", {}), {}
    for file_id in stored_files(ctx):
        since = -math.inf if file_id in held else seen.get(file_id, now)      # when it was first seen unclaimed
        if file_id in held or now - since < UNCLAIMED_SECONDS:
            kept[file_id] = since
        else:
            ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
    st.session_state["stored_uploads"] = kept


def show_source(source: str) -> None:
    st.session_state["image_source"] = source


def choose_picture() -> Picture:
    """The uploader is always on the page (nothing dropped when a sample is shown); choosing a
    file, a sample or a camera shot shows it."""
    upload = st.file_uploader("Drop an image (JPEG, PNG, WebP, BMP, GIF, TIFF)", type=UPLOAD_TYPES, key="image",
                              on_change=show_source, args=("Upload",))
    st.session_state.setdefault("image_source", "Sample")          # the default page needs no action
    source = st.radio("Show", IMAGE_SOURCES, key="image_source", horizontal=True)
    titles = [s["title"] for s in SAMPLES]
    sample = SAMPLES[titles.index(st.selectbox("Sample", titles, key="sample", on_change=show_source,
                                               args=("Sample",)))]
    if source == "Camera":
        shot = st.camera_input("Take a picture", key="camera")
        if shot is not None:
            return Picture(shot.getvalue(), "camera.jpg", upload_digest(shot))
        st.caption("No picture taken yet: showing the sample.")
    if source == "Upload":
        if upload is not None:
            return Picture(upload.getvalue(), file_name(upload), upload_digest(upload))
        st.caption("No file uploaded yet: showing the sample.")
    data = (ASSETS / sample["file"]).read_bytes()
    return Picture(data, sample["file"], sha(data), sample)


def choose_display() -> Display:
    cmap = st.selectbox("Colormap", COLORMAPS, key="cmap")
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="alpha")
    stretch = st.toggle("Stretch each map to its own range", value=False, key="stretch",
                        help="Off: gates on a fixed 0-1 scale (they are absolute). On: per-map contrast.")
    cells = st.toggle("Show feature-map cells", value=False, key="cells",
                      help="Off: bilinear upsampling onto the image. On: one flat colour per cell of the map.")
    sort = st.toggle("Sort channels by weight", value=False, key="sort")
    top_k = st.slider("Top-k channels", 1, MAX_TOP_K, 5, key="top_k")
    return Display(cmap, alpha, stretch, cells, sort, top_k)


def choose_model(entries: dict) -> tuple[pretrained.LoadedModel, str] | str:
    """The chosen model and its cache key; or, when there is none to use, what the page says instead
    (the sidebar has said why)."""
    names = list(entries) + [OWN_CHECKPOINT]

    def label(name: str) -> str:
        return name if name == OWN_CHECKPOINT else f"{name} ({SOURCE_TAGS[entries[name].source]})"

    choice = st.selectbox("Model", names, key="model", format_func=label, index=names.index(pretrained.DEFAULT_MODEL)
                          if pretrained.DEFAULT_MODEL in names else 0)
    if len(label(choice)) > SIDEBAR_CHARS:
        st.caption(label(choice))                 # the whole name: the box cuts long ones
    if choice != OWN_CHECKPOINT:
        try:
            with st.spinner(f"Loading {choice}" + (" (first use downloads the weights once)..."
                                                   if entries[choice].downloads else "...")):
                return load_model(choice), choice
        except pretrained.ModelUnavailable as e:
            st.warning(text := unavailable(entries[choice], e))
            return text
        except (pretrained.CheckpointError, ValueError) as e:
            log.warning("%s did not load: %s", choice, e)
            st.error(text := f"Cannot load {md(choice)}: {shown(e)}")
            return text
    return own_checkpoint() or NO_WEIGHTS


def unavailable(entry: pretrained.ModelEntry, error: Exception) -> str:
    """What a visitor can do about a model whose weights this server lacks; the operator gets the
    library's account (where the file goes) in the log."""
    log.warning("%s is unavailable: %s", entry.name, error)
    return UNAVAILABLE[entry.source].format(name=md(entry.name))


def own_checkpoint() -> tuple[pretrained.LoadedModel, str] | str | None:
    """A user's weights file, kept in this session once loaded (the uploader then gives way to its
    name: a file uploader copies its whole file on every rerun), with the settings a bare file
    cannot carry. Each upload gets a fresh uploader, so "Use another weights file" starts empty."""
    kept = st.session_state.get("checkpoint")                   # (model key, LoadedModel)
    if kept is None:
        upload = st.file_uploader(
            "Weights file (" + ", ".join(f".{t}" for t in WEIGHT_TYPES) + ")", type=WEIGHT_TYPES,
            key=f"weights_{st.session_state.get('weights_round', 0)}",
            help="A state dict (or a dict holding one) of one of our ResNets, a timm SE/ECA/CBAM ResNet, or an "
                 "official ECA-Net / CBAM checkpoint. Only tensors are read; a file that asks to run code is refused.")
        if upload is None:
            return None
        if not load_checkpoint(upload):
            return None
        del upload                                               # its bytes: the model holds the weights now
        give_back_memory()
        st.rerun()                                               # show the file's name in place of the uploader
    model_key, loaded = kept
    st.markdown(f"Weights: **{md(loaded.name)}**")
    st.button("Use another weights file", key="replace_weights", on_click=forget_checkpoint)
    return configure_checkpoint(loaded, model_key)


def load_checkpoint(upload) -> bool:
    """Read an uploaded weights file into this session's model and drop the upload from
    Streamlit's store; or say why it cannot be used."""
    name, digest = file_name(upload), upload_digest(upload)
    refused = st.session_state.setdefault("refused_weights", {})     # digest -> message: a refused file is read once
    if digest not in refused:
        try:
            with st.spinner(f"Reading {md(name)} (only tensors are loaded; nothing in it is run)..."):
                loaded = pretrained.load(upload.getvalue(), name=name)
        except (pretrained.CheckpointError, ValueError) as e:
            refused[digest] = f"Cannot use {md(name)}: {shown(e)}"
        except Exception:                # the file's fault all the same: a clear message, the traceback logged
            log.exception("a weights file failed to load in a way pretrained.load did not foresee")
            refused[digest] = f"Cannot use {md(name)}: it cannot be read as a weights file."
        trim(refused, KEPT_DIGESTS)
    if digest in refused:
        st.error(refused[digest])
        return False
    st.session_state["checkpoint"] = f"file:{upload_digest(upload)}", loaded
    st.session_state["weights_round"] = st.session_state.get("weights_round", 0) + 1
    release(upload)
    return True


def configure_checkpoint(loaded: pretrained.LoadedModel, model_key: str) -> tuple[pretrained.LoadedModel, str] | str:
    """What a bare weights file cannot say: the input size and crop the model was trained with,
    and its class names. Returns the model so configured and its cache key, or, where that costs
    more per image than the server runs (`lens.cost`), what to do instead."""
    p = loaded.preprocess
    with st.expander("How this checkpoint sees images"):
        size = st.number_input("Input size (pixels)", 16, 1024, p.input_size, step=16, key=f"size_{model_key}")
        crop = st.slider("Centre crop (share of the resized image)", MIN_CROP, 1.0, float(p.crop_pct), 0.025,
                         format="%.3f", key=f"crop_{model_key}")
        text = st.text_area(f"Class names, one per line ({len(loaded.labels)}; optional)", key=f"labels_{model_key}")
    names = pretrained.class_names(text) or None
    try:
        configured = loaded.configured(int(size), crop, names)
    except ValueError as e:
        st.warning(f"{shown(e)}: keeping the file's names.")
        configured, names = loaded.configured(int(size), crop), None
    if costly := too_costly(configured.model, configured.preprocess.input_size):
        st.error(costly)
        return costly
    return configured, f"{model_key}:{size}:{crop}:{sha(chr(10).join(names or ()).encode())}"


# ---------- pieces of the page ----------

def arrow(rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table, which `st.dataframe` sends as it is: a list goes through pandas
    first, 1 ms a table on every rerun."""
    return pa.Table.from_pylist(rows)


def show_predictions(inspection: Inspection, k: int = 5) -> None:
    """The top-k classes, under what is wrong with the model's output when something is."""
    if inspection.output_note:
        st.error(inspection.output_note)
    rows = [{"class": p.label, "probability": 100 * p.probability} for p in inspection.predictions(k)]
    st.dataframe(arrow(rows), hide_index=True, width="stretch", column_config={"probability": st.column_config.ProgressColumn(
        "probability", format="%.2f%%", min_value=0.0, max_value=100.0)})   # 90.80%, 1.10%


def show_overlay(inspection: Inspection, shown: SpatialView, display: Display, caption: str = "",
                 joint: tuple[float, float] | None = None) -> None:
    """A map over the image with its colour scale and what the scale means (`joint`: a range shared
    with the maps beside it); a map with nothing to draw (its note says why) leaves the image bare,
    as the downloaded figure does."""
    st.image(png(overlay(inspection.image, shown.values, cmap=display.cmap, alpha=0.0 if shown.note else display.alpha,
                         stretch=shown.stretched(display.stretch), cells=display.cells, value_range=joint)),
             width="stretch", caption=caption or None)
    if shown.note:
        st.info(f"Nothing to draw: {shown.note}.")
        return
    st.image(colorbar_png(display.cmap), width="stretch", caption=shown.scale_caption(display.stretch, joint))


def pick_block(inspection: Inspection) -> BlockView:
    """One stage and block choice for every view, remembered while a view without it is shown
    (Streamlit drops the state of widgets it does not draw). The widgets are keyed by the model's
    block list and the stage, so their labels can never name another model's or stage's block."""
    names = inspection.block_names
    layout = sha("|".join(names).encode())[:12]
    chosen = st.session_state.get("chosen_block")
    chosen = chosen if chosen in names else names[-1]
    stage_numbers = list(range(1, len(inspection.stages) + 1))
    c1, c2 = st.columns(2)
    stage = c1.selectbox("Stage", stage_numbers, index=inspection.stage_of(chosen), key=f"stage_{layout}")
    in_stage = inspection.stages[stage - 1]
    name = c2.selectbox("Block", in_stage, index=in_stage.index(chosen) if chosen in in_stage else len(in_stage) - 1,
                        key=f"block_{layout}_{stage}")
    st.session_state["chosen_block"] = name
    return name


def block_page(inspection: Inspection, picture: Picture, model_key: str, display: Display) -> None:
    view = inspection.view(pick_block(inspection), display.top_k)
    c1, c2 = st.columns([1, 1])
    with c1:
        st.markdown(f"**Channel weights** of `{view.name}` ({view.kind.upper()}, {view.channels} channels)")
        st.vega_lite_chart(channel_chart_spec(picture.digest, model_key, view.name, display.sort, display.top_k,
                                              view.weights), width="stretch")
        st.caption(view.top.caption(marked=" (orange)"))
    with c2:
        st.markdown(f"**{capitalised(view.map.label)}** of `{view.name}` ({view.map.size})")
        show_overlay(inspection, view.map, display)
    if inspection.model.source == "bundled" and (note := block_note(inspection.model.name, view.name)):
        st.caption(note)
    if st.toggle("Beside it: Grad-CAM, what raises a class's score", key="show_cam",
                 help="Attribution (Selvaraju et al., ICCV 2017) at this block's output: where the features that "
                      "raise the chosen class's score lie. Attention is what the block weights; attribution is "
                      "what the prediction used. One backward pass per block and class."):
        attribution(inspection, picture, model_key, view, display)
    if st.toggle("Sanity check: re-initialise the weights from this block on", key="sanity",
                 help="Adebayo et al., NeurIPS 2018: run the image through a copy of the model whose weights from "
                      "this block to the classifier are random, and see how much each map changes."):
        sanity(inspection, picture, model_key, view)
    st.subheader("What this block computes")
    st.markdown(inspection.formula(view.name))
    if inspection.mask is not None:
        cam = block_cam(inspection, picture, model_key, view.name, inspection.predictions(1)[0].index)
        rows = (in_session(("localisation", picture.digest, model_key, view.name, display.top_k),
                           lambda: inspection.localisation(view.name, display.top_k, cam))
                if inspection.model.source == "file" else
                localisation_of(picture.digest, model_key, view.name, display.top_k, inspection, cam))
        st.subheader("On the object? Against baselines")
        st.dataframe(arrow(rows), hide_index=True, width="stretch",           # plain text cells: no markdown
                     column_config={m: st.column_config.NumberColumn(m, format="%.2f") for m in MEASURES})
        st.caption("Each map upsampled onto the image and scored against the object's mask. Mass ratio: the "
                   "share of the map's mass on the object over the object's share of the image (1 = uniform). "
                   "Pointing game: whether its highest point is on the object. AUC: the chance that an object "
                   "pixel outranks a background pixel (0.5 = chance). A map that does not beat the centred "
                   "Gaussian has not shown that it found the object: objects tend to sit near the middle, and "
                   "a bump there, which looks at nothing, scores well.")


def block_cam(inspection: Inspection, picture: Picture, model_key: str, block: str, target: int) -> SpatialView:
    """The block's Grad-CAM of class `target` (through the edited model for an edited inspection),
    computed once per (image, model, edit, block, class)."""
    edit = None if inspection.edit is None else astuple(inspection.edit)
    if inspection.model.source == "file":
        return in_session(("cam", picture.digest, model_key, edit, block, target),
                          lambda: inspection.grad_cam(block, target))
    return cam_of(picture.digest, model_key, edit, block, target, inspection)


def attribution(inspection: Inspection, picture: Picture, model_key: str, view: BlockView, display: Display) -> None:
    """The block's Grad-CAM for a class of the top 5, and how far it ranks the cells as the block's
    own map does."""
    top = inspection.predictions(5)
    chosen = st.selectbox("Class", range(len(top)), key="cam_class",
                          format_func=lambda i: f"{top[i].label} ({top[i].probability:.1%})")
    cam = block_cam(inspection, picture, model_key, view.name, top[chosen].index)
    rho = inspection.cam_agreement(view.name, cam, display.top_k)
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{md(capitalised(cam.label))}** at `{view.name}` ({cam.size})")
        show_overlay(inspection, cam, display)
    with right:
        st.metric("Rank agreement with the block's map", "undefined (a flat map)" if rho != rho else f"{rho:+.2f}",
                  help="Spearman's rank correlation over the map's cells: +1, both rank the cells in the same "
                       "order; 0, unrelated; -1, opposite. It compares orders, so the gate's 0-1 scale and "
                       "Grad-CAM's unnormalised one need no common scale.")
        st.caption("High agreement says the block weights the places that the prediction uses; low agreement "
                   "says its attention is spent elsewhere. Neither map proves what the model knows: Grad-CAM "
                   "is one explanation method among several, sensitive to where it is taken.")


def sanity(inspection: Inspection, picture: Picture, model_key: str, view: BlockView) -> None:
    """How much the block's map and its Grad-CAM change when what the model learned from the block
    on is replaced by random weights (the shared model is untouched: a copy is randomised)."""
    with st.spinner("Running the image through a randomised copy of the model..."):
        cam = block_cam(inspection, picture, model_key, view.name, inspection.predictions(1)[0].index)  # cached
        result = (in_session(("sanity", picture.digest, model_key, view.name),
                             lambda: inspection.sanity_check(view.name, cam=cam))
                  if inspection.model.source == "file" else sanity_of(picture.digest, model_key, view.name, inspection, cam))
    left, right = st.columns(2)
    for column, (key, what) in zip((left, right), (("map", "the block's map"), ("grad_cam", "Grad-CAM of the top class"))):
        rho = result[key]
        column.metric(f"Rank agreement of {what}, trained vs randomised",
                      "undefined (a flat map)" if rho != rho else f"{rho:+.2f}")
    st.caption("Near +1: the map hardly changed when the weights from this block on were replaced by random "
               "ones, so it does not show what the model learned there (it may reflect the image, or the "
               "architecture). Near 0: the map depends on the learned weights. Passing says a map is not "
               "independent of the model; it does not say the map explains the model.")


def choose_map() -> str:
    """Which map the Overview and Compare draw: the blocks' own, or Grad-CAM of the top class."""
    return st.radio("Map", list(MAPS), format_func=MAPS.get, horizontal=True, key="map_kind")


def with_cams(inspection: Inspection, picture: Picture, model_key: str, views: dict) -> dict:
    """`views` with each block's map replaced by its Grad-CAM of the top class (one backward pass)."""
    top = inspection.predictions(1)[0].index
    cams = (in_session(("cams", picture.digest, model_key, top), lambda: inspection.grad_cams(None, top))
            if inspection.model.source == "file" else cams_of(picture.digest, model_key, top, inspection))
    return {name: replace(view, map=cams[name]) for name, view in views.items()}


def overview_page(inspection: Inspection, picture: Picture, model: pretrained.LoadedModel, model_key: str,
                  display: Display) -> None:
    views = {v.name: v for v in inspection.views(display.top_k)}
    if choose_map() == "gradcam":
        views = with_cams(inspection, picture, model_key, views)
    fixed = shared_scale([v.map for v in views.values()], display.stretch)
    st.markdown(f"**All blocks** -- {views[inspection.block_names[-1]].map.label}")
    st.columns(2)[0].image(colorbar_png(display.cmap), width="stretch", caption=(
        "0.00 to 1.00: gate value, fixed scale: the same colour means the same gate in every block" if fixed else
        "low to high of each map: every map is stretched to its own range, so colours do not compare across blocks"))
    slots = max(map(len, inspection.stages))
    per_row = max(1, 4 // slots)                  # small maps, short page: ResNet-18 puts two stages a row
    for first in range(0, len(inspection.stages), per_row):
        columns = st.columns(per_row * slots)
        for j, names in enumerate(inspection.stages[first:first + per_row]):
            for column, name in zip(columns[j * slots:], names):
                v = views[name]
                column.image(png(overlay(inspection.image, v.map.values, cmap=display.cmap,
                                         alpha=0.0 if v.map.note else display.alpha, stretch=not fixed,
                                         cells=display.cells)), width="stretch", caption=v.title)
    st.altair_chart(channel_depth_chart(inspection.block_names, [v.weights for v in views.values()]),
                    width="stretch")
    st.subheader("Same channels for every image?")
    others = [s for s in SAMPLES if s["file"] != picture.name]
    titles = [s["title"] for s in others]
    other = others[titles.index(st.selectbox("Compare this image's channel weights with", titles, key="agree_with"))]
    data = (ASSETS / other["file"]).read_bytes()
    agreement = inspection.agreement(Picture(data, other["file"], sha(data), other).inspect(model, model_key))
    st.altair_chart(channel_agreement_chart(inspection.block_names, agreement), width="stretch")
    st.caption("Correlation, block by block, of the two images' channel weights: 1 means the block excites the "
               "same channels whatever the image. The SE paper (Sec. 7.2, Fig. 6) finds early blocks "
               "class-agnostic and later ones class-specific; a gap marks a block whose gate is saturated.")


def compare_page(inspection: Inspection, picture: Picture, model_key: str, entries: dict, display: Display) -> None:
    """The image through two or three models side by side; the current model leads when it is not
    one of the bundled SE/ECA/CBAM trio (a plain baseline, an ImageNet model, your checkpoint)."""
    model = inspection.model
    current = f"{model.name} (yours)" if model.source == "file" else model.name
    trio = sorted((n for n, e in entries.items() if e.source == "bundled" and e.attention),
                  key=lambda n: ["se", "eca", "cbam"].index(entries[n].attention))
    options = list(dict.fromkeys([current, *entries]))
    choices = st.session_state.setdefault("compare_choice", {})      # per current model, kept across images
    default = choices.get(model_key, trio if current in trio else [current, *trio[:2]])
    chosen = st.multiselect("Models to compare (2 or 3)", options, default=[n for n in default if n in options],
                            max_selections=3, key=f"compare_{sha(model_key.encode())[:12]}")
    choices[model_key] = chosen
    trim(choices, KEPT_DIGESTS)                                         # one entry per model tried: bounded
    chosen_block = st.session_state.get("chosen_block")
    stages = list(range(1, max(len(inspection.stages), 1) + 1))
    stage = st.selectbox("Stage to show", stages, key="compare_stage", index=(
        inspection.stage_of(chosen_block) if chosen_block in inspection.block_names else len(stages) - 1))
    if len(chosen) < 2:
        st.info("Choose two or three models above to see them side by side.")
    kinds = st.empty()                                 # filled once the maps are known
    cams = choose_map() == "gradcam"
    shown = []
    for column, name in zip(st.columns(max(1, len(chosen))), chosen):
        with column:
            st.markdown(f"**{md(name)}**")
            try:
                other, key = (model, model_key) if name == current else (load_model(name), name)
            except pretrained.ModelUnavailable as e:
                st.warning(unavailable(entries[name], e))
                continue
            except (pretrained.CheckpointError, ValueError) as e:
                st.warning(shown(e))
                continue
            result = picture.inspect(other, key)
            show_predictions(result, 3)
            if not result.has_attention:
                st.caption("no attention blocks (baseline)")
                continue
            view = result.view(result.stages[min(stage, len(result.stages)) - 1][-1], display.top_k)
            if cams:
                view = with_cams(result, picture, key, {view.name: view})[view.name]
            shown.append(view.map)
            show_overlay(result, view.map, display, caption=f"{view.name}: {view.map.label}")
            st.vega_lite_chart(channel_chart_spec(picture.digest, key, view.name, display.sort, display.top_k,
                                                  view.weights), width="stretch")
            st.caption(f"{view.kind.upper()} block `{view.name}`: {result.parameters(view.name):,} parameters, "
                       f"{view.channels} channel weights")
    if len({m.absolute for m in shown}) > 1:
        kinds.info("These maps are not the same kind of quantity: a CBAM gate is a weight between 0 and 1, drawn "
                   "on a fixed scale, while SE and ECA have no spatial gate, so their map shows where the "
                   "most-weighted channels fire, stretched to its own range. Compare where each map is high, not "
                   "its colours across models.")


def intervene_page(inspection: Inspection, picture: Picture, model_key: str, display: Display) -> None:
    name = pick_block(inspection)
    view = inspection.view(name, display.top_k)
    modes = {m: EDITS[m].format(k=len(view.top.channels)) for m in inspection.intervention_modes(name)}
    if st.session_state.get("edit_mode") not in modes:       # e.g. a CBAM-only edit after choosing an SE block
        st.session_state.pop("edit_mode", None)
    mode = st.radio("Edit", list(modes), horizontal=True, key="edit_mode", format_func=modes.get)
    edit = (name, mode, display.top_k)
    after = (in_session(("edit", picture.digest, model_key, edit), lambda: inspection.intervene(*edit))
             if inspection.model.source == "file" else edited(picture.digest, model_key, edit, inspection))
    if mode == "zero_top_k":
        st.caption("Zeroed: " + view.top.caption())
    left, right = st.columns(2)
    with left:
        st.markdown("**Original**")
        show_predictions(inspection)
    with right:
        st.markdown(f"**With `{name}` edited**")
        show_predictions(after)
    top = inspection.predictions(1)[0]
    p0, p1 = top.probability, after.probability(top.index)
    st.metric(f"Probability of '{md(top.label)}'", f"{p1:.2%}", f"{(p1 - p0) * 100:+.2f} points")
    st.markdown(edit_explanation(inspection, after, len(view.top.channels)))
    st.caption("The edit changes the scale of one residual branch: the block outputs ReLU(shortcut + s × branch), "
               "with its attention s set to 1 where a gate is off or to 0 on zeroed channels, and the shortcut "
               "still carries the block's input past it. One image is an anecdote: try several before drawing "
               "conclusions about the model.")
    edited_map = after.edited_map(display.top_k)
    maps = st.columns(2)
    with maps[0]:
        show_pair(f"**{capitalised(view.map.label)}** of `{name}`", inspection, view.map, edited_map, display)
    with maps[1]:
        show_pair(f"**Grad-CAM of '{md(top.label)}'** at `{name}` (attribution)", inspection,
                  block_cam(inspection, picture, model_key, name, top.index),
                  block_cam(after, picture, model_key, name, top.index), display)
    st.caption("Each pair is drawn on one colour scale, so a colour means the same value before and after the edit. "
               f"The edited Grad-CAM runs through the edited model: where the features at `{name}` raise the score "
               f"of '{md(top.label)}' once the edit has reached every block after it."
               + (" The edited block's own map is fixed by the edit (its note says how): what the edit does to "
                  "the blocks after it shows in the edited Grad-CAM." if edited_map.note else ""))


def show_pair(title: str, inspection: Inspection, before: SpatialView, after: SpatialView, display: Display) -> None:
    """A map before and after an edit, side by side on one colour scale."""
    st.markdown(title)
    joint = joint_range([before, after], display.stretch)
    for column, shown, caption in zip(st.columns(2), (before, after), ("original", "edited")):
        with column:
            show_overlay(inspection, shown, display, caption, joint)


def edit_explanation(before: Inspection, after: Inspection, zeroed: int) -> str:
    """What the edit did to the top class's probability and what that does and does not show
    (`zeroed`: how many channels "zero_top_k" zeroes)."""
    edit, top, now = after.edit, before.predictions(1)[0], after.predictions(1)[0]
    act, subject = EDIT_ACTS[edit.mode]
    p0, p1 = top.probability, after.probability(top.index)
    text = EDIT_OUTCOMES[outcome(p0, p1)].format(
        act=act.format(block=edit.block, k=zeroed), subject=subject, label=md(top.label), p0=f"{p0:.2%}",
        p1=f"{p1:.2%}", points=UNCHANGED_POINTS)
    return text + ("" if now.index == top.index else f" The top class is now '{md(now.label)}'.")


def downloads_page(inspection: Inspection, picture: Picture, display: Display) -> None:
    st.markdown("Every figure as PNG (rendered when you click), all weights as JSON or CSV.")
    name = pick_block(inspection)
    model_name = inspection.model.name
    while Path(model_name).suffix.lower() in pretrained.WEIGHTS_SUFFIXES:      # mine.pth.tar -> mine
        model_name = Path(model_name).stem
    stem = re.sub(r"[^\w.-]+", "-", f"{Path(picture.name).stem}_{model_name}")   # one file set per image and model
    c1, c2 = st.columns(2)
    looks = dict(cmap=display.cmap, alpha=display.alpha, stretch=display.stretch, cells=display.cells)

    def offer(column, label: str, render, file_name: str, mime: str = "image/png") -> None:
        """A download rendered on click. No rerun after it: a rerun would give the other buttons
        new files, and a second click made during it would find its file gone."""
        column.download_button(label, render, file_name=file_name, mime=mime, on_click="ignore")

    offer(c1, f"{name} channel weights (PNG)", lambda: figure_png(inspection.channels_figure(
        name, sort=display.sort, top_k=display.top_k)), f"{stem}_{name}_channels.png")
    offer(c1, f"{name} spatial map (PNG)", lambda: figure_png(inspection.map_figure(
        name, top_k=display.top_k, **looks)), f"{stem}_{name}_spatial.png")
    offer(c1, "Overview of all blocks (PNG)", lambda: figure_png(inspection.overview_figure(
        top_k=display.top_k, **looks)), f"{stem}_overview.png")
    offer(c1, "Channel weights by depth (PNG)", lambda: figure_png(inspection.depth_figure()), f"{stem}_depth.png")
    offer(c2, "All weights and predictions (JSON)", lambda: json.dumps(inspection.to_json(display.top_k),
                                                                       allow_nan=False),
          f"{stem}_attention.json", "application/json")
    offer(c2, "All channel weights (CSV)", inspection.to_csv, f"{stem}_weights.csv", "text/csv")


# ---------- the page ----------

def without_model(picture: Picture, text: str) -> None:
    """The page when no model can be used: what to do (`text`), beside the chosen image as it is."""
    left, right = st.columns([1, 2])
    right.info(text)
    try:
        image = pretrained.decode_image(picture.data)
    except pretrained.ImageError as e:
        left.error(f"Cannot use {md(picture.name)}: {shown(e)}")
        return
    image.thumbnail((SHOWN_PIXELS, SHOWN_PIXELS))           # what a page shows, not what a model sees
    left.image(image, width="stretch", caption=md(picture.name))


def main() -> None:
    """The page, its image decodes counted as this visitor's, then this session's file store trimmed."""
    with decoding_for(visitor()):
        try:
            show_page()
        finally:
            bound_uploads()


def visitor() -> str:
    """Whom this run's decodes are for (one large decode at a time each): the connection's address
    where Streamlit knows it (a visitor can open many sessions, rarely many addresses), else this
    session (a local connection has no address)."""
    ctx = get_script_run_ctx()
    return st.context.ip_address or (ctx.session_id if ctx else "")


def show_page() -> None:
    entries = model_entries()
    with st.sidebar:
        st.header("Image")
        picture = choose_picture()
        st.header("Model")
        chosen = choose_model(entries)
        st.header("Display")
        display = choose_display()
    if isinstance(chosen, str):
        without_model(picture, chosen)
        return
    model, model_key = chosen
    try:
        inspection = picture.inspect(model, model_key)
    except pretrained.ImageError as e:
        st.error(f"Cannot use {md(picture.name)}: {shown(e)}")
        return
    except Exception:
        if model.source != "file":       # a shipped model failing is a bug of ours: let it show
            raise
        log.exception("a user's model failed on an image")
        st.error(f"Cannot run {md(model.name)} on {md(picture.name)}: the model failed on this image "
                 "(its weights or settings may not fit it). Try other settings under \"How this checkpoint "
                 "sees images\", or another model.")
        return
    left, right = st.columns([1, 2])
    with left:
        st.image(png(inspection.image), width="stretch", caption=f"{md(picture.name)}, as the model sees it "
                 f"({inspection.image.width} x {inspection.image.height} after resize and crop)")
        for note in inspection.input_notes:
            st.warning(note)
    with right:
        st.subheader("Predictions")
        st.caption(shown(model.description))          # it may quote a file's name or path
        show_predictions(inspection)
        if model.source == "bundled" and (note := model_note(model.name)):
            st.caption(note)
        if (note := domain_note(model)) and not (picture.sample and picture.sample.get("label") in model.labels):
            st.caption(note)                        # a note, not an alarm: a drawn shape is in its domain
    page = st.segmented_control("View", VIEWS, default="Block", key="view") or "Block"
    if page == "Compare":
        compare_page(inspection, picture, model_key, entries, display)
    elif page == "Study":
        study_page(entries)
    elif not inspection.has_attention:
        st.info(f"{md(model.name)} has no attention blocks: it is a baseline without attention. Open Compare to see it "
                "beside the SE, ECA and CBAM models.")
    elif page == "Block":
        block_page(inspection, picture, model_key, display)
    elif page == "Overview":
        overview_page(inspection, picture, model, model_key, display)
    elif page == "Intervene":
        intervene_page(inspection, picture, model_key, display)
    else:
        downloads_page(inspection, picture, display)

