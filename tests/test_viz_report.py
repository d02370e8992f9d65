"""python -m viz.report: per-image PNGs and attention.json; bad images skipped, others processed."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from blocks import attention_resnet
from viz import report


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
    for block in data["blocks"]:
        assert block["spatial"] is None
        order = np.argsort(-np.array(block["channel_weights"]), kind="stable")
        assert np.array(block["channel_weights"])[block["top_channels"]].tolist() == \
            np.array(block["channel_weights"])[order[:len(block["top_channels"])]].tolist()
    assert Image.open(tmp_path / "out" / "photo" / "blocks" / "layer2.1_spatial.png").size[0] > 100

    with pytest.raises(SystemExit):
        report.main([str(image), "--model", str(weights), "--out", str(tmp_path / "out"), "--top-k", "0"])
    assert "--top-k must be at least 1, got 0" in capsys.readouterr().err
