"""The Streamlit app driven the way a person uses it (AppTest): flows, bad input, isolation."""
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import lens.inspection
import pretrained
from blocks import Intervention, capture_attention
from pretrained import imagenet
from lens import TopChannels, inspect_image
from lens.card_notes import block_note, model_note
from lens.domain_note import photo_note as shapes_limit
from pretrained.image import decode_image
from viz.markup import md
from viz.spatial_view import MIXED_SCALES

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
TIMEOUT = 180
pytestmark = pytest.mark.slow


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()


def sample_of(label: str) -> dict:
    """The bundled sample of that shape class (its entry in samples.json)."""
    return next(s for s in json.loads((ASSETS / "samples.json").read_text()) if s["label"] == label)


def upload(at: AppTest, name: str, data: bytes, mime: str = "application/octet-stream") -> AppTest:
    """Drop a file on the image uploader, which is always on the page: the page then shows it."""
    at.file_uploader(key="image").set_value((name, data, mime))
    return at.run()


def png(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def shown_predictions(at: AppTest, index: int = 0) -> list[tuple[str, float]]:
    table = at.dataframe[index].value
    return list(zip(table["class"], table["probability"] / 100))          # shown in percent


def model_and_input(name: str, data: bytes):
    loaded = pretrained.load(name)
    return loaded.model, loaded.preprocess(decode_image(data))[None]


def expected_predictions(name: str, data: bytes, k: int = 5, edit=None) -> list[tuple[str, float]]:
    capture = capture_attention(*model_and_input(name, data), edit, require_attention=False)
    return [(pretrained.load(name).labels[c], p) for c, p in capture.top_k(k)]


def assert_same_predictions(shown, expected):
    assert [c for c, _ in shown] == [c for c, _ in expected]
    np.testing.assert_allclose([p for _, p in shown], [p for _, p in expected], atol=1e-6)


def labelled(widgets, label: str):
    """The one widget of a kind with this label (for widgets keyed by what they show)."""
    [widget] = [w for w in widgets if w.label == label]
    return widget


def shown_block(at: AppTest) -> str:
    """The block whose channel chart is on the page, from its heading."""
    [heading] = [m.value for m in at.markdown if m.value.startswith("**Channel weights** of `")]
    return heading.split("`")[1]


def photo_note(at: AppTest) -> str:
    """What the page says, once, of a picture that is not a shape sample, for the model chosen."""
    return shapes_limit(pretrained.load(at.selectbox(key="model").value))


def plain(markdown: str) -> str:
    """What a reader sees of the app's markdown for our texts: backslash escapes dropped (the app
    escapes every user-controlled string, so a file name reads as typed)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def values(elements) -> list[str]:
    return [plain(e.value) for e in elements]


def image_captions(at: AppTest) -> list[str]:
    return [plain(i.caption) for image in at.get("image") for i in image.proto.imgs]


def assert_clean(at: AppTest):
    assert not at.exception, [e.value for e in at.exception]


def test_default_page_needs_no_action():
    at = app()
    assert_clean(at)
    assert at.selectbox(key="model").value == pretrained.DEFAULT_MODEL == "cbam-resnet18-shapes"
    first = json.loads((ASSETS / "samples.json").read_text())[0]
    assert at.selectbox(key="sample").value == first["title"]
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL,
                                                                      (ASSETS / first["file"]).read_bytes()))
    assert at.get("vega_lite_chart"), "the channel-weight chart is missing"
    assert any(plain(c.value).startswith("CBAM ResNet-18 (width 16) trained on the bundled shapes dataset (v2); works offline (")
               and "validation accuracy)" in plain(c.value) for c in at.caption)
    assert len(at.get("image")) == 3                  # the model view, the spatial map, its colour scale
    assert model_note(pretrained.DEFAULT_MODEL) in values(at.caption)         # what the model card measured
    assert block_note(pretrained.DEFAULT_MODEL, "layer4.1") in values(at.caption)
    assert any("What this block computes" == h.value for h in at.subheader)
    assert any("**layer4.1** -- CBAM on a feature map of 128 channels x 4 x 4" in m.value for m in at.markdown)
    [table] = [d.value for d in at.dataframe if "pointing game" in d.value.columns]   # the sample has a mask
    assert table["map"].tolist() == ["spatial attention (CBAM gate)", f"Grad-CAM of '{first['label']}' "
                                     "(attribution, not attention)", "centred Gaussian (baseline)", "uniform (baseline)"]
    mask = pretrained.load(pretrained.DEFAULT_MODEL).preprocess.mask(Image.open(ASSETS / first["mask"]))
    gate = capture_attention(*model_and_input(pretrained.DEFAULT_MODEL, (ASSETS / first["file"]).read_bytes())
                             ).layers[-1].spatial[0].numpy()
    from sklearn.metrics import roc_auc_score
    from viz import upsample
    assert table["AUC"][0] == pytest.approx(roc_auc_score(mask.ravel(), upsample(gate, mask.shape).ravel()), abs=1e-9)
    assert table["AUC"][3] == 0.5 and table["mass ratio"][3] == pytest.approx(1.0)
    assert at.file_uploader(key="image").value is None          # the uploader is on the page at once
    w = capture_attention(*model_and_input(pretrained.DEFAULT_MODEL, (ASSETS / first["file"]).read_bytes())
                          ).layers[-1].channel[0].numpy()
    assert expected_top_caption(w, 5, " (orange)") in values(at.caption)


def expected_top_caption(w: np.ndarray, k: int, marked: str = "") -> str:
    """The top-k caption as a user should read it, computed from the weights alone: stable order,
    4 decimals unless two different listed weights would then read the same, and the exact tie."""
    top = np.argsort(-w, kind="stable")[:k]
    digits = next(d for d in range(4, 10) if len({f"{w[c]:.{d}f}" for c in top}) == len(set(w[top])))
    text = f"Top {k} channels{marked}: " + " · ".join(f"#{c} {w[c]:.{digits}f}" for c in top)
    tied, shown = int((w == w[top[-1]]).sum()), int((w[top] == w[top[-1]]).sum())
    if tied > shown:
        text += (f". {tied} channels share the weight {w[top[-1]]:.{digits}f} exactly; the lowest-numbered "
                 + ("of them is shown." if shown == 1 else f"{shown} of them are shown."))
    return text


def test_upload_then_inspect_another_block():
    data = (ASSETS / "shapes-star.png").read_bytes()
    at = upload(app(), "star.png", data, "image/png")
    assert_clean(at)
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, data))
    labelled(at.selectbox, "Stage").set_value(1).run()
    assert labelled(at.selectbox, "Block").value == "layer1.1"        # the stage's last block
    labelled(at.selectbox, "Block").set_value("layer1.0").run()
    assert_clean(at)
    assert "**Channel weights** of `layer1.0` (CBAM, 16 channels)" in values(at.markdown)
    capture = capture_attention(*model_and_input(pretrained.DEFAULT_MODEL, data))
    w = next(r for r in capture.layers if r.name == "layer1.0").channel[0].numpy()
    assert expected_top_caption(w, 5, " (orange)") in values(at.caption)
    at.segmented_control(key="view").set_value("Intervene").run()    # the choice follows the user
    assert labelled(at.selectbox, "Block").value == "layer1.0"
    assert "**With `layer1.0` edited**" in values(at.markdown)


def test_a_picture_that_is_not_a_shape_sample_gets_the_shapes_models_limit_once_prominently():
    at = app()
    labels = ", ".join(pretrained.load(pretrained.DEFAULT_MODEL).labels)
    note = (f"cbam-resnet18-shapes knows only 10 shapes ({labels}): on any other picture it still answers one "
            "of them. For photos, use an ImageNet model or your own checkpoint. Unless this picture is a drawing "
            "of one of them, its answer and maps say little about the picture. Here and now: pick one of the "
            "shape samples (under Image, above), upload a drawing of one of these shapes, or choose an ImageNet "
            "model (its weights must be on this server) or load your own checkpoint in the sidebar. The maps "
            "below still show what each block weights on this picture.")
    assert not at.warning                                      # a shapes sample: in the model's domain
    at.selectbox(key="sample").set_value("Photo: Chelsea the cat").run()
    assert_clean(at)
    assert values(at.warning) == [note] and note not in values(at.caption)      # once, above the maps
    for view in ("Overview", "Intervene"):
        at.segmented_control(key="view").set_value(view).run()
        assert values(at.warning) == [note]
    upload(at, "drawn.png", (ASSETS / "shapes-star.png").read_bytes(), "image/png")   # an upload: the model cannot tell
    assert values(at.warning) == [note]


def silent_top_channel_checkpoint() -> bytes:
    """An SE ResNet-18 whose layer4.1 gate ranks channel 3 first and channel 7 second, while its
    features are -1 on every channel but 7 (+1): the top channel never fires, the top two do."""
    from blocks import attention_resnet
    torch.manual_seed(0)
    model = attention_resnet(18, "se", num_classes=3, width=8, ratio=4)
    state = model.state_dict()
    state["layer4.1.bn2.weight"].zero_()
    state["layer4.1.bn2.bias"].fill_(-1.0)[7] = 1.0
    state["layer4.1.attn.fc2.weight"].zero_()
    state["layer4.1.attn.fc2.bias"].zero_()[3] = 10.0
    state["layer4.1.attn.fc2.bias"][7] = 5.0
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_an_empty_activity_map_says_so():
    at = own_checkpoint(app(), "silent.pt", silent_top_channel_checkpoint())
    at.slider(key="top_k").set_value(1).run()
    assert_clean(at)
    assert shown_block(at) == "layer4.1"
    assert values(at.info) == ["Nothing to draw: the top-weighted channel does not fire on this "
                                          "image (all zero)."]
    assert len(at.get("image")) == 2                        # the model's view and the bare map: no colour scale
    at.slider(key="top_k").set_value(2).run()
    assert not at.info and len(at.get("image")) == 3


def test_block_choice_survives_other_views_and_model_switches():
    from blocks import attention_resnet
    at = app()
    labelled(at.selectbox, "Stage").set_value(2).run()
    labelled(at.selectbox, "Block").set_value("layer2.0").run()
    for view in ("Overview", "Compare", "Block"):                  # views without the selectors, and back
        at.segmented_control(key="view").set_value(view).run()
    assert_clean(at)
    assert labelled(at.selectbox, "Block").value == shown_block(at) == "layer2.0"

    torch.manual_seed(0)                                            # a ResNet-34: layer4 has three blocks
    buf = io.BytesIO()
    torch.save(attention_resnet(34, "se", num_classes=3, width=8, ratio=2).state_dict(), buf)
    labelled(at.selectbox, "Stage").set_value(4).run()
    own_checkpoint(at, "r34.pt", buf.getvalue())
    assert_clean(at)
    assert labelled(at.selectbox, "Block").options == ["layer4.0", "layer4.1", "layer4.2"]
    assert labelled(at.selectbox, "Block").value == shown_block(at) == "layer4.1"   # the choice, where it exists
    labelled(at.selectbox, "Block").set_value("layer4.2").run()
    assert shown_block(at) == "layer4.2"
    at.segmented_control(key="view").set_value("Compare").run()       # your model beside the bundled ones
    assert_clean(at)
    compare = labelled(at.multiselect, "Models to compare (2 or 3)")
    assert compare.value == ["r34.pt (yours)", "se-resnet18-shapes", "eca-resnet18-shapes"]
    assert at.selectbox(key="compare_stage").value == 4
    own = pretrained.load(buf.getvalue(), name="r34.pt")
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    capture = capture_attention(own.model, own.preprocess(decode_image(data))[None])
    assert_same_predictions(shown_predictions(at, 1), [(own.labels[c], p) for c, p in capture.top_k(3)])
    at.segmented_control(key="view").set_value("Block").run()
    at.selectbox(key="model").set_value(pretrained.DEFAULT_MODEL).run()             # a ResNet-18 again
    assert_clean(at)
    assert labelled(at.selectbox, "Block").options == ["layer4.0", "layer4.1"]
    assert labelled(at.selectbox, "Block").value == shown_block(at) == "layer4.1"


def test_overview_says_which_blocks_average_all_their_channels():
    at = app()
    at.selectbox(key="model").set_value("se-resnet18-shapes").run()
    at.slider(key="top_k").set_value(32).run()
    at.segmented_control(key="view").set_value("Overview").run()
    assert_clean(at)
    assert "**All blocks** -- where the top-32 weighted channels fire (not a gate)" in values(at.markdown)
    captions = [i.caption for image in at.get("image")[2:] for i in image.proto.imgs]
    assert captions[:3] == ["layer1.0 (32x32), all 16 channels", "layer1.1 (32x32), all 16 channels",
                            "layer2.0 (16x16)"]


def test_overview_shows_how_alike_two_images_channel_weights_are():
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
    at = app()
    at.segmented_control(key="view").set_value("Overview").run()
    at.selectbox(key="agree_with").set_value(sample_of("star")["title"]).run()
    assert_clean(at)
    [chart] = [c.proto for c in at.get("vega_lite_chart") if "two images' channel weights" in c.proto.spec]
    shown = convert_arrow_bytes_to_pandas_df(chart.datasets[0].data.data)
    samples = {s["title"]: s["file"] for s in json.loads((ASSETS / "samples.json").read_text())}
    a, b = (capture_attention(*model_and_input(pretrained.DEFAULT_MODEL, (ASSETS / samples[t]).read_bytes())).layers
            for t in (sample_of("circle")["title"], sample_of("star")["title"]))
    expected = [np.corrcoef(ra.channel[0].numpy(), rb.channel[0].numpy())[0, 1] for ra, rb in zip(a, b)]
    assert shown["block"].tolist() == [r.name for r in a]
    np.testing.assert_allclose(shown["correlation"].to_numpy(dtype=float), expected, atol=1e-5)


def test_camera_picture():
    photo = png(Image.open(ASSETS / "chelsea.jpg"), "JPEG")
    at = app()
    at.radio(key="image_source").set_value("Camera").run()
    assert "No picture taken yet: showing the sample." in values(at.caption)
    at.camera_input(key="camera").set_value(("photo.jpg", photo, "image/jpeg")).run()
    assert_clean(at)
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, photo))


def test_every_sample_and_model_switch():
    at = app()
    samples = json.loads((ASSETS / "samples.json").read_text())
    for sample in samples:
        at.selectbox(key="sample").set_value(sample["title"]).run()
        assert_clean(at)
        assert len(at.dataframe[0].value) == 5
    bundled = [e.name for e in pretrained.available() if e.source == "bundled"]
    for name in bundled:
        at.selectbox(key="model").set_value(name).run()
        assert_clean(at)
        data = (ASSETS / samples[-1]["file"]).read_bytes()
        assert_same_predictions(shown_predictions(at), expected_predictions(name, data))
        baseline = name.startswith("plain")
        assert [plain(w.value) for w in at.warning][0].startswith(f"{name} knows only 10 shapes")  # the last sample: a photo
        assert values(at.info) == ([f"{name} has no attention blocks: it is a baseline without attention. "
                                               "Open Compare to see it beside the SE, ECA and CBAM models."]
                                              if baseline else [])


def test_display_controls_never_rerun_the_forward_pass(monkeypatch):
    calls = []
    original = lens.inspection.capture_attention
    monkeypatch.setattr(lens.inspection, "capture_attention", lambda *a, **k: calls.append(1) or original(*a, **k))
    st.cache_resource.clear()
    at = app()
    assert_clean(at)
    assert len(calls) == 1
    at.selectbox(key="cmap").set_value("viridis").run()
    at.slider(key="alpha").set_value(0.8).run()
    at.toggle(key="stretch").set_value(True).run()
    at.toggle(key="sort").set_value(True).run()
    at.slider(key="top_k").set_value(12).run()
    labelled(at.selectbox, "Stage").set_value(2).run()
    at.segmented_control(key="view").set_value("Overview").run()
    assert_clean(at)
    assert len(calls) == 2                            # + the second image of the channel-agreement chart
    assert len(at.get("image")) == 1 + 1 + 8          # the model's view, the colour scale, one overlay per block
    assert at.get("image")[1].proto.imgs[0].caption.startswith("low to high of each map: every map is stretched")
    at.toggle(key="stretch").set_value(False).run()
    assert at.get("image")[1].proto.imgs[0].caption.startswith("0.00 to 1.00: gate value, fixed scale")
    assert len(calls) == 2


def test_compare_three_models_side_by_side():
    at = app()
    at.segmented_control(key="view").set_value("Compare").run()
    assert_clean(at)
    chosen = labelled(at.multiselect, "Models to compare (2 or 3)").value
    assert len(chosen) == min(3, len([e for e in pretrained.available() if e.source == "bundled" and e.attention]))
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    for i, name in enumerate(chosen):
        assert_same_predictions(shown_predictions(at, 1 + i), expected_predictions(name, data, k=3))
    assert not any(i.startswith("Choose two") for i in values(at.info))
    labelled(at.multiselect, "Models to compare (2 or 3)").set_value(chosen[:1]).run()
    assert_clean(at)
    assert values(at.info) == ["Choose two or three models above to see them side by side."]


def assert_edit_explained(at: AppTest, name: str, data: bytes, edit: Intervention) -> None:
    """The explanation matches which way the edit moved the top class, and the Grad-CAM pair of that
    class, original and through the edited model, is drawn on one range over both."""
    from blocks import grad_cam
    from lens import outcome
    model, x = model_and_input(name, data)
    [(top, p0)] = capture_attention(model, x).top_k(1)
    p1 = float(capture_attention(model, x, edit).logits[0].softmax(0)[top])
    said = {"raised": f"**raised** the probability of '{pretrained.load(name).labels[top]}' from {p0:.2%} to {p1:.2%}",
            "lowered": f"**lowered** the probability of '{pretrained.load(name).labels[top]}' from {p0:.2%} to {p1:.2%}",
            "unchanged": f"by less than 0.5 points ({p0:.2%} to {p1:.2%})"}[outcome(p0, p1)]
    assert len([m for m in values(at.markdown) if said in m]) == 1, (said, values(at.markdown))
    cams = [grad_cam(model, x, edit.block, top, e) for e in (None, edit)]
    assert (cams[1] - cams[0]).abs().max() > 1e-3                        # the edit shows in Grad-CAM
    lo, hi = min(float(c.min()) for c in cams), max(float(c.max()) for c in cams)
    assert image_captions(at).count(f"{lo:.2f} to {hi:.2f}: class evidence, one scale for the maps side by side") == 2


@pytest.mark.parametrize("mode", ["gate_off", "channel_gate_off", "spatial_gate_off", "zero_top_k"])
def test_intervene_shows_original_and_edited(mode):
    at = app()
    at.segmented_control(key="view").set_value("Intervene").run()
    labelled(at.selectbox, "Stage").set_value(4).run()                 # it opens where the card measured most
    labelled(at.selectbox, "Block").set_value("layer4.1").run()
    at.radio(key="edit_mode").set_value(mode).run()
    assert_clean(at)
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    name = pretrained.DEFAULT_MODEL
    edit = Intervention("layer4.1", mode, 5)
    assert_same_predictions(shown_predictions(at, 1), expected_predictions(name, data))
    assert_same_predictions(shown_predictions(at, 2), expected_predictions(name, data, edit=edit))
    assert at.metric[0].label.startswith("Probability of '")
    zeroed = [c.value for c in at.caption if c.value.startswith("Zeroed: Top 5 channels: #")]
    assert len(zeroed) == (mode == "zero_top_k")
    assert_edit_explained(at, name, data, edit)
    assert "**Spatial attention (CBAM gate)** of `layer4.1`" in values(at.markdown)
    fixed = image_captions(at).count("0.00 to 1.00: gate value, fixed scale")
    fixed_note = any("The edited block's own map is fixed by the edit" in c for c in values(at.caption))
    if mode in ("gate_off", "spatial_gate_off"):                 # the gate is 1 everywhere: said, not drawn
        assert values(at.info) == ["Nothing to draw: the edit switched this gate off, so it is 1 at every "
                                   "position by construction."]
        assert fixed == 1 and fixed_note
    else:                                                        # both gates drawn, on the fixed 0-1 scale
        assert not at.info and fixed == 2 and not fixed_note
        at.toggle(key="stretch").set_value(True).run()           # stretched: one range over both maps
        model, x = model_and_input(name, data)
        gates = [capture_attention(model, x, e).layer("layer4.1").spatial[0] for e in (None, edit)]
        assert ((gates[1] - gates[0]).abs().max() > 1e-3) == (mode == "channel_gate_off")   # zeroing acts after it
        lo, hi = min(float(g.min()) for g in gates), max(float(g.max()) for g in gates)
        assert image_captions(at).count(f"{lo:.2f} to {hi:.2f}: gate value, one scale for the maps side by side") == 2
        at.toggle(key="stretch").set_value(False).run()
    at.selectbox(key="model").set_value("se-resnet18-shapes").run()     # one gate: no per-gate modes
    assert_clean(at)
    assert at.radio(key="edit_mode").options == ["switch this block's attention off (gates = 1)",
                                                 "zero its top-5 channels"]
    assert at.radio(key="edit_mode").value == (mode if mode in ("gate_off", "zero_top_k") else "gate_off")
    assert_edit_explained(at, "se-resnet18-shapes", data, Intervention("layer4.1", at.radio(key="edit_mode").value))
    if mode == "zero_top_k":                                     # the zeroed channels fire nowhere
        assert values(at.info) == ["Nothing to draw: the edit zeroed the top-5 weighted channels, so by "
                                   "construction they fire nowhere (all zero)."]
    else:                                                        # the top channels fire unweighted
        from viz import joint_range
        original = inspect_image(pretrained.load("se-resnet18-shapes"), data)
        maps = [original.view("layer4.1").map, original.intervene("layer4.1", "gate_off").edited_map()]
        lo, hi = joint_range(maps, False)
        assert not at.info
        assert image_captions(at).count(f"{lo:.2f} to {hi:.2f}: mean activation, one scale for the maps side by "
                                        "side") == 2


def test_downloads_view_offers_every_figure_and_the_weights():
    at = app()
    at.segmented_control(key="view").set_value("Downloads").run()
    assert_clean(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert all(b.proto.ignore_rerun for b in at.get("download_button"))    # a click never reruns the page
    assert labels == ["layer4.1 channel weights (PNG)", "layer4.1 spatial map (PNG)", "Overview of all blocks (PNG)",
                      "Channel weights by depth (PNG)", "All weights and predictions (JSON)",
                      "All channel weights (CSV)"]


def cmyk_jpeg():
    return png(Image.new("CMYK", (64, 48), (0, 200, 200, 0)), "JPEG")


def exif_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6
    return png(Image.new("RGB", (80, 40), (200, 10, 10)), "JPEG", exif=exif)


def animated_gif():
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    return png(frames[0], "GIF", save_all=True, append_images=frames[1:])


def palette_png():
    image = Image.new("P", (30, 30), 1)
    image.putpalette([0, 0, 0, 250, 120, 0] + [0] * 762)
    return png(image, transparency=0)


def bomb_png():
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


GOOD_ODD_IMAGES = {
    "cmyk.jpg": cmyk_jpeg,
    "sixteen.png": lambda: png(Image.fromarray(np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64))),
    "palette.png": palette_png,
    "rgba.png": lambda: png(Image.new("RGBA", (50, 50), (0, 128, 0, 100))),
    "gray.png": lambda: png(Image.new("L", (50, 70), 90)),
    "rotated.jpg": exif_rotated,
    "animated.gif": animated_gif,
    "one.png": lambda: png(Image.new("RGB", (1, 1), (9, 99, 199))),
    "strip.png": lambda: png(Image.new("RGB", (1, 5000), (9, 99, 199))),
}


def test_odd_but_valid_images_are_handled():
    at = app()
    for name, make in GOOD_ODD_IMAGES.items():
        data = make()
        upload(at, name, data)
        assert_clean(at)
        assert not at.error, (name, values(at.error))
        assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, data))
        assert values(at.warning) == CAVEATS.get(name, []) + [photo_note(at)], name     # an upload: not a shape sample


CAVEATS = {  # the bundled model sees 128 x 128 (no crop margin): what that costs these images
    "animated.gif": ["This is an animation of 2 frames: the model sees only the first."],
    "one.png": ["This image is 1 x 1 pixels: the model sees it enlarged 128 times, so it holds almost no detail."],
    "palette.png": ["This image is 30 x 30 pixels: the model sees it enlarged 4 times, so it holds almost no "
                    "detail."],
    "strip.png": ["This image is 1 x 5000 pixels: the model sees it enlarged 128 times, so it holds almost no "
                  "detail; the square centre crop keeps only 0.02% of its length."],
}


BAD_IMAGES = {
    "corrupt.png": (bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8)),
                    "Cannot use corrupt.png: not an image in a supported format (JPEG, PNG, WEBP, BMP, GIF, TIFF)"),
    "notes.jpg": (b"just some text\n" * 40, "Cannot use notes.jpg: not an image in a supported format"),
    "empty.png": (b"", "Cannot use empty.png: the file is empty"),
    "bomb.png": (bomb_png(), "Cannot use bomb.png: the image is larger than the 50 MP limit -- please downscale it"),
    "truncated.jpg": (png(Image.new("RGB", (200, 200), (1, 2, 3)), "JPEG")[:300],
                      "Cannot use truncated.jpg: the image file is damaged or truncated: part of its data is "
                      "missing, so it cannot be shown; open it in an image editor and save it again"),
}


def test_bad_images_get_one_clear_error_and_the_next_upload_works():
    at = app()
    good = (ASSETS / "shapes-ring.png").read_bytes()
    for name, (data, message) in BAD_IMAGES.items():
        upload(at, name, data)
        assert_clean(at)
        assert len(at.error) == 1 and plain(at.error[0].value).startswith(message), (name, values(at.error))
        assert not at.dataframe
        upload(at, "ring.png", good, "image/png")
        assert_clean(at)
        assert not at.error
        assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, good))


def own_checkpoint(at: AppTest, name: str, data: bytes) -> AppTest:
    at.selectbox(key="model").set_value("Your own checkpoint...").run()
    if any(b.key == "replace_weights" for b in at.button):                 # a file is in use: replace it
        at.button(key="replace_weights").click().run()
    [uploader] = [u for u in at.file_uploader if u.label.startswith("Weights file")]
    uploader.set_value((name, data, "application/octet-stream"))
    return at.run()


def test_own_checkpoint_good_wrong_and_malicious(tmp_path):
    from blocks import attention_resnet
    torch.manual_seed(3)
    model = attention_resnet(18, "se", num_classes=4, width=8, ratio=2).eval()
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict()}, buf)
    good = buf.getvalue()
    at = own_checkpoint(app(), "mine.pth", good)
    assert_clean(at)
    assert not at.error
    assert at.dataframe[0].value["class"].tolist()[0].startswith("class ")
    assert "SE ResNet-18 from mine.pth (Attention Lens layout, 4 classes)" in values(at.caption)
    assert not weights_uploaders(at)                          # loaded: the uploader gives way to the file's name
    assert "Weights: **mine.pth**" in values(at.sidebar.markdown)
    key = "file:" + hashlib.sha256(buf.getvalue()).hexdigest()          # what a bare file cannot say
    at.number_input(key=f"size_{key}").set_value(64).run()
    at.text_area(key=f"labels_{key}").set_value("cat\ndog\nbird\nfish").run()
    assert_clean(at)
    assert sorted(at.dataframe[0].value["class"]) == ["bird", "cat", "dog", "fish"]
    assert any("as the model sees it (64 x 64 after resize and crop)" in m for m in values(at.markdown))
    at.text_area(key=f"labels_{key}").set_value("cat\ndog").run()
    assert values(at.sidebar.warning) == ["2 class names for 4 classes: keeping the file's names."]
    assert at.dataframe[0].value["class"].tolist()[0].startswith("class ")

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    buf = io.BytesIO()
    torch.save({"state_dict": Evil()}, buf)
    own_checkpoint(at, "evil.pt", buf.getvalue())
    assert_clean(at)
    assert plain(at.error[0].value).startswith("Cannot use evil.pt: refused: this file is not a plain weights file")
    assert not marker.exists()

    bad = {k: v for k, v in model.state_dict().items() if k != "fc.bias"}
    bad["layer1.0.attn.fc1.weight"] = torch.zeros(3, 7)
    buf = io.BytesIO()
    torch.save(bad, buf)
    own_checkpoint(at, "wrong.pt", buf.getvalue())
    assert_clean(at)
    assert plain(at.error[0].value).startswith("Cannot use wrong.pt: ")

    at.selectbox(key="model").set_value(pretrained.DEFAULT_MODEL).run()
    assert_clean(at)
    assert not at.error and len(at.dataframe[0].value) == 5

    own_checkpoint(at, "mine.pth", good)                       # kept by this session, not by a shared cache
    st.cache_resource.clear()
    at.selectbox(key="model").set_value(pretrained.DEFAULT_MODEL).run()
    at.selectbox(key="model").set_value("Your own checkpoint...").run()
    assert_clean(at)
    assert "Weights: **mine.pth**" in values(at.sidebar.markdown) and not at.warning
    assert "SE ResNet-18 from mine.pth (Attention Lens layout, 4 classes)" in values(at.caption)


def weights_uploaders(at: AppTest) -> list:
    return [u for u in at.file_uploader if u.label.startswith("Weights file")]


def test_a_checkpoint_without_attention_can_be_replaced():
    """torchvision's resnet18 loads (a baseline without attention); "Use another weights file" then
    brings back an empty uploader, and the next file loads."""
    import torchvision
    from blocks import attention_resnet
    buf = io.BytesIO()
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), buf)
    at = own_checkpoint(app(), "tv18.pth", buf.getvalue())
    assert_clean(at)
    assert values(at.info) == ["tv18.pth has no attention blocks: it is a baseline without attention. "
                                          "Open Compare to see it beside the SE, ECA and CBAM models."]
    assert at.segmented_control(key="view").options == ["Block", "Overview", "Compare", "Intervene", "Downloads", "Study"]
    at.button(key="replace_weights").click().run()
    assert_clean(at)
    [uploader] = weights_uploaders(at)
    assert uploader.value is None                             # empty: the old file is not loaded again
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(attention_resnet(18, "eca", num_classes=3, width=8).state_dict(), buf)
    uploader.set_value(("eca.pt", buf.getvalue(), "application/octet-stream")).run()
    assert_clean(at)
    assert "Weights: **eca.pt**" in values(at.sidebar.markdown) and not at.info
    assert "**Channel weights** of `layer4.1` (ECA, 64 channels)" in values(at.markdown)


def page_texts(at: AppTest) -> list[str]:
    """Every string the page sends the browser (labels, captions, messages, help), as a reader sees it."""
    def strings(message):
        for field, value in message.ListFields():
            for item in (value if field.is_repeated else [value]):
                if field.type == field.TYPE_MESSAGE:
                    yield from strings(item)
                elif field.type == field.TYPE_STRING:
                    yield item

    def walk(node):
        if getattr(node, "proto", None) is not None:
            yield from strings(node.proto)
        for child in getattr(node, "children", {}).values():
            yield from walk(child)
    return [plain(text) for text in walk(at._tree)]


def assert_no_server_details(at: AppTest, *folders) -> None:
    """No server folder (the weights folder, the app's folder, `folders`) or shell command on the page."""
    for text in page_texts(at):
        for secret in (str(pretrained.weights_home()), str(ROOT), *map(str, folders), "python -m", "pip "):
            assert secret not in text, (secret, text)


def assert_says_what_to_do_beside_the_image(at: AppTest, text: str) -> None:
    """The sidebar's message, said again in the main area beside the chosen image."""
    assert values(at.sidebar.warning) == [text]
    assert values(at.main.info) == [text]
    first = json.loads((ASSETS / "samples.json").read_text())[0]
    assert [c for c in image_captions(at) if c == first["file"]], image_captions(at)


def test_imagenet_model_offline_explains_itself(tmp_path, monkeypatch, caplog):
    import logging
    import socket
    monkeypatch.setenv("ATTENTION_LENS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet, "cached_file", lambda cfg: None)
    monkeypatch.setattr(imagenet, "download_host", lambda cfg: "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(imagenet, "HTTPS_PORT", port)
    at = app()
    with caplog.at_level(logging.WARNING, logger="views.models"):
        at.selectbox(key="model").set_value("ecaresnet50d.miil_in1k").run()
    assert_clean(at)
    assert_says_what_to_do_beside_the_image(at, (
        "ecaresnet50d.miil_in1k is not available here: its ImageNet weights need a one-time download, which this "
        "server cannot make now. Choose another model (the bundled ones always work)."))
    assert_no_server_details(at, tmp_path)
    [record] = [r for r in caplog.records if r.name == "views.models"]         # the operator's account, in the log
    assert str(tmp_path / "imagenet" / "ecaresnet50d.miil_in1k.safetensors") in record.getMessage()
    at.selectbox(key="model").set_value(pretrained.DEFAULT_MODEL).run()
    assert not at.warning and len(at.dataframe[0].value) == 5
    at.selectbox(key="sample").set_value("Photo: Chelsea the cat").run()      # what a shapes model says of photos
    assert_no_server_details(at, tmp_path)


def test_the_server_log_says_when_and_which_module():
    """`serve.py` writes the app's own warnings (what visitors are not shown) with their time and logger."""
    import subprocess
    import sys
    code = ("import logging, serve; serve.log_format(); "
            "logging.getLogger('views.models').warning('x is unavailable: put its file at /srv/weights/x.pth')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING views\.models: x is unavailable: put its file at "
                     r"/srv/weights/x\.pth$", out.stderr, re.M), out.stderr[-2000:]


@pytest.fixture
def official_home(tmp_path, monkeypatch):
    """A weights folder of our own, the model list read from it (and read again afterwards)."""
    from views.models import load_model, model_entries
    monkeypatch.setenv("ATTENTION_LENS_HOME", str(tmp_path))
    model_entries.clear()
    yield tmp_path
    model_entries.clear()
    load_model.clear()                  # the model loaded from that folder


def test_an_official_model_names_no_server_folder(official_home):
    from blocks import attention_resnet
    from test_pretrained_official import TO_ECANET, official_checkpoint
    at = app()
    at.selectbox(key="model").set_value("ecanet18-official").run()
    assert_clean(at)
    assert_says_what_to_do_beside_the_image(at, (
        "ecanet18-official is not available here: this server does not have the authors' checkpoint file. "
        "Choose another model, or, if you have the file, load it as your own checkpoint."))
    assert_no_server_details(at, official_home)
    (official_home / "official").mkdir()
    torch.manual_seed(0)
    model = attention_resnet(18, "eca", k_size=(3, 5, 7, 7))                 # the authors' ECA-Net18, untrained
    torch.save(official_checkpoint(model, TO_ECANET), official_home / "official" / "eca_resnet18_k3577.pth.tar")
    at.run()                                                                  # the file is there now
    assert_clean(at)
    [warning] = values(at.warning)                    # the authors' architecture, with untrained weights
    assert warning.startswith("This model looks untrained or broken: its predictions are close to uniform")
    assert len(at.dataframe[0].value) == 5
    assert_no_server_details(at, official_home)


def test_eight_live_sessions_never_see_each_others_results():
    """Eight browser sessions, alive at once on one shared cached model, each upload a different
    image, in interleaved order; every one keeps showing exactly its own image's predictions,
    also after the others' uploads and after a display change. (Simultaneous forward passes on
    the shared model are tested in tests/test_blocks_capture.py: 8 threads x 25 captures.
    AppTest itself cannot run sessions in parallel threads: each run swaps a process-wide mock
    Runtime.)"""
    rng = np.random.default_rng(0)
    images = [png(Image.fromarray((rng.random((96 + 8 * i, 128, 3)) * 255).astype(np.uint8)))
              for i in range(8)]
    sessions = [app() for _ in range(8)]
    for i, at in enumerate(sessions):
        upload(at, f"image{i}.png", images[i], "image/png")
    for i, at in enumerate(sessions):
        at.selectbox(key="cmap").set_value("viridis").run()
    expected = [expected_predictions(pretrained.DEFAULT_MODEL, data) for data in images]
    assert len({tuple(c for c, _ in e) + (round(e[0][1], 4),) for e in expected}) == 8   # all different
    for at, want in zip(sessions, expected):
        assert_clean(at)
        assert not at.error
        assert_same_predictions(shown_predictions(at), want)


def test_safe_server_defaults():
    import tomllib
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] == 200            # MB, for checkpoints; images capped at 50 MP
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["toolbarMode"] == "viewer"
    assert not config["server"].get("scriptHealthCheckEnabled")  # an endpoint that runs the script: serve.py needs none
    assert config["server"]["fileWatcherType"] == "none"          # watching the tree kept a core busy when idle
    assert config["runner"]["postScriptGC"] is False              # a full collection per run: O(sessions open)


def test_an_unexpected_error_reaches_the_log_not_the_visitor(monkeypatch, caplog):
    """With the shipped client.showErrorDetails, a bug's message (paths, a file's contents) is
    redacted on the page and logged in full on the server."""
    import tomllib
    from streamlit import config
    shipped = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"]
    monkeypatch.setattr(lens.inspection, "capture_attention",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret /srv/data/patient-17.png")))
    st.cache_resource.clear()
    before = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", shipped)
    try:
        at = app()
    finally:
        config.set_option("client.showErrorDetails", before)
        st.cache_resource.clear()
    [shown] = at.exception
    assert "secret" not in shown.message and not shown.stack_trace
    assert shown.message.startswith("This app has encountered an error. The original error message is redacted")
    assert "secret /srv/data/patient-17.png" in caplog.text


def test_the_plain_baseline_keeps_the_view_bar_and_compares():
    at = app()
    at.selectbox(key="model").set_value("plain-resnet18-shapes").run()
    assert_clean(at)
    assert at.segmented_control(key="view").options == ["Block", "Overview", "Compare", "Intervene", "Downloads", "Study"]
    at.segmented_control(key="view").set_value("Compare").run()
    assert_clean(at)
    assert labelled(at.multiselect, "Models to compare (2 or 3)").value == [
        "plain-resnet18-shapes", "se-resnet18-shapes", "eca-resnet18-shapes"]
    assert "no attention blocks (baseline)" in values(at.caption)
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    assert_same_predictions(shown_predictions(at, 2), expected_predictions("se-resnet18-shapes", data, k=3))


def test_upload_then_sample_then_upload_again_keeps_the_file_and_the_compare_choice():
    star = (ASSETS / "shapes-star.png").read_bytes()
    at = upload(app(), "mine.png", star, "image/png")
    at.segmented_control(key="view").set_value("Compare").run()
    labelled(at.multiselect, "Models to compare (2 or 3)").set_value(["cbam-resnet18-shapes", "se-resnet18-shapes"]).run()
    at.selectbox(key="sample").set_value(sample_of("ring")["title"]).run()       # a sample: shown at once
    assert_clean(at)
    assert at.radio(key="image_source").value == "Sample"
    ring = (ASSETS / "shapes-ring.png").read_bytes()
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, ring))
    assert labelled(at.multiselect, "Models to compare (2 or 3)").value == ["cbam-resnet18-shapes",
                                                                            "se-resnet18-shapes"]
    at.radio(key="image_source").set_value("Upload").run()                          # back to the uploaded file
    assert_clean(at)
    assert at.file_uploader(key="image").value.name == "mine.png"
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, star))
    assert any("mine.png, as the model sees it" in plain(m) for m in values(at.markdown))


def test_the_sidebar_shows_a_long_model_name_whole():
    at = app()
    at.selectbox(key="model").set_value("ecaresnet101d.miil_in1k").run()
    assert "ecaresnet101d.miil_in1k (ImageNet, downloads once)" in values(at.sidebar.caption)
    at.selectbox(key="model").set_value("se-resnet18-shapes").run()
    assert not at.sidebar.caption                                # a name that fits is not repeated


HOSTILE = ["[click here](https://evil.example/login)", "![x](https://evil.example/a.png) www.evil.example",
           "<img src=x onerror=alert(1)><b>bold</b> $x^2$ :red[red]"]


def assert_inert(markdown: str, text: str) -> None:
    """Rendered as CommonMark with autolinks and raw HTML on (the most a renderer could read into
    it), the markdown makes no link, image or tag, and reads as `text`."""
    import html
    from markdown_it import MarkdownIt
    rendered = MarkdownIt("commonmark", {"linkify": True, "html": True}).enable("linkify").render(markdown)
    assert not re.search(r"<(a|img|b)\b", rendered), rendered
    assert text in html.unescape(re.sub(r"<[^>]+>", "", rendered)), rendered


@pytest.mark.parametrize("evil", HOSTILE)
def test_user_text_is_literal_everywhere_it_is_shown(evil):
    from blocks import attention_resnet
    at = upload(app(), f"{evil}.png", b"not an image")                   # an image's name in an error
    assert_inert(at.error[0].value, f"Cannot use {evil}.png: not an image")
    at = upload(at, f"{evil}.png", (ASSETS / "shapes-star.png").read_bytes(), "image/png")
    [model_input] = [m.value for m in at.markdown if "as the model sees it" in m.value]
    assert_inert(model_input, f"{evil}.png, as the model sees it")      # ... and in a caption

    torch.manual_seed(0)                                                 # a checkpoint's name and labels
    from safetensors.torch import save
    data = save(attention_resnet(18, "cbam", num_classes=3, width=8, ratio=4).state_dict(),
                metadata={"labels": json.dumps([evil, f"{evil} 2", f"{evil} 3"])})
    own_checkpoint(at, f"{evil}.safetensors", data)
    assert_clean(at)
    [weights] = [m.value for m in at.sidebar.markdown if m.value.startswith("Weights: ")]
    assert_inert(weights, f"Weights: {evil}.safetensors")
    [description] = [c.value for c in at.caption if "CBAM ResNet" in c.value]
    assert_inert(description, f"CBAM ResNet-18 from {evil}.safetensors")
    at.segmented_control(key="view").set_value("Intervene").run()
    assert_inert(at.metric[0].label, f"Probability of '{evil}")         # a label from the file's metadata
    [explained] = [m.value for m in at.markdown if "the probability of '" in plain(m.value)]
    assert_inert(explained, f"the probability of '{evil}")
    [cam_heading] = [m.value for m in at.markdown if plain(m.value).startswith("**Grad-CAM of '")]
    assert_inert(cam_heading, f"Grad-CAM of '{evil}")
    key = "file:" + hashlib.sha256(data).hexdigest()
    at.text_area(key=f"labels_{key}").set_value(f"{evil} a\n{evil} b\n{evil} c").run()   # labels typed
    assert_inert(at.metric[0].label, f"Probability of '{evil} ")
    at.segmented_control(key="view").set_value("Compare").run()
    assert_inert(next(m.value for m in at.markdown if "(yours)" in plain(m.value)), f"{evil}.safetensors (yours)")


FIVE_UPLOADS = '''
import io, sys
import torch
from streamlit.testing.v1 import AppTest
from blocks import attention_resnet

def rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

at = AppTest.from_file("app.py", default_timeout=300).run()
at.selectbox(key="model").set_value("Your own checkpoint...").run()
after = []
for i in range(5):
    torch.manual_seed(i)
    buf = io.BytesIO()
    torch.save(attention_resnet(18, "se", num_classes=10).state_dict(), buf)
    data, buf = buf.getvalue(), None
    if any(b.key == "replace_weights" for b in at.button):
        at.button(key="replace_weights").click().run()
    [uploader] = [u for u in at.file_uploader if u.label.startswith("Weights file")]
    uploader.set_value((f"m{i}.pt", data, "application/octet-stream")).run()
    size, data, uploader = len(data) / 2**20, None, None
    assert not at.exception and not at.error
    assert any(m.value.startswith(f"Weights: **m{i}") for m in at.sidebar.markdown)
    after.append(rss_mb())
print(size, *after)
'''


def test_five_checkpoint_uploads_in_a_row_hold_one_model():
    """Each upload is dropped from Streamlit's store once loaded, results with it stay in the session,
    and freed memory goes back to the system: RSS after the fifth is within one model and one file
    of the first (measured in a fresh process)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", FIVE_UPLOADS], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    file_mb, *rss = map(float, out.stdout.split())
    model_mb = file_mb                                   # a state dict's file is its fp32 tensors
    assert max(rss[1:]) - rss[0] < model_mb + file_mb, (file_mb, rss)


def test_block_view_shows_grad_cam_beside_the_map_with_their_rank_agreement():
    from scipy.stats import spearmanr
    from blocks import grad_cam
    from lens.agreement import CAM_READING, SCALE_FREE
    from lens.glossary import GLOSSARY
    at = app()
    at.toggle(key="show_cam").set_value(True).run()
    assert_clean(at)
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    model, x = model_and_input(pretrained.DEFAULT_MODEL, data)
    capture = capture_attention(model, x)
    classes = [c for c, _ in capture.top_k(5)]
    assert at.selectbox(key="cam_class").value == 0                     # the top prediction first
    cam = grad_cam(model, x, "layer4.1", classes[0])[0].numpy()
    gate = capture.layer("layer4.1").spatial[0].numpy()
    rho = spearmanr(gate.ravel(), cam.ravel()).statistic
    [metric] = [m for m in at.metric if m.label == "Rank agreement with the block's map"]
    assert metric.value == f"{rho:+.2f}"
    assert metric.help == f"{GLOSSARY['rank agreement']} {SCALE_FREE}" and CAM_READING in values(at.caption)
    label = pretrained.load(pretrained.DEFAULT_MODEL).labels[classes[0]]
    assert f"**Grad-CAM of '{label}' (attribution, not attention)** at `layer4.1` (4\u00a0x\u00a04)" in values(at.markdown)
    at.selectbox(key="cam_class").set_value(2).run()                   # another class: its own map
    cam = grad_cam(model, x, "layer4.1", classes[2])[0].numpy()
    [metric] = [m for m in at.metric if m.label == "Rank agreement with the block's map"]
    assert metric.value == f"{spearmanr(gate.ravel(), cam.ravel()).statistic:+.2f}"


def test_sanity_check_shows_each_seed_beside_the_null_band():
    at = app()
    at.toggle(key="sanity").set_value(True).run()
    assert_clean(at)
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    from lens import inspect_image
    from lens.sanity import sanity_report
    expected = sanity_report(inspect_image(pretrained.load(pretrained.DEFAULT_MODEL), data), "layer4.1")
    assert len(expected.seeds) == 3 and expected.cells == 16
    shown = [plain(m) for m in values(at.markdown)]
    assert plain(md(expected.sentence("map"))) in shown and plain(md(expected.sentence("grad_cam"))) in shown
    assert any("over 16 cells, 3 seeds" in m and "5-95%" in m for m in shown)
    at.run()                                                             # the shared model is unchanged
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, data))


def test_compare_says_when_maps_differ_in_kind_and_shows_charts_and_parameter_counts():
    at = app()
    at.segmented_control(key="view").set_value("Compare").run()
    assert_clean(at)
    chosen = labelled(at.multiselect, "Models to compare (2 or 3)").value
    assert chosen == ["se-resnet18-shapes", "eca-resnet18-shapes", "cbam-resnet18-shapes"]
    assert values(at.info) == [MIXED_SCALES]
    counts = {}
    for name in chosen:
        model = pretrained.load(name).model
        counts[name] = sum(p.numel() for p in model.layer4[1].attn.parameters())
    captions = [c for c in values(at.caption) if c.endswith("channel weights") and " parameters, " in c]
    assert captions == [f"{n} · {n.split('-')[0].upper()} block `layer4.1`: {counts[n]:,} parameters, "
                        "128 channel weights" for n in chosen]
    assert len(at.get("vega_lite_chart")) == 3
    labelled(at.multiselect, "Models to compare (2 or 3)").set_value(["se-resnet18-shapes", "eca-resnet18-shapes"]).run()
    assert not at.info                                                  # two activity maps: the same kind


def test_overview_and_compare_can_draw_grad_cam_instead_of_the_blocks_maps():
    at = app()
    at.segmented_control(key="view").set_value("Overview").run()
    at.radio(key="map_kind").set_value("gradcam").run()
    assert_clean(at)
    data = (ASSETS / json.loads((ASSETS / "samples.json").read_text())[0]["file"]).read_bytes()
    labels = pretrained.load(pretrained.DEFAULT_MODEL).labels
    top = labels[capture_attention(*model_and_input(pretrained.DEFAULT_MODEL, data)).top_k(1)[0][0]]
    assert f"**All blocks** -- Grad-CAM of '{top}' (attribution, not attention)" in values(at.markdown)
    assert image_captions(at)[1].startswith("low to high of each map: every map is stretched")
    assert len([c for c in image_captions(at) if c.startswith("layer")]) == 8
    at.segmented_control(key="view").set_value("Compare").run()              # the choice carries over
    assert_clean(at)
    assert at.radio(key="map_kind").value == "gradcam"
    assert not at.info                                                        # every map is Grad-CAM: one kind
    compared = [c for c in image_captions(at) if " · layer4.1: " in c]
    assert len(compared) == 3 and all("Grad-CAM of '" in c for c in compared)
