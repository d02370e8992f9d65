"""lens study --faithfulness: which images are scored, one image's AUCs equal lens.faithfulness's
panel on that image, the study's summary equals the per-image table, any source (no masks), the
CLI's flag and its checks, and the study read back."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import lens.study as study
from lens import inspect_image
from lens.faithfulness import block_panel
from lens.study import run_study
from lens.study_faithfulness import BETTER, CURVES, FIELDS, MAPS, RANDOM, Faithfulness, columns, faithfulness_batch
from lens.study_results import StudyResults
from training.shapes import render

from test_lens_study import image_folder, shapes_model      # noqa: F401 (shapes_model: a fixture, a tiny CBAM ResNet)

BLOCKS = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]


def test_n_images_are_chosen_evenly_over_the_source_whatever_the_batches():
    plan = Faithfulness(3)
    assert np.flatnonzero(plan.chosen(np.arange(10), 10)).tolist() == [3, 6, 9]
    assert plan.chosen([6, 7, 8, 9], 10).tolist() == [True, False, False, True]     # a batch: the same choice
    assert Faithfulness(200).chosen(np.arange(30), 30).all()                          # fewer images: all of them
    by_class = Faithfulness(4).chosen(np.arange(40), 40)                               # a folder sorted by class
    assert [int(by_class[k * 10:(k + 1) * 10].sum()) for k in range(4)] == [1, 1, 1, 1]


@pytest.mark.parametrize("arguments, message", [
    ({"images": 0}, "faithfulness images must be a whole number >= 1, got 0"),
    ({"steps": 1.5}, "faithfulness steps must be"),
    ({"fill": "black"}, "unknown fill 'black'; fills: blur, mean, road"),
    ({"randoms": 1}, "a band needs two"),
])
def test_bad_settings_say_what_is_wrong(arguments, message):
    with pytest.raises(ValueError, match=message):
        Faithfulness(**arguments)


@pytest.mark.slow
def test_an_images_aucs_equal_the_block_panel_on_that_image(shapes_model, tmp_path):
    loaded = shapes_model.load()
    samples = [render(5, i, 128, 2) for i in (3, 4)]
    x = torch.stack([loaded.preprocess(Image.fromarray(s.image)) for s in samples])
    labels = np.array([s.label for s in samples])
    arrays, rows = faithfulness_batch(loaded.model, x, labels, np.array([True, False]), 10, Faithfulness(1, steps=4))
    path = tmp_path / "shape.png"
    Image.fromarray(samples[0].image).save(path)
    inspection = inspect_image(loaded, path.read_bytes(), path.name)
    assert torch.equal(inspection.x, x[:1])                       # the image as the study saw it
    for name in BLOCKS:
        panel = block_panel(inspection, name, steps=4)
        block_map, _, cam, gaussian = panel.scores
        for curve, band in (("deletion", panel.random_deletion), ("insertion", panel.random_insertion)):
            expected = [getattr(s, f"{curve}_auc") for s in (block_map, cam, gaussian)] + list(band)
            got = [rows[f"{name} {curve} AUC, {m}"][0] for m in MAPS + RANDOM]
            np.testing.assert_allclose(got, expected, atol=1e-5)
            assert np.isnan([rows[f"{name} {curve} AUC, {m}"][1] for m in MAPS + RANDOM]).all()   # not chosen
            for score, who in ((block_map, "block map"), (cam, "Grad-CAM")):
                assert rows[f"{name} {who} {curve}"][0] == float(getattr(score, f"{curve}_verdict")
                                                                   == "better than chance")
        assert arrays[f"{name}|faith_count"].tolist() == np.eye(10, dtype=int)[labels[0]].tolist()
        sums = arrays[f"{name}|faith_sum"]
        np.testing.assert_allclose(sums[labels[0]], [rows[c][0] for c in columns(name)], atol=1e-12)
        assert sums.sum() == pytest.approx(sums[labels[0]].sum())                # the other image adds nothing


@pytest.mark.slow             # runs the study end to end
def test_the_studys_summary_is_the_mean_of_its_per_image_table(shapes_model, tmp_path):
    plan = Faithfulness(6, steps=3)
    summary = run_study("shapes:v2:1:24", shapes_model, tmp_path, batch_size=4, shard_size=8, workers=0,
                        progress=False, faithfulness=plan)
    assert summary["faithfulness"] == {**plan.settings(), "scored": 6}
    images = pd.read_parquet(tmp_path / "images.parquet")
    scored = images[images["layer1.0 deletion AUC, block map"].notna()]
    assert scored["index"].tolist() == np.flatnonzero(plan.chosen(np.arange(24), 24)).tolist()
    for entry in summary["blocks"]:
        faith, name = entry["faithfulness"], entry["block"]
        assert faith["images"] == 6 and sum(c["images"] for c in faith["per_class"].values()) == 6
        for curve in CURVES:
            for m in MAPS + RANDOM:
                assert faith[f"{curve}_auc"][m] == pytest.approx(scored[f"{name} {curve} AUC, {m}"].mean(), abs=1e-12)
            aucs = faith[f"{curve}_auc"]
            assert aucs[RANDOM[1]] <= aucs[RANDOM[0]] <= aucs[RANDOM[2]]
        for m in MAPS[:2]:
            assert faith["better_than_chance"][m]["deletion"] == pytest.approx(scored[f"{name} {m} deletion"].mean())
        circles = scored[scored["label_name"] == "circle"]
        per_class = faith["per_class"]["circle"]
        assert per_class["images"] == len(circles)
        if len(circles):
            assert per_class["deletion_auc"]["block map"] == pytest.approx(
                circles[f"{name} deletion AUC, block map"].mean(), abs=1e-12)
        else:
            assert per_class["deletion_auc"]["block map"] is None
    assert Image.open(tmp_path / "figures" / "faithfulness.png").size[0] > 600
    assert json.loads((tmp_path / "study.json").read_text()) == summary
    results = StudyResults.open(tmp_path)
    assert results.has_faithfulness and results.faithfulness_settings["scored"] == 6
    table = results.faithfulness_table("insertion")
    assert table["block"].tolist() == BLOCKS and table.loc[7, "block map"] == pytest.approx(
        summary["blocks"][7]["faithfulness"]["insertion_auc"]["block map"])
    by_class = results.faithfulness_by_class("layer2.0")
    assert by_class.index.tolist() == results.classes and by_class["images"].sum() == 6
    with pytest.raises(ValueError, match="holds a study made with other arguments"):
        run_study("shapes:v2:1:24", shapes_model, tmp_path, batch_size=4, shard_size=8, workers=0, progress=False)


@pytest.mark.slow
def test_an_image_folder_without_masks_is_scored_in_every_class(shapes_model, tmp_path):
    summary = run_study(str(image_folder(tmp_path / "data")), shapes_model, tmp_path / "out", batch_size=2, shard_size=2, workers=0,
                        progress=False, faithfulness=Faithfulness(2, steps=2, fill="mean"))
    entry = summary["blocks"][-1]
    assert "localisation" not in entry and entry["faithfulness"]["images"] == 2
    assert {c: s["images"] for c, s in entry["faithfulness"]["per_class"].items()} == {"circle": 1, "square": 1}
    images = pd.read_parquet(tmp_path / "out" / "images.parquet")
    assert images[[f"layer4.1 {f}" for f in FIELDS]].notna().all(axis=1).tolist() == [False, False, True] * 2
    assert set(images[f"layer4.1 {BETTER[0]}"].dropna()) <= {0.0, 1.0}


@pytest.mark.slow             # runs the study end to end
def test_the_flag_alone_asks_for_200_images_and_bad_values_stop_before_any_work(shapes_model, tmp_path, capsys):
    assert study.main(["shapes:v2:0:8", "--model", shapes_model.source, "--out", str(tmp_path / "a"), "--batch-size",
                       "4", "--shard-size", "8", "--workers", "0", "--quiet", "--faithfulness",
                       "--faithfulness-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "\n                 deletion AUC: map " in out and "better than chance on" in out
    settings = json.loads((tmp_path / "a" / "study.json").read_text())["faithfulness"]
    assert (settings["images"], settings["scored"], settings["steps"], settings["fill"]) == (200, 8, 2, "blur")
    for argv, message in ((["--faithfulness", "0"], "--faithfulness must be at least 1, got 0"),
                          (["--faithfulness", "--faithfulness-steps", "0"], "--faithfulness-steps must be at least 1"),
                          (["--faithfulness-fill", "black"], "invalid choice: 'black'")):
        with pytest.raises(SystemExit) as stop:
            study.main(["shapes:v2:0:8", "--out", str(tmp_path / "x"), *argv])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
