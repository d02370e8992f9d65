"""The app's Study view (AppTest): a live study on fresh shapes and a saved study folder, with the
numbers of the library's own study of the same images."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import study_page
from lens.study import StudyModel, run_study
from lens.study_results import StudyResults

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def study_view() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.segmented_control(key="view").set_value("Study").run()
    return at


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
    at.toggle(key="study_run").set_value(True).run()
    assert not at.exception
    assert metrics(at)["Images"] == "200"
    # the bundled models were trained on shapes v2, so the live study renders v2 images
    expected = run_study(f"shapes:v2:{study_page.LIVE_SEED}:200", StudyModel("cbam-resnet18-shapes"), tmp_path,
                         batch_size=50, shard_size=500, workers=0, progress=False)
    assert metrics(at)["Accuracy"] == f"{expected['accuracy']:.1%}"
    shown = table(at, "block")
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), StudyResults.open(tmp_path).block_table())
    assert shown["block"].tolist()[-1] == "layer4.1" and at.selectbox(key="study_block").value == "layer4.1"
    at.selectbox(key="study_block").set_value("layer2.0").run()
    assert "**Mean excitation of each channel of `layer2.0`, per class**" in [m.value.split(" (")[0]
                                                                              for m in at.markdown]
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
    monkeypatch.setattr(study_page, "STUDIES_ROOT", tmp_path)
    at = study_view()
    at.radio(key="study_source").set_value("Open a saved study").run()
    assert f"No saved studies in `{tmp_path}`" in at.info[0].value
    tiny = StudyModel("cbam-resnet18-shapes")
    run_study("shapes:v1:5:40", tiny, tmp_path / "forty", batch_size=20, shard_size=40, workers=0, progress=False)
    (tmp_path / "unfinished" / "shards").mkdir(parents=True)
    at.run()
    assert at.selectbox(key="study_folder").options == ["forty"]
    assert metrics(at)["Images"] == "40"
    assert table(at, "block")["block"].tolist()[0] == "layer1.0"
