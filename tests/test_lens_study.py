"""lens study: streaming statistics equal to the whole-dataset computation, resume, outputs, CLI."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import lens.study as study
from blocks import attention_resnet, capture_attention
from lens.agreement import pearson
from lens.localisation import MEASURES
from lens.study import Plan, StudyModel, run_study
from lens.study_source import StudyDataset, collate, masks_of, parse_source
from lens.study_stats import ACTIVITY_CHANNELS, DEAD_AT, SATURATED_AT, Partial, study_batch
from lens.study_results import FILES, StudyResults, saved_studies
from lens.study_summary import block_moments, summarise
from training.shapes import CLASSES

from conftest import randomize_batchnorm


@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory):
    """A tiny seeded CBAM ResNet for the 10 shapes classes, seeing 64-pixel images."""
    torch.manual_seed(0)
    model = randomize_batchnorm(attention_resnet(18, "cbam", num_classes=10, width=8, ratio=2)).eval()
    path = tmp_path_factory.mktemp("model") / "tiny-shapes.safetensors"
    save_file(model.state_dict(), str(path), metadata={
        "labels": json.dumps(list(CLASSES)), "preprocess": json.dumps({"input_size": 64, "crop_pct": 1.0})})
    return StudyModel(str(path))


def random_partial(rng, n: int, classes: int = 3, channels: int = 5) -> tuple[Partial, np.ndarray, np.ndarray]:
    weights, labels = rng.random((n, channels)), rng.integers(0, classes, n)
    from lens.study_stats import _class_moments
    count, mean, m2 = _class_moments(weights, labels, classes)
    return Partial({"b|count": count, "b|mean": mean, "b|m2": m2, "|images": count.copy()},
                   {"index": np.arange(n)}), weights, labels


def test_merged_partials_give_the_whole_datasets_class_means_and_variances():
    rng = np.random.default_rng(0)
    parts = [random_partial(rng, n) for n in (7, 1, 12, 5)]
    total = Partial()
    for part, _, _ in parts:
        total = total.merge(part)
    weights = np.concatenate([w for _, w, _ in parts])
    labels = np.concatenate([lab for _, _, lab in parts])
    for k in range(3):
        chosen = weights[labels == k]
        np.testing.assert_allclose(total.arrays["b|mean"][k], chosen.mean(0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(total.arrays["b|m2"][k], ((chosen - chosen.mean(0)) ** 2).sum(0), atol=1e-12)
    assert total.arrays["b|count"].tolist() == np.bincount(labels, minlength=3).tolist()
    _, _, variance, eta, pooled = block_moments(total, "b")
    np.testing.assert_allclose(variance, weights.var(0, ddof=1), atol=1e-12)
    between = sum((labels == k).sum() * (weights[labels == k].mean(0) - weights.mean(0)) ** 2 for k in range(3))
    total_ss = ((weights - weights.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(eta, between / total_ss, atol=1e-12)
    assert pooled == pytest.approx(between.sum() / total_ss.sum(), abs=1e-12)
    assert total.rows["index"].tolist() == list(range(7)) + [0] + list(range(12)) + list(range(5))


def test_a_partial_survives_its_file_format_exactly():
    part, _, _ = random_partial(np.random.default_rng(1), 9)
    part = Partial(part.arrays, {**part.rows, "image": np.array(["a.png", "b/ü.jpg"] * 4 + ["c"])},
                   {"index": np.array([3]), "reason": np.array(["the file is empty"])})
    back = Partial.from_bytes(part.to_bytes())
    for field in ("arrays", "rows", "failed"):
        mine, theirs = getattr(part, field), getattr(back, field)
        assert mine.keys() == theirs.keys()
        assert all(np.array_equal(mine[k], theirs[k]) for k in mine)


@pytest.mark.slow
def test_one_batch_matches_a_direct_capture(shapes_model):
    loaded = shapes_model.load()
    spec = parse_source("shapes:v2:3:12")
    batch = collate([StudyDataset(spec, loaded.preprocess)[i] for i in range(12)])
    labels = batch["label"].numpy()
    part = study_batch(loaded.model, batch["x"], labels, masks_of(batch), list(range(12)),
                       [spec.image_id(i) for i in range(12)], loaded.labels, 10)
    capture = capture_attention(loaded.model, batch["x"], channel_maps=ACTIVITY_CHANNELS)
    for record in capture.layers:
        w = record.channel.double().numpy()
        for k in set(labels.tolist()):
            np.testing.assert_allclose(part.arrays[f"{record.name}|mean"][k], w[labels == k].mean(0), atol=1e-12)
            assert part.arrays[f"{record.name}|high"][k].tolist() == (w[labels == k] >= SATURATED_AT).sum(0).tolist()
            assert part.arrays[f"{record.name}|low"][k].tolist() == (w[labels == k] <= DEAD_AT).sum(0).tolist()
        np.testing.assert_allclose(part.arrays[f"{record.name}|map_sum"].sum(0), record.spatial.double().sum(0).numpy(),
                                   atol=1e-9)
        scores = np.array([[score(record.spatial[i], masks_of(batch)[i]) for score in MEASURES.values()]
                           for i in range(12)])
        np.testing.assert_allclose(part.rows[f"{record.name} AUC"], scores[:, 2], atol=1e-12)
        finite = ~np.isnan(scores)
        assert part.arrays[f"{record.name}|score_count"].sum(0).tolist() == finite.sum(0).tolist()
        np.testing.assert_allclose(part.arrays[f"{record.name}|score_sum"].sum(0), np.where(finite, scores, 0).sum(0),
                                   atol=1e-9)
    probabilities = capture.logits.double().softmax(1).numpy()
    assert part.rows["predicted"].tolist() == probabilities.argmax(1).tolist()
    assert part.rows["image"][4] == "shapes:v2:3:4"


def test_summary_figures_equal_a_direct_computation_over_all_images():
    rng = np.random.default_rng(2)
    total = Partial()
    for n in (10, 30, 20):
        total = total.merge(random_partial(rng, n)[0])
    total.arrays.update({"b|high": np.zeros((3, 5), np.int64), "b|low": np.zeros((3, 5), np.int64)})
    total.arrays["b|high"][:, 2] = total.arrays["b|count"]          # channel 2 saturated in every image
    total.arrays["b|low"][:, 4] = total.arrays["b|count"]           # channel 4 shut in every image
    entry = summarise(total, [("b", "se")], ("x", "y", "z"))["blocks"][0]
    means = total.arrays["b|mean"]
    expected = np.mean([pearson(means[i], means[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert entry["inter_class_correlation"] == pytest.approx(expected, abs=1e-12)
    assert (entry["saturated_channels"], entry["dead_channels"], entry["images"]) == (1, 1, 60)
    assert entry["class_correlation"][1][2] == pytest.approx(pearson(means[1], means[2]), abs=1e-12)


def test_a_plan_forms_the_same_batches_whatever_the_engine():
    plan = Plan(10, 2, 4)
    assert plan.shards == 3
    assert plan.batches(2) == [[8, 9]]
    assert plan.batches(1) == [[4, 5], [6, 7]]
    with pytest.raises(ValueError, match=r"the shard size \(5\) must be a multiple of the batch size \(2\)"):
        Plan(10, 2, 5)


def test_sources_are_parsed_with_messages_that_say_what_to_write(tmp_path):
    assert len(parse_source("shapes:v2:7:2000")) == 2000
    assert parse_source("shapes:v1:0:5").has_masks
    for text, message in (("shapes:v2:7", "write a shapes source as shapes:v2:SEED:N"),
                          ("shapes:v3:0:5", "shapes version must be one of"),
                          ("shapes:v2:0:0", "needs at least 1 image"),
                          (str(tmp_path / "missing"), "is neither a folder nor a shapes source")):
        with pytest.raises(ValueError, match=message):
            parse_source(text)
    with pytest.raises(ValueError, match="has no class folders"):
        parse_source(str(tmp_path))
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="has class folders but no images"):
        parse_source(str(tmp_path))


def run(shapes_model, out, source="shapes:v2:1:24", **options):
    return run_study(source, shapes_model, out, batch_size=4, shard_size=8, workers=0, progress=False, **options)


@pytest.mark.slow             # runs the study end to end
def test_a_study_writes_its_tables_and_figures(shapes_model, tmp_path):
    summary = run(shapes_model, tmp_path)
    assert summary["images"] == 24 and summary["failed"] == [] and summary["labels_match_model"]
    images = pd.read_parquet(tmp_path / "images.parquet")
    assert len(images) == 24 and images["index"].tolist() == list(range(24))
    assert images["correct"].mean() == pytest.approx(summary["accuracy"])
    blocks = [b["block"] for b in summary["blocks"]]
    assert blocks == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    channels = pd.read_parquet(tmp_path / "channels.parquet")
    assert len(channels) == 10 * (8 + 8 + 16 + 16 + 32 + 32 + 64 + 64)
    maps = pd.read_parquet(tmp_path / "maps.parquet")
    assert len(maps) == 8 * 10 and maps["height"].tolist()[:2] == [16, 16]
    first = summary["blocks"][0]
    assert set(first["localisation"]) == set(MEASURES) and set(summary["baselines"]) == {"centred Gaussian", "uniform"}
    assert summary["baselines"]["uniform"]["mass ratio"]["mean"] == pytest.approx(1.0)
    assert summary["baselines"]["uniform"]["AUC"]["mean"] == pytest.approx(0.5)
    rows = channels[(channels.block == "layer2.0") & (channels["class"] == 3)]
    assert len(rows) == 16 and rows["images"].iloc[0] == (images.label == 3).sum()
    for name in ("class_specificity.png", "channel_health.png", "excitations/layer4.1.png", "maps/layer1.0.png"):
        assert Image.open(tmp_path / "figures" / name).size[0] > 300
    assert json.loads((tmp_path / "study.json").read_text()) == summary


def test_a_folder_of_studies_is_read_without_following_links_out_of_it(tmp_path):
    root, outside = tmp_path / "studies", tmp_path / "outside"
    for folder in (root / "own", root / "models" / "m1", root / "half", root / "unfinished", outside / "study"):
        folder.mkdir(parents=True)
    for name in FILES:
        (root / "own" / name).write_text("")
        (root / "models" / "m1" / name).write_text("")               # --model A B: a folder per model
        (outside / "study" / name).write_text("")
        if name != "study.json":
            (root / "half" / name).write_text("")
    (root / "half" / "study.json").symlink_to(outside / "study" / "study.json")
    (root / "linked").symlink_to(outside / "study", target_is_directory=True)
    (root / "alias").symlink_to(root / "own", target_is_directory=True)
    (root / "unfinished" / "study.json").write_text("")
    (root / "models" / "linked").symlink_to(outside / "study", target_is_directory=True)
    assert saved_studies(root) == [root / "alias", root / "models" / "m1", root / "own"]
    assert saved_studies(tmp_path / "none") == []
    for folder in (root / "half", root / "linked"):
        with pytest.raises(ValueError, match="leads out of .*studies: only studies inside it are opened"):
            StudyResults.open(folder, root)


@pytest.mark.slow             # runs the study end to end
def test_an_interrupted_study_resumes_from_its_last_shard_and_gives_the_same_result(shapes_model, tmp_path,
                                                                                  monkeypatch):
    whole = run(shapes_model, tmp_path / "whole")
    calls, real = [], study.compute_batch

    def interrupted(*args):
        if len(calls) == 5:                     # in the middle of the third shard
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(study, "compute_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(shapes_model, tmp_path / "resumed")
    assert sorted(p.name for p in (tmp_path / "resumed" / "shards").glob("*.npz")) == ["shard-00000.npz",
                                                                                      "shard-00001.npz"]
    monkeypatch.setattr(study, "compute_batch", lambda *args: calls.append(1) or real(*args))
    calls.clear()
    assert run(shapes_model, tmp_path / "resumed") == {**whole}
    assert len(calls) == 2                      # only the third shard's two batches
    for table in ("images", "channels"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole" / f"{table}.parquet"),
                                      pd.read_parquet(tmp_path / "resumed" / f"{table}.parquet"))


@pytest.mark.slow             # runs the study end to end
def test_a_folder_with_other_arguments_is_not_mixed_in(shapes_model, tmp_path):
    run(shapes_model, tmp_path, "shapes:v2:1:8")
    with pytest.raises(ValueError, match="holds a study made with other arguments"):
        run(shapes_model, tmp_path, "shapes:v2:2:8")


def image_folder(root, classes=("circle", "square"), per_class: int = 3):
    """`root` with a folder of `per_class` random 50 x 70 PNGs for each class: an ImageFolder, no masks."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_an_image_folder_study_skips_unreadable_files_and_has_no_localisation(shapes_model, tmp_path):
    image_folder(tmp_path / "data")
    (tmp_path / "data" / "square" / "broken.png").write_bytes(b"not an image")
    summary = run(shapes_model, tmp_path / "out", str(tmp_path / "data"))
    assert summary["images"] == 6 and summary["per_class_images"] == {"circle": 3, "square": 3}
    assert summary["failed"] == [{"image": str(tmp_path / "data" / "square" / "broken.png"),
                                  "reason": "not an image in a supported format (JPEG, PNG, WEBP, BMP, GIF, TIFF)"}]
    assert "localisation" not in summary["blocks"][0] and "baselines" not in summary
    images = pd.read_parquet(tmp_path / "out" / "images.parquet")
    assert images["label_name"].tolist() == ["circle"] * 3 + ["square"] * 3


@pytest.mark.slow             # runs the study end to end
def test_the_command_runs_a_study_and_reports_bad_arguments(shapes_model, tmp_path, capsys):
    assert study.main(["shapes:v2:0:8", "--model", shapes_model.source, "--out", str(tmp_path), "--batch-size", "4",
                       "--shard-size", "8", "--workers", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{shapes_model.source}: 8 images studied -> {tmp_path}\n  layer1.0   cbam  inter-class r")
    for argv, message in ((["shapes:v2:0"], "write a shapes source as shapes:v2:SEED:N"),
                          (["shapes:v2:0:8", "--batch-size", "3"], "must be a multiple of the batch size (3)"),
                          (["shapes:v2:0:8", "--device", "tpu"], "--device: unknown device 'tpu'")):
        with pytest.raises(SystemExit) as stop:
            study.main(argv + ["--out", str(tmp_path / "x")])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


def test_ray_actors_always_leave_a_cpu_to_the_tasks_that_feed_them():
    from lens.study_ray import actor_resources
    assert actor_resources(2) == (2, 0.5)               # whole CPUs each would starve the reads: it hangs
    assert actor_resources(2, 4) == (4, 0.25)
    assert actor_resources(1) == (1, 0.5)
    assert actor_resources(16) == (16, 15 / 16)
    assert actor_resources(64, 8) == (8, 1.0)
    for cpus, actors in ((2, None), (3, 2), (1, 3), (8, None)):
        n, each = actor_resources(cpus, actors)
        assert n * each <= max(cpus - 1, cpus / 2)
    with pytest.raises(ValueError, match="has no CPUs"):
        actor_resources(0)


@pytest.mark.slow
def test_the_ray_engine_gives_the_single_process_result(shapes_model, tmp_path):
    """A local Ray instance, two model actors: the same integer counts, means within 1e-6, the same
    faithfulness scores (the actors get the settings)."""
    from lens.study_faithfulness import Faithfulness
    faithfulness = Faithfulness(3, steps=2)
    local = run(shapes_model, tmp_path / "local", faithfulness=faithfulness)
    distributed = run(shapes_model, tmp_path / "ray", engine="ray", ray_workers=2, faithfulness=faithfulness)
    assert local["faithfulness"] == distributed["faithfulness"] and local["faithfulness"]["scored"] == 3
    for mine, theirs in zip(local["blocks"], distributed["blocks"]):
        for key in ("images", "dead_channels", "saturated_channels", "static_channels"):
            assert mine[key] == theirs[key]
        for key in ("inter_class_correlation", "eta_squared", "saturated_share", "weight_std"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-6)
        for curve in ("deletion_auc", "insertion_auc"):
            assert mine["faithfulness"][curve] == pytest.approx(theirs["faithfulness"][curve], abs=1e-6)
    tables = {engine: pd.read_parquet(tmp_path / engine / "channels.parquet") for engine in ("local", "ray")}
    assert tables["local"]["images"].tolist() == tables["ray"]["images"].tolist()
    np.testing.assert_allclose(tables["local"]["mean"], tables["ray"]["mean"], rtol=0, atol=1e-6)
    images = {engine: pd.read_parquet(tmp_path / engine / "images.parquet") for engine in ("local", "ray")}
    assert images["local"]["predicted"].tolist() == images["ray"]["predicted"].tolist()


@pytest.mark.slow             # runs the study end to end
def test_several_models_are_studied_side_by_side_and_a_model_without_gates_is_skipped(shapes_model, tmp_path,
                                                                                       capsys):
    files = {}
    for kind in ("se", None):
        torch.manual_seed(1)
        model = attention_resnet(18, kind, num_classes=10, width=8, ratio=2).eval()
        files[kind] = tmp_path / f"tiny-{kind or 'plain'}.safetensors"
        save_file(model.state_dict(), str(files[kind]), metadata={
            "labels": json.dumps(list(CLASSES)), "preprocess": json.dumps({"input_size": 64, "crop_pct": 1.0})})
    status = study.main(["shapes:v2:0:8", "--model", shapes_model.source, str(files["se"]), str(files[None]),
                         "--out", str(tmp_path / "out"), "--batch-size", "8", "--shard-size", "8", "--workers", "0",
                         "--quiet"])
    assert status == 0
    out = capsys.readouterr().out
    assert f"{files[None]}: no SE, ECA or CBAM attention blocks, nothing to study (skipped)" in out
    comparison = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert list(comparison) == [shapes_model.source, str(files["se"])]
    assert [b["kind"] for b in comparison[str(files["se"])]] == ["se"] * 8
    single = json.loads((tmp_path / "out" / "tiny-se" / "study.json").read_text())
    assert comparison[str(files["se"])][7]["eta_squared"] == single["blocks"][7]["eta_squared"]
    assert Image.open(tmp_path / "out" / "class_specificity.png").size[0] > 400


def test_class_correlations_equal_pearson_with_absent_and_constant_classes():
    from lens.study_summary import class_correlation
    rng = np.random.default_rng(0)
    means, count = rng.random((6, 20)), np.array([3, 0, 2, 4, 1, 5])
    means[2] = 0.5                                      # a saturated class: its mean weights are all equal
    matrix = class_correlation(count, means)
    for i in range(6):
        for j in range(6):
            expected = np.nan if 0 in (count[i], count[j]) else 1.0 if i == j else pearson(means[i], means[j])
            np.testing.assert_allclose(matrix[i, j], expected, atol=1e-12)


def test_the_engines_share_the_batch_function_without_importing_each_other():
    import ast
    from pathlib import Path

    def imports(name: str) -> set[str]:
        tree = ast.parse((Path(study.__file__).parent / f"{name}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}

    assert "study_batch" in imports("study") and "study_batch" in imports("study_ray")
    assert "study" not in imports("study_ray") | imports("study_batch")
    from lens import study_batch, study_ray
    assert study.compute_batch is study_batch.compute_batch is study_ray.compute_batch


def test_the_class_dependence_caption_is_written_from_the_numbers():
    from pathlib import Path
    from lens.study_results import CLASS_AGNOSTIC, CLASS_SPECIFIC, StudyResults
    assert (CLASS_AGNOSTIC, CLASS_SPECIFIC) == (0.1, 0.5)
    for eta, r, start in ((0.05, 0.98, "the lines lie nearly on top of each other (eta² 0.05, inter-class r 0.98)"),
                          (0.0999, 0.9, "the lines lie nearly on top of each other"),
                          (0.1, 0.9, "the lines differ in places (eta² 0.10"),           # the thresholds' own values
                          (0.30, 0.80, "the lines differ in places (eta² 0.30"),
                          (0.4999, 0.5, "the lines differ in places"),
                          (0.5, 0.5, "the lines differ (eta² 0.50, inter-class r 0.50): the class explains most"),
                          (0.75, 0.30, "the lines differ (eta² 0.75, inter-class r 0.30): the class explains most")):
        summary = {"blocks": [{"block": "layer4.1", "eta_squared": eta, "inter_class_correlation": r}]}
        results = StudyResults(Path("."), summary, pd.DataFrame(), pd.DataFrame())
        assert results.class_dependence("layer4.1").startswith(start), (eta, results.class_dependence("layer4.1"))


@pytest.mark.slow
def test_a_fourth_attention_kind_passes_through_a_study(fake_kind, tmp_path):
    """A kind registered in blocks.sites only: the study measures it, writes its figures and reads
    it back under its record's name, beside deletion and insertion."""
    from lens.study import StudyModel
    from lens.study_faithfulness import Faithfulness
    from lens.study_results import StudyResults
    image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=2)
    loaded = fake_kind.loaded()
    summary = run_study(str(tmp_path / "data"), StudyModel("toy"), tmp_path / "out", batch_size=2, shard_size=2,
                        workers=0, progress=False, loaded=loaded,
                        faithfulness=Faithfulness(images=2, steps=4, randoms=2))
    assert [b["kind"] for b in summary["blocks"]] == [fake_kind.kind.name] * 8
    results = StudyResults.open(tmp_path / "out")
    assert set(results.block_table()["kind"]) == {fake_kind.kind.display}
    assert results.maps_figure("layer4.1") is not None and results.has_faithfulness
    assert set(results.faithfulness_table("deletion")["kind"]) == {fake_kind.kind.display}
