"""The app's Study view (AppTest): a live study on fresh shapes and a saved study folder, with the
numbers of the library's own study of the same images; saved studies only from inside the studies
folder, their text literal, and no server path or command on the page."""
import html
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lens.study import StudyModel, run_study
from lens.study_faithfulness import CURVES, MAPS, RANDOM, Faithfulness
from lens.study_results import StudyResults
from views import study as view

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def study_view() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.segmented_control(key="view").set_value("Study").run()
    return at


def saved_study_view() -> AppTest:
    at = study_view()
    at.radio(key="study_source").set_value("Open a saved study").run()
    return at


def page_text(at: AppTest) -> str:
    """Every element's message, as Streamlit would send it to the browser."""
    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)
    return "\n".join(str(n.proto) for root in (at.main, at.sidebar) for n in walk(root) if hasattr(n, "proto"))


def write_study(folder: Path, block: str, classes: list[str], model_name: str = "m", faithfulness: bool = False
                ) -> None:
    """A finished study of one 3-channel CBAM block, written by hand: only what the view reads."""
    folder.mkdir(parents=True)
    entry = {"block": block, "kind": "cbam", "channels": 3, "images": 4, "inter_class_correlation": 0.5,
             "eta_squared": 0.25, "saturated_share": 0.0, "dead_channels": 0, "saturated_channels": 0,
             "static_channels": 0}
    summary = {"images": 4, "failed": [], "blocks": [entry], "classes": classes, "input_size": 32,
               "model_name": model_name}
    if faithfulness:
        scores = {"images": 2, **{f"{c}_auc": {m: 0.5 for m in (*MAPS, *RANDOM)} for c in CURVES},
                  "better_than_chance": {m: {c: 0.5 for c in CURVES} for m in MAPS[:2]}}
        entry["faithfulness"] = {**scores, "per_class": {c: scores for c in classes}}
        summary["faithfulness"] = {**Faithfulness(4).settings(), "scored": 4}
    (folder / "study.json").write_text(json.dumps(summary))
    pd.DataFrame({"label_name": classes}).to_parquet(folder / "images.parquet")
    pd.DataFrame([{"block": block, "class_name": c, "channel": i, "mean": 0.1 * i + k} for k, c in enumerate(classes)
                  for i in range(3)]).to_parquet(folder / "channels.parquet")
    pd.DataFrame([{"block": block, "class_name": c, "height": 2, "width": 2, "mean_map": [0.0, 0.5, 0.5, 1.0]}
                  for c in classes]).to_parquet(folder / "maps.parquet")


def table(at: AppTest, column: str | None = None, row: str | None = None) -> pd.DataFrame:
    """The one table on the page whose first column is `column` (or whose first row is `row`)."""
    [found] = [d.value for d in at.dataframe if (d.value.columns[0], d.value.index[0])
               == (column or d.value.columns[0], row or d.value.index[0])]
    return found


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_a_live_study_shows_the_librarys_numbers_for_the_same_images(tmp_path):
    at = study_view()
    assert at.radio(key="study_source").value == "Run a small study here"
    assert at.selectbox(key="study_model").options == ["cbam-resnet18-shapes", "eca-resnet18-shapes",
                                                      "se-resnet18-shapes"]     # the plain model has no gates
    at.selectbox(key="study_size").set_value(20).run()
    assert not at.metric                                     # nothing runs until asked
    at.button(key="study_run").click().run()
    assert not at.exception
    assert metrics(at)["Images"] == "200"
    # the bundled models were trained on shapes v2, so the live study renders v2 images
    expected = run_study(f"shapes:v2:{view.LIVE_SEED}:200", StudyModel("cbam-resnet18-shapes"), tmp_path,
                         batch_size=50, shard_size=500, workers=0, progress=False)
    assert metrics(at)["Accuracy"] == f"{expected['accuracy']:.1%}"
    shown = table(at, "block")
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), StudyResults.open(tmp_path).block_table())
    assert shown["block"].tolist()[-1] == "layer4.1" and at.selectbox(key="study_block").value == "layer4.1"
    at.selectbox(key="study_block").set_value("layer2.0").run()
    assert "**Mean excitation of each channel of layer2\\.0, per class**" in [m.value.split(" (")[0]
                                                                              for m in at.markdown]
    reading = StudyResults.open(tmp_path).class_dependence("layer2.0")            # written from its numbers
    assert reading.startswith("the lines") and "eta² 0." in reading
    assert any(m.value.endswith(f"({reading})") for m in at.markdown)
    localisation = table(at, row="mass ratio")
    assert localisation.index.tolist() == ["mass ratio", "pointing game", "AUC"]
    assert localisation.loc["AUC", "uniform (baseline)"] == pytest.approx(0.5)
    assert np.isnan(localisation.loc["pointing game", "uniform (baseline)"])    # a flat map points nowhere
    by_class = table(at, row="circle")
    reference = StudyResults.open(tmp_path)
    pd.testing.assert_frame_equal(by_class, reference.localisation_by_class("layer2.0"))
    assert by_class.index.tolist() == reference.classes and by_class.columns[-1] == "AUC, centred Gaussian"
    images = pd.read_parquet(tmp_path / "images.parquet")
    circles = images[images["label_name"] == "circle"]
    assert by_class.loc["circle", "AUC"] == pytest.approx(circles["layer2.0 AUC"].mean(), abs=1e-9)
    assert [b.label for b in at.get("download_button")] == ["study.json", "images.parquet", "channels.parquet",
                                                            "maps.parquet"]


def test_saved_studies_are_listed_from_the_studies_folder_only(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "studies", tmp_path / "elsewhere"
    root.mkdir()
    monkeypatch.setattr(view, "STUDIES_ROOT", root)
    at = saved_study_view()
    assert at.info[0].value.startswith("No saved study is available on this server.")
    tiny = StudyModel("cbam-resnet18-shapes")
    run_study("shapes:v1:5:40", tiny, elsewhere / "forty", batch_size=20, shard_size=40, workers=0, progress=False)
    shutil.copytree(elsewhere / "forty", root / "forty")
    (root / "unfinished" / "shards").mkdir(parents=True)
    (root / "linked").symlink_to(elsewhere / "forty", target_is_directory=True)      # a folder outside
    shutil.copytree(elsewhere / "forty", root / "half", ignore=shutil.ignore_patterns("study.json"))
    (root / "half" / "study.json").symlink_to(elsewhere / "forty" / "study.json")     # a file outside
    (root / "inside").symlink_to(root / "forty", target_is_directory=True)          # a link within the root
    at.run()
    assert at.selectbox(key="study_folder").options == ["forty", "inside"]
    assert metrics(at)["Images"] == "40"
    assert table(at, "block")["block"].tolist()[0] == "layer1.0"


def test_a_study_with_faithfulness_shows_its_aucs_beside_the_baselines_and_the_band(tmp_path, monkeypatch):
    monkeypatch.setattr(view, "STUDIES_ROOT", tmp_path)
    run_study("shapes:v2:5:8", StudyModel("cbam-resnet18-shapes"), tmp_path / "faith", batch_size=4, shard_size=8,
              workers=0, progress=False, faithfulness=Faithfulness(4, steps=2))
    write_study(tmp_path / "plain", "layer1.0", ["a", "b"])
    results = StudyResults.open(tmp_path / "faith")
    at = saved_study_view()
    assert at.selectbox(key="study_folder").value.name == "faith"
    assert not at.exception and not at.error
    [heading] = [m.value for m in at.markdown if m.value.startswith("**Does the model use what each block's map")]
    assert "cbam\\-resnet18\\-shapes on 4 images spread over the source, blur fill, 2 steps, 8 random maps" in heading
    shown = [d.value for d in at.dataframe if "block map better than chance" in d.value.columns]
    assert len(shown) == 3                                        # deletion, insertion, then per class
    for table, curve in zip(shown, ("deletion", "insertion")):
        pd.testing.assert_frame_equal(table.reset_index(drop=True), results.faithfulness_table(curve))
        assert table["block"].tolist()[-1] == "layer4.1" and (table["images"] == 4).all()
        assert (table["random 5%"] <= table["random"]).all() and (table["random"] <= table["random 95%"]).all()
    pd.testing.assert_frame_equal(shown[2], results.faithfulness_by_class("layer4.1"))
    assert shown[2]["images"].sum() == 4
    images = len(at.get("image"))
    at.selectbox(key="study_folder").set_value(tmp_path / "plain").run()       # a study without faithfulness
    assert not at.exception and not [m for m in at.markdown if m.value.startswith("**Does the model use")]
    assert not [d for d in at.dataframe if "block map better than chance" in d.value.columns]
    assert len(at.get("image")) == images - 1                    # no faithfulness figure


def test_without_saved_studies_the_page_names_no_path_or_command_and_the_log_does(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(view, "STUDIES_ROOT", tmp_path / "studies")
    with caplog.at_level(logging.WARNING, logger="views.study"):
        at = saved_study_view()
    assert not at.exception
    text = page_text(at)
    assert "No saved study is available on this server" in text
    assert "Run a small study here" in at.info[0].value                      # what the visitor can do instead
    for secret in (str(tmp_path), str(ROOT), "python -m", "--out", "ATTENTION_LENS_STUDIES"):
        assert secret not in text
    [record] = [r for r in caplog.records if r.name == "views.study"]
    assert record.levelno == logging.WARNING
    assert f"no finished study in {tmp_path / 'studies'}" in record.getMessage()
    assert f"python -m lens study shapes:v2:7:2000 --out {tmp_path / 'studies' / 'my-study'}" in record.getMessage()


def test_a_study_that_cannot_be_opened_names_no_path_to_the_visitor(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(view, "STUDIES_ROOT", tmp_path)
    write_study(tmp_path / "broken", "layer1.0", ["a", "b"])
    (tmp_path / "broken" / "maps.parquet").write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING, logger="views.study"):
        at = saved_study_view()
    assert at.error[0].value.startswith("The saved study broken cannot be opened")
    assert str(tmp_path) not in page_text(at)
    assert any(str(tmp_path / "broken") in r.getMessage() for r in caplog.records if r.name == "views.study")


EVIL = "a`b` **bold** <script>alert(1)</script> [link](javascript:alert(1))\nnext"


def rendered(markdown: str) -> str:
    """The markdown as CommonMark with raw HTML and autolinks on: the most a renderer reads into it."""
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark", {"linkify": True, "html": True}).enable("linkify").render(markdown)


def test_block_and_class_names_from_a_study_file_are_literal(tmp_path, monkeypatch):
    monkeypatch.setattr(view, "STUDIES_ROOT", tmp_path)
    write_study(tmp_path / "evil", EVIL, [f"{EVIL} 1", "plain"], model_name=EVIL, faithfulness=True)
    at = saved_study_view()
    assert not at.exception and not at.error
    assert at.selectbox(key="study_block").value == EVIL
    shown = " ".join(EVIL.split("\n"))
    for start in ("**Does the model use what each block's map marks?**", "Per class at "):
        [markdown] = [m.value for m in at.markdown if m.value.startswith(start)]
        page = rendered(markdown)
        assert not re.search(r"<(a|script|code|em|img)\b", page), page
        assert shown in html.unescape(re.sub(r"<[^>]+>", "", page))
    for heading in ("Mean excitation of each channel of", "Mean map of"):
        [markdown] = [m.value for m in at.markdown if m.value.startswith(f"**{heading} ")]
        page = rendered(markdown)
        assert not re.search(r"<(a|script|code|em|img)\b", page), page
        assert [html.unescape(bold) for bold in re.findall(r"<strong>(.*?)</strong>", page)] == [
            f"{heading} {shown}, per class"]
