"""pretrained.available / load: every source, offline, with messages a user can act on."""
import io
import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

import pretrained
from blocks import attention_resnet, capture_attention
from lens.localisation import localisation_score
from pretrained import CheckpointError, ModelUnavailable, Preprocess
from pretrained import imagenet
from pretrained.registry import bundled_description


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_LENS_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.slow
def test_available_offline_on_a_fresh_process():
    code = ("import pretrained; e = pretrained.available(); "
            "print(e[0].name, e[0].source, sorted({x.source for x in e}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split(" ", 2)[:2] == ["cbam-resnet18-shapes", "bundled"]
    assert "['bundled', 'official', 'timm']" in out.stdout


def test_entries_describe_their_preprocessing():
    entries = {e.name: e for e in pretrained.available()}
    assert len(entries) == len(pretrained.available())                     # unique names
    assert set(imagenet.IMAGENET_MODELS) <= set(entries)
    eca = entries["ecaresnet26t.ra2_in1k"]
    assert (eca.source, eca.attention, eca.downloads) == ("timm", "eca", True)
    assert eca.preprocess == Preprocess(256, 0.875, "bicubic")                 # timm's own config
    se = entries["legacy_seresnet18.in1k"]
    assert se.preprocess == Preprocess(224, 0.875, "bicubic") and "downloads once" in se.description
    assert entries["cbam-resnet50-official"].attention == "cbam"


def test_timm_model_loads_from_a_local_file_without_network(home):
    torch.manual_seed(0)
    reference = timm.create_model("legacy_seresnet18", pretrained=False).eval()
    (home / "imagenet").mkdir()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
              str(home / "imagenet" / "legacy_seresnet18.in1k.safetensors"))
    loaded = pretrained.load("legacy_seresnet18.in1k")
    assert loaded.source == "timm" and not loaded.model.training
    for (k, a), b in zip(reference.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert len(loaded.labels) == 1000 and loaded.labels[:2] == ("tench", "goldfish")
    x = loaded.preprocess(Image.new("RGB", (300, 200), (120, 30, 200)))[None]
    cap = capture_attention(loaded.model, x)
    assert len(cap.layers) == 8 and cap.layers[0].module == "layer1.0.se_module"


def test_offline_download_fails_fast_with_what_to_do(home, monkeypatch):
    monkeypatch.setattr(imagenet, "cached_file", lambda cfg: None)
    monkeypatch.setattr(imagenet, "download_host", lambda cfg: "127.0.0.1")
    monkeypatch.setattr(imagenet, "HTTPS_PORT", closed_port())             # nothing listens there
    start = time.perf_counter()
    with pytest.raises(ModelUnavailable) as info:
        pretrained.load("ecaresnet50d.miil_in1k")
    assert time.perf_counter() - start < 10
    assert str(info.value) == (
        "ecaresnet50d.miil_in1k needs a one-time download of its ImageNet weights from 127.0.0.1, which "
        "cannot be reached from this machine. Connect to the internet once and choose it again (the "
        f"weights are then cached), or put the weights file at "
        f"{home / 'imagenet' / 'ecaresnet50d.miil_in1k.safetensors'}. The bundled models work offline.")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reachable_is_false_quickly_for_a_closed_port():
    start = time.perf_counter()
    assert imagenet.reachable("127.0.0.1", closed_port(), timeout=2) is False
    assert time.perf_counter() - start < 2.5


def test_official_entry_without_its_file(home):
    with pytest.raises(ModelUnavailable, match="put it at .*official/eca_resnet50_k3557.pth.tar"):
        pretrained.load("ecanet50-official")


@pytest.mark.slow
def test_official_entry_with_its_file(home):
    torch.manual_seed(0)
    ours = attention_resnet(50, "eca", k_size=(3, 5, 5, 7)).eval()
    official = {"module." + k.replace(".attn.", ".eca."): v for k, v in ours.state_dict().items()}
    (home / "official").mkdir()
    torch.save({"state_dict": official, "epoch": 100}, home / "official" / "eca_resnet50_k3557.pth.tar")
    loaded = pretrained.load("ecanet50-official")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ours(x))
    assert loaded.source == "official" and loaded.labels[0] == "tench"


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'resnet9000'; choose one of cbam-resnet18-shapes, .*"
                                         r"or give the path of a weights file"):
        pretrained.load("resnet9000")


@pytest.mark.parametrize("relative,reason", [
    ("no/such/file.pt", "No such file or directory"),
    ("weights.safetensors", "No such file or directory"),       # no folder in it, but a weights name
    ("checkpoints", "Is a directory"),
])
def test_path_that_is_no_file_says_so(relative, reason, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for source in (relative, str(tmp_path / relative)):
        with pytest.raises(CheckpointError) as err:
            pretrained.load(source)
        assert str(err.value) == f"cannot read {source}: {reason}"


@pytest.fixture
def small_model():
    torch.manual_seed(1)
    return attention_resnet(18, "cbam", num_classes=3, width=8, ratio=2).eval()


def test_users_safetensors_file_with_labels_and_preprocessing(tmp_path, small_model):
    path = tmp_path / "mine.safetensors"
    save_file(small_model.state_dict(), str(path), metadata={
        "labels": json.dumps(["cat", "dog", "owl"]),
        "preprocess": json.dumps({"input_size": 96, "crop_pct": 1.0, "interpolation": "bilinear",
                                  "mean": [0.5] * 3, "std": [0.25] * 3})})
    for source in (path, str(path), path.read_bytes()):
        loaded = pretrained.load(source)
        assert loaded.source == "file" and loaded.labels == ("cat", "dog", "owl")
        assert loaded.preprocess == Preprocess(96, 1.0, "bilinear", (0.5,) * 3, (0.25,) * 3)
        assert loaded.description.startswith("CBAM ResNet-18 from ")
        x = torch.randn(2, 3, 96, 96)
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x), small_model(x))


def test_users_torch_file_gets_default_names(tmp_path, small_model):
    path = tmp_path / "mine.pth"
    torch.save({"model": small_model.state_dict(), "epoch": 3}, path)
    loaded = pretrained.load(path)
    assert loaded.labels == ("class 0", "class 1", "class 2")
    assert loaded.preprocess == Preprocess(224, 0.875, "bilinear")
    assert loaded.description == "CBAM ResNet-18 from mine.pth (Attention Lens layout, 3 classes)"


def test_users_timm_layout_file(tmp_path):
    torch.manual_seed(0)
    theirs = timm.create_model("resnet18", pretrained=False, num_classes=4,
                               block_args=dict(attn_layer="cbam")).eval()
    path = tmp_path / "timm_cbam.pth"
    torch.save(theirs.state_dict(), path)
    loaded = pretrained.load(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), theirs(x), atol=1e-4, rtol=0)
    assert "(timm ResNet layout, 4 classes)" in loaded.description


def test_whole_model_upload_is_refused_with_what_to_do(small_model):
    with pytest.raises(CheckpointError) as err:
        pretrained.load(saved(small_model))
    assert str(err.value) == (
        "refused: this file is not a plain weights file (it asks to run code: "
        "blocks.resnet.AttentionResNet); only tensors are loaded. If it is a whole model saved with "
        "torch.save(model, path), save its weights instead: torch.save(model.state_dict(), path)")


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_labels_that_do_not_fit(tmp_path, small_model):
    path = tmp_path / "bad.safetensors"
    save_file(small_model.state_dict(), str(path), metadata={"labels": json.dumps(["a", "b"])})
    with pytest.raises(CheckpointError, match="^the file names 2 classes but its classifier has 3$"):
        pretrained.load(path)


def test_malicious_upload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(CheckpointError, match="^refused: this file is not a plain weights file"):
        pretrained.load(path.read_bytes())
    assert not marker.exists()


def test_preprocess_resizes_crops_and_normalises():
    p = Preprocess(128, 1.0, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    image = Image.new("RGB", (300, 150), (255, 0, 51))
    image.paste((0, 0, 0), (0, 0, 60, 150))                   # cut off by the centre crop (x < 75)
    view = p.view(image)
    assert view.size == (128, 128) and view.getpixel((0, 64)) == (255, 0, 51)
    x = p(image)
    assert x.shape == (3, 128, 128)
    torch.testing.assert_close(x[:, 64, 64], torch.tensor([2.0, -2.0, -1.2]))
    assert Preprocess(224, 0.875).view(Image.new("L", (500, 1000))).size == (224, 224)


def test_localisation_score():
    mask = np.zeros((8, 8), bool)
    mask[:4, :4] = True                                        # a quarter of the image
    assert localisation_score(np.ones((2, 2)), mask) == pytest.approx(1.0)
    assert localisation_score(np.array([[1.0, 0.0], [0.0, 0.0]]), mask) > 2.0
    assert np.isnan(localisation_score(np.zeros((2, 2)), mask))
    with pytest.raises(ValueError, match="the mask is empty"):
        localisation_score(np.ones((2, 2)), np.zeros((8, 8), bool))


@pytest.mark.parametrize("meta, message", [
    ({"preprocess": json.dumps({"input_size": 128, "foo": 1})},
     "the file's 'preprocess' metadata is not a JSON object of Preprocess fields (input_size, crop_pct, "
     "interpolation, mean, std): "),
    ({"labels": "cat,dog"}, "the file's 'labels' metadata is not a JSON list of class names: 'cat,dog'"),
])
def test_bad_safetensors_metadata_is_named(tmp_path, meta, message):
    path = tmp_path / "m.safetensors"
    save_file(attention_resnet(18, "se", num_classes=2, width=8, ratio=2).state_dict(), str(path), metadata=meta)
    with pytest.raises(CheckpointError) as error:
        pretrained.load(path)
    assert str(error.value).startswith(message)


def test_a_bundled_models_description_says_its_dataset_and_what_label_smoothing_does_to_a_sure_answer():
    arch = {"attention": "cbam", "depth": 18, "width": 16}
    one_hot = {"validation_accuracy": 0.9171, "recipe": {"dataset": 2, "label_smoothing": 0.0}}
    assert bundled_description(arch, one_hot, 10) == (
        "CBAM ResNet-18 (width 16) trained on the bundled shapes dataset (v2); works offline (91.7% validation "
        "accuracy).")
    smoothed = {"validation_accuracy": 1.0, "recipe": {"label_smoothing": 0.1}}      # a v1 log: no dataset field
    assert bundled_description({**arch, "attention": None}, smoothed, 10) == (
        "PLAIN ResNet-18 (width 16) trained on the bundled shapes dataset (v1); works offline (100.0% validation "
        "accuracy). Trained with label smoothing 0.1, so a sure answer reads about 91%, not 100%.")
    bundled = {e.name: e.description for e in pretrained.available() if e.source == "bundled"}
    assert bundled[pretrained.DEFAULT_MODEL].startswith("CBAM ResNet-18 (width 16) trained on the bundled shapes "
                                                        "dataset (v2); works offline (91.7% validation accuracy).")
