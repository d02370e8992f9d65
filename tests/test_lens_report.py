"""python -m lens report: per-image PNGs and attention.json; bad images skipped, others processed; the
app's notes printed and kept; every figure headed by the image, the model and the top prediction."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import pretrained
from blocks import attention_resnet, capture_attention
from lens import Inspection, inspect_image, report
from lens.card_notes import model_note
from lens.domain_note import domain_note

pytestmark = pytest.mark.slow          # renders every figure of every block to PNG


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    model = attention_resnet(18, "cbam", num_classes=6, width=8, ratio=2).eval()
    path = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(path), metadata={"labels": json.dumps(list("abcdef"))})
    return path


def test_report_files_and_json(tmp_path, model_file, capsys):
    image = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(image)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    status = report.main([str(bad), str(image), str(tmp_path / "missing.png"), "--model", str(model_file),
                          "--out", str(out)])
    assert status == 1
    err = capsys.readouterr().err
    assert f"error: {bad}: not an image in a supported format" in err
    assert f"error: {tmp_path / 'missing.png'}: No such file or directory" in err

    target = out / "photo"
    data = json.loads((target / "attention.json").read_text())
    names = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    assert [b["name"] for b in data["blocks"]] == names
    assert data["model"] == "tiny.safetensors" and data["image"] == "photo.jpg"
    assert data["input_size"] == [224, 224]                       # default preprocessing for a file
    first = data["blocks"][0]
    assert (first["kind"], first["channels"], first["feature_size"]) == ("cbam", 8, [56, 56])
    assert len(first["channel_weights"]) == 8 and len(first["spatial"]) == 56 and len(first["spatial"][0]) == 56
    assert all(0 <= w <= 1 for b in data["blocks"] for w in b["channel_weights"])
    assert all(len(b["top_channels"]) == 5 for b in data["blocks"])          # --top-k's default
    assert all(b["channel_activity"] is None for b in data["blocks"])          # CBAM has its spatial gate
    probs = [p["probability"] for p in data["predictions"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    assert {p["label"] for p in data["predictions"]} <= set("abcdef")
    assert sorted(p.name for p in (target / "blocks").iterdir()) == sorted(
        f"{n}_{kind}.png" for n in names for kind in ("channels", "spatial"))
    for png in ("overview.png", "channels_by_depth.png", "model_input.png"):
        assert Image.open(target / png).size[0] > 100
    assert Image.open(target / "model_input.png").size == (224, 224)


def test_unknown_model(tmp_path, capsys):
    assert report.main(["x.png", "--model", "nope", "--out", str(tmp_path)]) == 2
    assert "error: cannot load model 'nope': unknown model 'nope'; choose one of" in capsys.readouterr().err


def test_se_report_shows_where_the_top_k_channels_fire(tmp_path, capsys):
    torch.manual_seed(0)
    model = attention_resnet(18, "se", num_classes=3, width=8, ratio=2).eval()
    weights = tmp_path / "se.safetensors"
    save_file(model.state_dict(), str(weights))
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    assert report.main([str(image), "--model", str(weights), "--out", str(tmp_path / "out"), "--top-k", "3"]) == 0
    data = json.loads((tmp_path / "out" / "photo" / "attention.json").read_text())
    capture = capture_attention(model, pretrained.load(weights).preprocess(Image.open(image))[None], channel_maps=3)
    for block, record in zip(data["blocks"], capture.layers, strict=True):
        assert block["spatial"] is None and len(block["top_channels"]) == 3
        np.testing.assert_allclose(block["channel_activity"], record.activity(3)[0].numpy(), atol=1e-6)
        order = np.argsort(-np.array(block["channel_weights"]), kind="stable")
        assert np.array(block["channel_weights"])[block["top_channels"]].tolist() == \
            np.array(block["channel_weights"])[order[:len(block["top_channels"])]].tolist()
    assert Image.open(tmp_path / "out" / "photo" / "blocks" / "layer2.1_spatial.png").size == (462, 396)  # 110 dpi
    assert Image.open(tmp_path / "out" / "photo" / "blocks" / "layer2.1_channels.png").size == (770, 286)

    with pytest.raises(SystemExit):
        report.main([str(image), "--model", str(weights), "--out", str(tmp_path / "out"), "--top-k", "0"])
    assert "--top-k must be from 1 to 32, got 0" in capsys.readouterr().err


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_a_model_without_attention_is_a_one_line_error(tmp_path, photo, capsys):
    out = tmp_path / "out"
    assert report.main([str(photo), "--model", "plain-resnet18-shapes", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("error: model 'plain-resnet18-shapes' has no SE, ECA or CBAM attention "
                                       "blocks: nothing to report\n")
    assert not out.exists()


@pytest.mark.parametrize("option, value, message", [
    ("--cmap", "nosuchcmap", "argument --cmap: unknown colormap 'nosuchcmap'; choose one of matplotlib's "
                             "colormaps, e.g. jet, turbo, viridis, inferno, magma, gray"),
    ("--dpi", "0", "--dpi must be at least 1, got 0"),
    ("--dpi", "-300", "--dpi must be at least 1, got -300"),
])
def test_bad_options_stop_before_any_work(tmp_path, photo, model_file, capsys, option, value, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        report.main([str(photo), "--model", str(model_file), "--out", str(out), option, value])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m lens report: error: {message}"
    assert not out.exists()


def test_help_names_the_command_and_every_argument(capsys):
    with pytest.raises(SystemExit) as stop:
        report.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m lens report [-h] [--model MODEL] [--input-size PIXELS]")
    assert "[--device DEVICE] --out DIR [--cmap NAME]" in " ".join(text.split())
    assert "per-block PNGs and a JSON\nof every block's weights." in text
    assert "exit status 1 if any failed, 2 if the model\ncannot be loaded or has no attention blocks" in text
    for help_text in ("image files (JPEG, PNG, WebP, BMP, GIF, TIFF)", "folder for the reports, one subfolder per image",
                      "matplotlib colormap of the spatial maps (default: viridis)", "e.g. 300 for slides (default:"):
        assert help_text in " ".join(text.split())


def test_dpi_scales_the_figure_pngs_and_top_k_the_json(tmp_path, photo, model_file):
    out = tmp_path / "out"
    assert report.main([str(photo), "--model", str(model_file), "--out", str(out), "--top-k", "12",
                        "--cmap", "magma", "--dpi", "220"]) == 0
    assert Image.open(out / "photo" / "blocks" / "layer1.0_spatial.png").size == (924, 792)    # 2 x 110 dpi
    assert Image.open(out / "photo" / "blocks" / "layer1.0_channels.png").size == (1540, 572)
    assert Image.open(out / "photo" / "model_input.png").size == (224, 224)   # the model's input, as is
    data = json.loads((out / "photo" / "attention.json").read_text())
    assert [len(b["top_channels"]) for b in data["blocks"]] == [min(12, b["channels"]) for b in data["blocks"]]


def test_images_with_one_name_get_one_folder_each(tmp_path, model_file, capsys):
    images = [tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "sub" / "a.png"]
    images[2].parent.mkdir()
    for i, path in enumerate(images):
        Image.new("RGB", (40, 40), (60 * i, 0, 0)).save(path)
    assert report.main([*map(str, images), "--model", str(model_file), "--out", str(tmp_path / "out")]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("  note: ")]
    for path, folder, line in zip(images, ["a", "a-2", "a-3"], printed, strict=True):
        assert json.loads((tmp_path / "out" / folder / "attention.json").read_text())["image"] == path.name
        assert line == f"{path} -> {tmp_path / 'out' / folder}"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "a-2", "a-3"]


def test_folder_names_never_take_another_images_name():
    paths = [Path(p) for p in ("a.png", "a-2.png", "a.jpg", "x/a.png")]
    assert report.report_folders(paths) == ["a", "a-2", "a-3", "a-4"]
    assert report.report_folders([Path("a.png"), Path("a.jpg"), Path("a-2.png")]) == ["a", "a-3", "a-2"]


def test_an_output_folder_that_cannot_be_made_is_named(tmp_path, model_file, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_:
        report.main([str(tmp_path / "x.png"), "--model", str(model_file), "--out", str(blocker / "out")])
    assert exit_.value.code == 2
    assert f"error: cannot create --out {blocker / 'out'}: Not a directory" in capsys.readouterr().err


def test_a_bare_weights_file_gets_its_input_size_and_class_names(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "mine.pt"
    torch.save(attention_resnet(18, "eca", num_classes=3, width=8).state_dict(), weights)
    image = tmp_path / "x.png"
    Image.new("RGB", (90, 60), (0, 120, 0)).save(image)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nbird\n")
    args = [str(image), "--model", str(weights), "--out", str(tmp_path / "out")]
    assert report.main([*args, "--input-size", "64", "--crop-pct", "1", "--labels", str(names)]) == 0
    data = json.loads((tmp_path / "out" / "x" / "attention.json").read_text())
    assert data["input_size"] == [64, 64] and data["blocks"][0]["feature_size"] == [16, 16]
    assert sorted(p["label"] for p in data["predictions"]) == ["bird", "cat", "dog"]
    names.write_text("cat\ndog\n")
    for bad, message in ((["--labels", str(names)], "2 class names for 3 classes"),
                         (["--input-size", "8"], "input size must be a whole number of pixels from 16 to 1024, got 8"),
                         (["--crop-pct", "1.5"], "crop must be a share of the resized image in (0, 1], got 1.5")):
        with pytest.raises(SystemExit) as exit_:
            report.main([*args, *bad])
        assert exit_.value.code == 2 and capsys.readouterr().err.endswith(f"error: {message}\n")


def test_nan_from_a_diverged_model_is_null_in_strict_json():
    from blocks import AttentionRecord, Capture
    record = AttentionRecord("layer1.0", "layer1.0.attn", "cbam", 1, 0, torch.tensor([[float("nan"), 0.5]]),
                             torch.tensor([[[0.2, float("inf")]]]), (1, 2), None, None)
    capture = Capture(torch.tensor([[float("nan"), 1.0]]), [record], (32, 32))
    model = pretrained.LoadedModel("m", "file", torch.nn.Identity(), pretrained.Preprocess(32), ("a", "b"), "")
    data = Inspection(model, "x.png", Image.new("RGB", (32, 32)), (), torch.zeros(1, 3, 32, 32), capture).to_json()
    text = json.dumps(data, allow_nan=False)                      # raises on NaN: strict JSON only
    block = json.loads(text)["blocks"][0]
    assert block["channel_weights"] == [None, 0.5] and block["spatial"] == [[0.2, None]]
    assert [p["probability"] for p in data["predictions"]] == [None, None]   # softmax of NaN is NaN


def test_attribution_gradcam_adds_each_blocks_map_and_its_agreement(tmp_path, model_file):
    from scipy.stats import spearmanr
    from blocks import grad_cam
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    assert report.main([str(photo), "--model", str(model_file), "--out", str(out), "--attribution", "gradcam",
                        "--input-size", "64"]) == 0
    data = json.loads((out / "photo" / "attention.json").read_text())
    lm = pretrained.load(str(model_file)).configured(64)
    x = lm.preprocess(Image.open(photo).convert("RGB"))[None]
    top = data["predictions"][0]
    assert data["grad_cam_of"] == f"Grad-CAM of '{top['label']}' (attribution, not attention)"
    for block in data["blocks"]:
        cam = grad_cam(lm.model, x, block["name"], top["class"])[0].numpy()
        np.testing.assert_allclose(block["grad_cam"], cam, atol=2e-6)
        expected = spearmanr(np.asarray(block["spatial"]).ravel(), cam.ravel()).statistic
        assert block["grad_cam_agreement"] == pytest.approx(expected, abs=2e-6)
        assert (out / "photo" / "blocks" / f"{block['name']}_gradcam.png").read_bytes()[:4] == b"\x89PNG"


def test_the_notes_the_app_shows_are_printed_per_image_and_kept_in_the_json(tmp_path, capsys):
    tiny, thin, animation = tmp_path / "tiny.png", tmp_path / "thin.png", tmp_path / "moving.gif"
    Image.new("RGB", (20, 20), (200, 0, 0)).save(tiny)
    Image.new("RGB", (600, 40), (0, 200, 0)).save(thin)
    frames = [Image.new("RGB", (224, 224), (0, 0, 60 * i)) for i in range(3)]
    frames[0].save(animation, save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    assert report.main([str(tiny), str(thin), str(animation), "--model", "cbam-resnet18-shapes",
                        "--out", str(out)]) == 0
    loaded = pretrained.load("cbam-resnet18-shapes")
    about_the_model = [domain_note(loaded), model_note("cbam-resnet18-shapes")]
    assert about_the_model[0].startswith("cbam-resnet18-shapes knows only 10 shapes (circle, square, ")
    assert about_the_model[1].startswith("Model card: ")
    expected = {"tiny": ["This image is 20 x 20 pixels: the model sees it enlarged 6 times, so it holds almost no "
                         "detail."],
                "thin": ["This image is 600 x 40 pixels: the square centre crop keeps only 6.7% of its length."],
                "moving": ["This is an animation of 3 frames: the model sees only the first."]}
    printed = capsys.readouterr().out
    for (folder, notes), path in zip(expected.items(), (tiny, thin, animation), strict=True):
        notes += about_the_model
        assert json.loads((out / folder / "attention.json").read_text())["notes"] == notes
        assert "\n".join([f"{path} -> {out / folder}", *(f"  note: {n}" for n in notes)]) in printed


def test_a_users_model_gets_only_the_images_notes(tmp_path, model_file, capsys):
    image = tmp_path / "photo.png"
    Image.new("RGB", (30, 30), (0, 90, 0)).save(image)
    assert report.main([str(image), "--model", str(model_file), "--out", str(tmp_path / "out")]) == 0
    [note] = json.loads((tmp_path / "out" / "photo" / "attention.json").read_text())["notes"]
    assert "enlarged 9 times" in note                                  # 30 pixels resized to 256
    assert capsys.readouterr().out.splitlines()[1:] == [f"  note: {note}"]


def test_each_figure_names_the_image_the_model_and_the_top_prediction(tmp_path, model_file):
    image = tmp_path / "a $\\nope$ photo.png"                         # no maths in a file name
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    inspection = inspect_image(pretrained.load(model_file).configured(64), image)
    top = inspection.predictions(1)[0]
    heading = (f"{image.name} through tiny.safetensors: top prediction '{top.label}' ({top.probability:.1%})"
               .replace("$", r"\$"))                                   # matplotlib's escape: drawn as '$'
    figures = dict(report.report_figures(inspection, 5, "jet", inspection.grad_cams()))
    names = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    assert sorted(figures) == sorted(["overview.png", "channels_by_depth.png", *(
        f"blocks/{n}_{kind}.png" for n in names for kind in ("channels", "spatial", "gradcam"))])
    for figure in figures.values():
        assert figure.get_suptitle().split("\n")[0] == heading
    assert figures["overview.png"].get_suptitle() == f"{heading}\nspatial attention (CBAM gate)"   # its own kept
    assert figures["blocks/layer2.0_spatial.png"].axes[0].get_title() == "layer2.0: spatial attention (CBAM gate)"
    assert report.main([str(image), "--model", str(model_file), "--out", str(tmp_path / "out"),
                        "--input-size", "64"]) == 0


def test_faithfulness_writes_each_blocks_curves_and_aucs_as_the_library_computes_them(tmp_path, model_file):
    from blocks import grad_cam
    from lens.faithfulness import curves
    from lens.localisation import centred_gaussian
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    assert report.main([str(photo), "--model", str(model_file), "--out", str(out), "--input-size", "64",
                        "--faithfulness", "--faithfulness-steps", "5", "--faithfulness-fill", "mean"]) == 0
    data = json.loads((out / "photo" / "attention.json").read_text())
    lm = pretrained.load(str(model_file)).configured(64)
    x = lm.preprocess(Image.open(photo).convert("RGB"))[None]
    top = data["predictions"][0]["class"]
    capture = capture_attention(lm.model, x)                  # the exact gates (the JSON's are rounded)
    for block in data["blocks"]:
        faith = block["faithfulness"]
        assert (faith["class"], faith["fill"], faith["steps"]) == (top, "mean", 5)
        assert faith["fractions"][0] == 0 and faith["fractions"][-1] == 1 and len(faith["fractions"]) == 6
        assert [m["map"] for m in faith["maps"]] == [
            "spatial attention (CBAM gate)", "spatial attention (CBAM gate), reversed",
            f"Grad-CAM of '{data['predictions'][0]['label']}' (attribution, not attention)",
            "a centred Gaussian (baseline)"]
        gate = capture.layer(block["name"]).spatial[0].numpy()
        cam = grad_cam(lm.model, x, block["name"], top)[0].numpy()
        expected = curves(lm.model, x.expand(4, -1, -1, -1),
                          np.stack([gate, -gate, cam, centred_gaussian(gate.shape)]), top, steps=5, fill="mean")
        for i, scored in enumerate(faith["maps"]):
            assert scored["deletion_auc"] == pytest.approx(expected.deletion_auc[i].item(), abs=2e-6)
            assert scored["insertion_auc"] == pytest.approx(expected.insertion_auc[i].item(), abs=2e-6)
            np.testing.assert_allclose(scored["deletion"], expected.deletion[i], atol=2e-6)
            np.testing.assert_allclose(scored["insertion"], expected.insertion[i], atol=2e-6)
            assert scored["deletion"][0] == pytest.approx(data["predictions"][0]["probability"], abs=1e-5)
        random = faith["random"]
        assert random["maps"] == 8 and random["band"] == [0.05, 0.95]
        for curve in ("deletion", "insertion"):
            auc = random[f"{curve}_auc"]
            assert auc["low"] <= auc["mean"] <= auc["high"]
            pointwise = np.array([random[curve][k] for k in ("low", "mean", "high")])
            assert (pointwise[0] <= pointwise[1] + 1e-9).all() and (pointwise[1] <= pointwise[2] + 1e-9).all()
        low, high = random["deletion_auc"]["low"], random["deletion_auc"]["high"]
        assert (faith["maps"][0]["deletion_verdict"] == "no better than chance") == (
            low <= faith["maps"][0]["deletion_auc"] <= high)
        assert faith["sentence"].startswith(("The model depends", "spatial attention (CBAM gate)"))
    figure = Image.open(out / "photo" / "faithfulness.png")
    assert figure.size[0] > 700 and figure.size[1] > 4 * 200                   # 8 blocks, two a row
    assert "faithfulness" not in data                               # per block only


def test_faithfulness_steps_are_checked_before_any_work(tmp_path, photo, model_file, capsys):
    with pytest.raises(SystemExit) as stop:
        report.main([str(photo), "--model", str(model_file), "--out", str(tmp_path / "out"), "--faithfulness",
                     "--faithfulness-steps", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("python -m lens report: error: --faithfulness-steps must "
                                                        "be at least 1, got 0")
    assert not (tmp_path / "out").exists()
