"""Attention Lens: see what SE, ECA and CBAM attention blocks do inside a ResNet.

The UI only: widgets, caching, layout, downloads. Models come from `pretrained/`, the forward pass
and its attention from `blocks/`, every picture from `viz/`.
"""
import csv
import dataclasses
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

import pretrained
from blocks import Capture, Intervention, capture_attention, strongest_channels
from blocks.localisation import localisation_score
from viz import (channel_depth_figure, channel_weights_figure, colorbar_strip, figure_png, overlay,
                 spatial_grid_figure, spatial_view, spatial_view_figure)
from viz.agreement import channel_agreement, channel_agreement_chart
from viz.channels import channel_depth_chart, channel_weights_chart
from viz.decode import ImageError, decode_image
from viz.report import attention_json
from viz.teach import explain

ASSETS = Path(__file__).parent / "assets"
SAMPLES = json.loads((ASSETS / "samples.json").read_text())
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
WEIGHT_TYPES = [suffix[1:] for suffix in pretrained.WEIGHTS_SUFFIXES]
COLORMAPS = ["jet", "turbo", "viridis", "inferno", "magma", "gray"]
OWN_CHECKPOINT = "Your own checkpoint..."
SOURCE_TAGS = {"bundled": "offline", "timm": "ImageNet, downloads once", "official": "authors' file"}
VIEWS = ["Block", "Overview", "Compare", "Intervene", "Downloads"]
MAX_TOP_K = 32   # top-k slider limit; each capture keeps this many channel maps per block


# ---------- cached, shared by every session (content-keyed, never mutated) ----------

@st.cache_resource(show_spinner=False)
def model_entries() -> dict[str, pretrained.ModelEntry]:
    return {e.name: e for e in pretrained.available()}


@st.cache_resource(show_spinner=False, max_entries=6)
def load_model(name: str) -> pretrained.LoadedModel:
    return pretrained.load(name)


@st.cache_resource(show_spinner=False, max_entries=2)
def load_checkpoint(model_key: str, filename: str, _upload) -> pretrained.LoadedModel:
    """The uploaded weights, read once per content (`getvalue` copies the whole file). Called
    without the upload once it has loaded: a miss then (evicted) raises LookupError."""
    if _upload is None:
        raise LookupError(model_key)
    return pretrained.load(_upload.getvalue(), name=filename)


@st.cache_resource(show_spinner=False, max_entries=32)
def model_view(digest: str, model_key: str, _data: bytes, _loaded: pretrained.LoadedModel):
    """The decoded image as the model sees it, its input tensor [1, 3, H, W], and what resizing
    and cropping cost it when that is a lot ('' otherwise)."""
    image = decode_image(_data)
    view = _loaded.preprocess.view(image)
    return view, _loaded.preprocess.to_tensor(view)[None], _loaded.preprocess.caveat(image)


@st.cache_resource(show_spinner=False, max_entries=64)
def analyse(digest: str, model_key: str, edit: tuple | None, _x, _loaded) -> Capture:
    """One forward pass per (image, model, intervention), whatever the display controls say."""
    return capture_attention(_loaded.model, _x, Intervention(*edit) if edit else None,
                             require_attention=False, channel_maps=MAX_TOP_K)


@st.cache_data(show_spinner=False, max_entries=256)
def channel_chart_spec(digest: str, model_key: str, block: str, sort: bool, top_k: int, _weights) -> dict:
    """The block's Vega-Lite chart, built once per (image, model, block, sort, top-k): building
    it costs more than the rest of a rerun."""
    return channel_weights_chart(_weights, sort=sort, top_k=top_k, fixed_scale=True)


# ---------- helpers (no tensor maths) ----------

def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def out_of_domain_note(loaded: pretrained.LoadedModel) -> str:
    return (f"{loaded.name} knows only {len(loaded.labels)} shapes ({', '.join(loaded.labels)}): on any other "
            "picture it still answers one of them, often confidently. Its attention maps still show where it "
            "looks. For photos, choose an ImageNet model (marked \"downloads once\").")


def configure_checkpoint(loaded: pretrained.LoadedModel, model_key: str, where):
    """What a bare weights file cannot say, set in the sidebar: the input size and crop the model
    was trained with, and its class names. Returns the model so configured and its cache key."""
    p = loaded.preprocess
    with where.expander("How this checkpoint sees images"):
        size = st.number_input("Input size (pixels)", 16, 1024, p.input_size, step=16, key=f"size_{model_key}")
        crop = st.slider("Centre crop (share of the resized image)", 0.5, 1.0, float(p.crop_pct), 0.025,
                         format="%.3f", key=f"crop_{model_key}")
        text = st.text_area(f"Class names, one per line ({len(loaded.labels)}; optional)", key=f"labels_{model_key}")
    names = pretrained.class_names(text) or None
    try:
        configured = loaded.configured(int(size), crop, names)
    except ValueError as e:
        where.warning(f"{e}: keeping the file's names.")
        configured, names = loaded.configured(int(size), crop), None
    return configured, f"{model_key}:{size}:{crop}:{sha(chr(10).join(names or ()).encode())}"


def forget_if_not_in(key: str, options: list) -> None:
    """Drop a remembered choice that the current model does not offer (e.g. layer4.2 after
    switching from a ResNet-50 to a ResNet-18), so its widget starts from its default."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def upload_digest(upload) -> str:
    """The content hash of an upload, computed once per uploaded file (a 100 MB checkpoint takes
    ~0.2 s to hash, too slow to repeat on every rerun)."""
    digests = st.session_state.setdefault("digests", {})
    if upload.file_id not in digests:
        digests[upload.file_id] = sha(upload.getvalue())
    return digests[upload.file_id]


def predictions_table(capture: Capture, labels, k: int = 5) -> list[dict]:
    return [{"class": labels[c], "probability": 100 * p} for c, p in capture.top_k(k)]


def show_predictions(capture: Capture, labels, k: int = 5) -> None:
    st.dataframe(predictions_table(capture, labels, k), hide_index=True, width="stretch",
                 column_config={"probability": st.column_config.ProgressColumn(
                     "probability", format="%.2f%%", min_value=0.0, max_value=100.0)})   # 90.80%, 1.10%


def top_channels_caption(weights, k: int, marked: str = "") -> str:
    """The top-k channels as text, strongest first (the chart labels only those that fit), and
    how many channels tie with the k-th: saturated gates often give dozens of exact 1.0s, and
    then which of them make the top k is only the channel order. `marked`: how a chart shows them."""
    top = strongest_channels(weights[None], k)[0].tolist()
    text = (f"Top {len(top)} channel{'s' if len(top) > 1 else ''}{marked}: "
            + " · ".join(f"#{c} {weights[c]:.4f}" for c in top))
    last = weights[top[-1]]
    tied, tied_in_top = int((weights == last).sum()), sum(int(weights[c] == last) for c in top)
    if tied > tied_in_top:
        text += (f". {tied} channels share the weight {last:.4f} exactly; "
                 + ("the lowest-numbered of them is shown." if tied_in_top == 1 else
                    f"the lowest-numbered {tied_in_top} of them are shown."))
    return text


def weights_csv(capture: Capture) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["block", "kind", "channel", "weight"])
    for r in capture.layers:
        writer.writerows((r.name, r.kind, c, f"{w:.6f}") for c, w in enumerate(r.channel[0].tolist()))
    return out.getvalue()


def show_overlay(image: Image.Image, shown, caption: str = "") -> None:
    """A map over the image, with its colour scale and what the scale means; an empty map (its
    `note` says why) leaves the image bare, as the downloaded figure does."""
    fixed = shown.absolute and not stretch
    st.image(overlay(image, shown.values, cmap=cmap, alpha=0.0 if shown.note else alpha, stretch=not fixed,
                     cells=cells), width="stretch", caption=caption or None)
    if shown.note:
        st.info(f"The map is empty: {shown.note}.")
        return
    lo, hi = (0.0, 1.0) if fixed else (float(shown.values.min()), float(shown.values.max()))
    st.image(colorbar_strip(cmap), width="stretch",
             caption=f"{lo:.2f} to {hi:.2f}: " + ("gate value, fixed scale" if fixed else "stretched to this map's range"))


def sample_mask(sample: dict, preprocess: pretrained.Preprocess) -> np.ndarray | None:
    """The sample's object mask, resized and cropped exactly like its image."""
    if not sample or not sample.get("mask"):
        return None
    mask = Image.open(ASSETS / sample["mask"]).convert("RGB")
    return np.asarray(dataclasses.replace(preprocess, interpolation="nearest").view(mask))[..., 0] > 127


# ---------- page ----------

st.set_page_config(page_title="Attention Lens", page_icon=":eye:", layout="wide")
st.title("Attention Lens")
st.caption("What channel attention (SE, ECA) and spatial attention (CBAM) do inside a ResNet, block by block.")

entries = model_entries()
with st.sidebar:
    st.header("Model")
    names = list(entries) + [OWN_CHECKPOINT]
    choice = st.selectbox("Model", names, key="model", index=names.index(pretrained.DEFAULT_MODEL)
                          if pretrained.DEFAULT_MODEL in names else 0,
                          format_func=lambda n: n if n == OWN_CHECKPOINT else f"{n} ({SOURCE_TAGS[entries[n].source]})")
    # once an uploaded checkpoint has loaded, the uploader gives way to its name: a file uploader
    # copies its whole file on every rerun (40 ms for 100 MB), the cached model does not need it
    weights_file, kept = None, st.session_state.get("kept_checkpoint")     # (model key, file name)
    if choice == OWN_CHECKPOINT:
        if kept:
            st.markdown(f"Weights: **{kept[1]}**")
            st.button("Use another weights file", key="replace_weights", on_click=st.session_state.pop,
                      args=("kept_checkpoint", None))
        else:
            weights_file = st.file_uploader(
                "Weights file (" + ", ".join(f".{t}" for t in WEIGHT_TYPES) + ")", type=WEIGHT_TYPES, key="weights",
                help="A state dict (or a dict holding one) of one of our ResNets, a timm SE/ECA/CBAM ResNet, or an "
                     "official ECA-Net / CBAM checkpoint. Only tensors are read; a file that asks to run code is "
                     "refused.")
        checkpoint_settings = st.container()

    st.header("Image")
    source = st.radio("Image source", ["Sample", "Upload", "Camera"], key="source")
    data, filename, sample, digest = None, None, None, None
    if source == "Sample":
        titles = [s["title"] for s in SAMPLES]
        sample = SAMPLES[titles.index(st.selectbox("Sample", titles, key="sample"))]
        filename = sample["file"]
        data = (ASSETS / filename).read_bytes()
        digest = sha(data)
    elif source == "Upload":
        upload = st.file_uploader("Image (JPEG, PNG, WebP, BMP, GIF, TIFF)", type=UPLOAD_TYPES, key="image")
        if upload is not None:
            data, filename, digest = upload.getvalue(), upload.name, upload_digest(upload)
    else:
        shot = st.camera_input("Take a picture", key="camera")
        if shot is not None:
            data, filename, digest = shot.getvalue(), "camera.jpg", upload_digest(shot)

    st.header("Display")
    cmap = st.selectbox("Colormap", COLORMAPS, key="cmap")
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="alpha")
    stretch = st.toggle("Stretch each map to its own range", value=False, key="stretch",
                        help="Off: gates on a fixed 0-1 scale (they are absolute). On: per-map contrast.")
    cells = st.toggle("Show feature-map cells", value=False, key="cells",
                      help="Off: bilinear upsampling onto the image. On: one flat colour per cell of the map.")
    sort_channels = st.toggle("Sort channels by weight", value=False, key="sort")
    top_k = st.slider("Top-k channels", 1, MAX_TOP_K, 5, key="top_k")

if choice == OWN_CHECKPOINT:
    if kept:
        model_key, weights_name = kept
        try:
            loaded = load_checkpoint(model_key, weights_name, None)
        except LookupError:
            del st.session_state["kept_checkpoint"]
            st.warning(f"{weights_name} is no longer in memory (the server keeps a few uploads): upload it again.")
            st.stop()
    else:
        if weights_file is None:
            st.info("Upload a weights file (a state dict of one of our architectures, a timm SE/ECA/CBAM ResNet, "
                    "or an official ECA-Net / CBAM checkpoint) in the sidebar.")
            st.stop()
        model_key, weights_name = f"file:{upload_digest(weights_file)}", weights_file.name
        try:
            with st.spinner(f"Reading {weights_name} (only tensors are loaded; nothing in it is run)..."):
                loaded = load_checkpoint(model_key, weights_name, weights_file)
        except (pretrained.CheckpointError, ValueError) as e:
            st.error(f"Cannot use {weights_name}: {e}")
            st.stop()
        st.session_state["kept_checkpoint"] = (model_key, weights_name)
        st.rerun()                                   # show the file's name in place of the uploader
    loaded, model_key = configure_checkpoint(loaded, model_key, checkpoint_settings)
else:
    model_key = choice
    try:
        with st.spinner(f"Loading {choice}" + (" (first use downloads the weights once)..."
                                               if entries[choice].downloads else "...")):
            loaded = load_model(choice)
    except pretrained.ModelUnavailable as e:
        st.warning(str(e))
        st.stop()
    except (pretrained.CheckpointError, ValueError) as e:
        st.error(f"Cannot load {choice}: {e}")
        st.stop()

if data is None:
    st.info("Choose a sample, upload an image, or take a picture in the sidebar.")
    st.stop()

try:
    view, x, caveat = model_view(digest, model_key, data, loaded)
except ImageError as e:
    st.error(f"Cannot use {filename}: {e}")
    st.stop()

capture = analyse(digest, model_key, None, x, loaded)

left, right = st.columns([1, 2])
with left:
    st.image(view, caption=f"{filename}, as the model sees it ({view.width} x {view.height} after resize and crop)",
             width="stretch")
    if caveat:
        st.warning(caveat)
with right:
    st.subheader("Predictions")
    st.caption(loaded.description)
    show_predictions(capture, loaded.labels)
    if loaded.source == "bundled" and not (sample and sample.get("label") in loaded.labels):
        st.info(out_of_domain_note(loaded))

records = capture.layers
if not records:
    st.info(f"{loaded.name} has no attention blocks: it is a baseline without attention. Compare it with the "
            "SE, ECA and CBAM models by choosing one of them.")
    st.stop()
stages = sorted({r.stage for r in records}, key=lambda s: (s is None, s))
page = st.segmented_control("View", VIEWS, default="Block", key="view") or "Block"


def pick_block():
    """One stage and block choice for every view, remembered while a view without it is shown
    (Streamlit drops the state of widgets it does not draw). The widgets are keyed by the model's
    block list and the stage, so their labels can never name another model's or stage's block."""
    layout = sha("|".join(r.name for r in records).encode())[:12]
    chosen = next((r for r in records if r.name == st.session_state.get("chosen_block")), records[-1])
    c1, c2 = st.columns(2)
    stage = c1.selectbox("Stage", stages, index=stages.index(chosen.stage), key=f"stage_{layout}")
    names = [r.name for r in records if r.stage == stage]
    name = c2.selectbox("Block", names, index=names.index(chosen.name) if chosen.name in names else len(names) - 1,
                        key=f"block_{layout}_{stage}")
    st.session_state["chosen_block"] = name
    return next(r for r in records if r.name == name)


if page == "Block":
    record = pick_block()
    shown = spatial_view(record, 0, top_k)
    c1, c2 = st.columns([1, 1])
    with c1:
        st.markdown(f"**Channel weights** of `{record.name}` ({record.kind.upper()}, {record.channels} channels)")
        st.vega_lite_chart(channel_chart_spec(digest, model_key, record.name, sort_channels, top_k,
                                              record.channel[0]), width="stretch")
        st.caption(top_channels_caption(record.channel[0], top_k, marked=" (orange)"))
    with c2:
        st.markdown(f"**{shown.label[0].upper() + shown.label[1:]}** of `{record.name}` "
                    f"({shown.values.shape[0]}\u00a0x\u00a0{shown.values.shape[1]})")   # kept on one line
        show_overlay(view, shown)
    st.subheader("What this block computes")
    st.markdown(explain(loaded.model.get_submodule(record.module), record, loaded.model))
    mask = sample_mask(sample, loaded.preprocess)
    if mask is not None:
        score = localisation_score(shown.values, mask)
        st.metric("Localisation score on the object mask", "map is empty" if np.isnan(score) else f"{score:.2f}",
                  help="Share of the map's mass inside the object mask divided by the mask's share of the "
                       "image: 1.0 is no better than uniform attention.")

elif page == "Overview":
    widest = spatial_view(records[-1], 0, top_k)        # blocks with fewer channels than top-k use them all
    st.markdown(f"**All blocks** -- {widest.label}")
    fixed = widest.absolute and not stretch
    st.columns(2)[0].image(colorbar_strip(cmap), width="stretch", caption=(
        "0.00 to 1.00: gate value, fixed scale: the same colour means the same gate in every block" if fixed else
        "low to high of each map: every map is stretched to its own range, so colours do not compare across blocks"))
    by_stage = [[r for r in records if r.stage == s] for s in stages]
    slots = max(map(len, by_stage))
    per_row = max(1, 4 // slots)                  # small maps, short page: ResNet-18 puts two stages a row
    for first_stage in range(0, len(by_stage), per_row):
        columns = st.columns(per_row * slots)
        for j, row in enumerate(by_stage[first_stage:first_stage + per_row]):
            for column, r in zip(columns[j * slots:], row):
                v = spatial_view(r, 0, top_k)
                column.image(overlay(view, v.values, cmap=cmap, alpha=0.0 if v.note else alpha, stretch=not fixed,
                                     cells=cells), width="stretch",
                             caption=f"{r.name} ({v.values.shape[0]}x{v.values.shape[1]})"
                                     + (f", all {r.channels} channels" if v.all_channels else "")
                                     + (f": {v.note}" if v.note else ""))
    st.altair_chart(channel_depth_chart([r.name for r in records], [r.channel[0] for r in records]),
                    width="stretch")
    st.subheader("Same channels for every image?")
    others = [s for s in SAMPLES if s["file"] != filename]
    titles = [s["title"] for s in others]
    other = others[titles.index(st.selectbox("Compare this image's channel weights with", titles, key="agree_with"))]
    other_data = (ASSETS / other["file"]).read_bytes()
    other_digest = sha(other_data)
    _, other_x, _ = model_view(other_digest, model_key, other_data, loaded)
    agreement = channel_agreement(records, analyse(other_digest, model_key, None, other_x, loaded).layers)
    st.altair_chart(channel_agreement_chart([r.name for r in records], agreement), width="stretch")
    st.caption("Correlation, block by block, of the two images' channel weights: 1 means the block excites the "
               "same channels whatever the image. The SE paper (Sec. 7.2, Fig. 6) finds early blocks "
               "class-agnostic and later ones class-specific; a gap marks a block whose gate is saturated.")

elif page == "Compare":
    bundled = sorted((n for n, e in entries.items() if e.source == "bundled" and e.attention),
                     key=lambda n: ["se", "eca", "cbam"].index(entries[n].attention))   # SE vs ECA vs CBAM
    own = {f"{loaded.name} (yours)": (loaded, model_key)} if choice == OWN_CHECKPOINT else {}
    chosen = st.multiselect("Models to compare (2 or 3)", list(own) + list(entries), max_selections=3,
                            default=list(own) + bundled[:3 - len(own)], key=f"compare_{model_key}" if own else "compare")
    remembered = next((r.stage for r in records if r.name == st.session_state.get("chosen_block")), stages[-1])
    compare_stage = st.selectbox("Stage to show", stages, index=stages.index(remembered), key="compare_stage")
    if len(chosen) < 2:
        st.info("Choose two or three models above to see them side by side.")
    for column, name in zip(st.columns(max(1, len(chosen))), chosen):
        with column:
            st.markdown(f"**{name}**")
            try:
                other, other_key = own[name] if name in own else (load_model(name), name)
                other_view, other_x, _ = model_view(digest, other_key, data, other)
                other_capture = analyse(digest, other_key, None, other_x, other)
            except (pretrained.ModelUnavailable, pretrained.CheckpointError, ValueError) as e:
                st.warning(str(e))
                continue
            show_predictions(other_capture, other.labels, 3)
            if not other_capture.layers:
                st.caption("no attention blocks (baseline)")
            last = [r for r in other_capture.layers if r.stage == compare_stage][-1:]
            for r in last:
                v = spatial_view(r, 0, top_k)
                show_overlay(other_view, v, caption=f"{r.name}: {v.label}")

elif page == "Intervene":
    record = pick_block()
    modes = {"gate_off": "switch this block's attention off (gates = 1)",
             "channel_gate_off": "only its channel gate off", "spatial_gate_off": "only its spatial gate off",
             "zero_top_k": f"zero its top-{min(top_k, record.channels)} channels"}
    if record.spatial is None:                       # SE / ECA: one gate
        modes = {m: label for m, label in modes.items() if m in ("gate_off", "zero_top_k")}
    forget_if_not_in("edit_mode", list(modes))
    mode = st.radio("Edit", list(modes), horizontal=True, key="edit_mode", format_func=modes.get)
    edited = analyse(digest, model_key, (record.name, mode, top_k), x, loaded)
    if mode == "zero_top_k":
        st.caption("Zeroed: " + top_channels_caption(record.channel[0], top_k))
    before, after = st.columns(2)
    with before:
        st.markdown("**Original**")
        show_predictions(capture, loaded.labels)
    with after:
        st.markdown(f"**With `{record.name}` edited**")
        show_predictions(edited, loaded.labels)
    top_class = capture.top_k(1)[0][0]
    p0, p1 = (float(c.logits[0].softmax(0)[top_class]) for c in (capture, edited))
    st.metric(f"Probability of '{loaded.labels[top_class]}'", f"{p1:.2%}", f"{(p1 - p0) * 100:+.2f} points")

else:
    st.markdown("Every figure as PNG (rendered when you click), all weights as JSON or CSV.")
    record = pick_block()
    model_name = loaded.name
    while Path(model_name).suffix.lower() in pretrained.WEIGHTS_SUFFIXES:      # mine.pth.tar -> mine
        model_name = Path(model_name).stem
    stem = re.sub(r"[^\w.-]+", "-", f"{Path(filename).stem}_{model_name}")   # one file set per image and model
    shown = spatial_view(record, 0, top_k)
    c1, c2 = st.columns(2)

    def offer(column, label: str, render, file_name: str, mime: str = "image/png") -> None:
        """A download rendered on click. No rerun after it: a rerun would give the other buttons
        new files, and a second click made during it would find its file gone."""
        column.download_button(label, render, file_name=file_name, mime=mime, on_click="ignore")

    offer(c1, f"{record.name} channel weights (PNG)", lambda: figure_png(channel_weights_figure(
        record.channel[0], sort=sort_channels, top_k=top_k, title=f"{record.name}: channel weights")),
        f"{stem}_{record.name}_channels.png")
    offer(c1, f"{record.name} spatial map (PNG)", lambda: figure_png(spatial_view_figure(
        view, shown, cmap=cmap, alpha=alpha, stretch=stretch, title=f"{record.name}: {shown.label}", cells=cells)),
        f"{stem}_{record.name}_spatial.png")
    offer(c1, "Overview of all blocks (PNG)", lambda: figure_png(spatial_grid_figure(
        view, records, cmap=cmap, alpha=alpha, stretch=stretch, top_k=top_k, cells=cells)), f"{stem}_overview.png")
    offer(c1, "Channel weights by depth (PNG)", lambda: figure_png(channel_depth_figure(
        [r.name for r in records], [r.channel[0] for r in records])), f"{stem}_depth.png")
    offer(c2, "All weights and predictions (JSON)", lambda: json.dumps(
        attention_json(capture, loaded.labels, loaded.name, filename, top_k), allow_nan=False),
        f"{stem}_attention.json", "application/json")
    offer(c2, "All channel weights (CSV)", lambda: weights_csv(capture), f"{stem}_weights.csv", "text/csv")
