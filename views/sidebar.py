"""The sidebar: which model (a shipped one, or the visitor's own weights file, read in isolation)
and how maps are drawn."""
import logging

import streamlit as st

import pretrained
from lens import MAX_TOP_K
from lens.cost import too_costly
from lens.glossary import GLOSSARY
from pretrained.preprocess import MIN_CROP
from viz.markup import md

from .internals import give_back_memory, release
from .messages import file_name, shown
from .models import load_model, unavailable
from .session import KEPT_DIGESTS, sha, trim, upload_digest
from .widgets import COLORMAPS, Display

WEIGHT_TYPES = [suffix[1:] for suffix in pretrained.WEIGHTS_SUFFIXES]
OWN_CHECKPOINT = "Your own checkpoint..."
SOURCE_TAGS = {"bundled": "offline", "timm": "ImageNet, downloads once", "official": "authors' file"}
SIDEBAR_CHARS = 30           # longer model labels are cut in the sidebar's select box
NO_WEIGHTS = ("Upload a weights file (a state dict of one of our architectures, a timm SE/ECA/CBAM ResNet, or an "
              "official ECA-Net / CBAM checkpoint) in the sidebar, or choose another model.")
log = logging.getLogger(__name__)


def choose_display() -> Display:
    cmap = st.selectbox("Colormap", COLORMAPS, key="cmap",
                        help="viridis, inferno, cividis and magma are perceptually uniform: equal steps in value look "
                             "like equal steps in colour. jet and turbo are not.")
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="alpha")
    stretch = st.toggle("Stretch each map to its own range", value=False, key="stretch",
                        help="Off: gates on a fixed 0-1 scale (they are absolute). On: " + GLOSSARY["stretched"])
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


def forget_checkpoint() -> None:
    """Drop the session's checkpoint and everything computed with it, and hand the memory back."""
    st.session_state.pop("checkpoint", None)
    st.session_state.pop("results", None)
    give_back_memory()


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
    st.session_state["checkpoint"] = f"file:{digest}", loaded
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
