"""lens.sanity: the cascading-randomisation check read against a null band over the map's cells, and
the untrained-model hint (a random-initialised model gets it, a bundled trained one does not)."""
import math
from dataclasses import replace

import pytest
import torch

import pretrained
from blocks import attention_resnet
from lens import inspect_image
from lens.sanity import Sanity, model_hint, null_band, sanity_report

STAR = "assets/shapes-star.png"


@pytest.fixture(scope="module")
def bundled():
    return pretrained.load("cbam-resnet18-shapes")


def test_a_trained_bundled_model_gets_no_hint(bundled):
    assert model_hint(inspect_image(bundled, STAR)) is None


@pytest.mark.parametrize("kind", ["se", "eca", "cbam"])
def test_a_random_initialised_model_is_said_to_look_untrained(bundled, kind):
    torch.manual_seed(0)
    untrained = replace(bundled, model=attention_resnet(18, kind, num_classes=10).eval())
    hint = model_hint(inspect_image(untrained, STAR))
    assert hint.startswith("This model looks untrained or broken: its predictions are close to uniform")
    assert "over 10 classes" in hint
    # SE/ECA gates of an untrained model sit near 0.5; CBAM's spatial gates follow BatchNorm's default statistics
    assert ("every attention gate of every block sits near 0.5" in hint) == (kind != "cbam")


def test_a_nan_output_is_left_to_the_output_note(bundled):
    broken = replace(bundled, model=attention_resnet(18, "se", num_classes=10).eval())
    with torch.no_grad():
        broken.model.fc.bias.fill_(float("nan"))
    inspection = inspect_image(broken, STAR)
    assert model_hint(inspection) is None and inspection.output_note


@pytest.mark.parametrize("cells", [16, 64, 1024])
def test_the_null_band_narrows_like_one_over_root_cells(cells):
    low, high = null_band(cells)
    expected = 1.645 / math.sqrt(cells - 1)          # Spearman's rho under independence: about N(0, 1/(n-1))
    assert high == pytest.approx(expected, rel=0.15) and low == pytest.approx(-expected, rel=0.15)
    assert null_band(cells) == (low, high)             # seeded


def test_sanity_report_runs_every_seed_and_counts_the_cells(bundled):
    inspection = inspect_image(bundled, STAR)
    report = sanity_report(inspection, "layer4.1", seeds=(0, 1))
    h, w = inspection.view("layer4.1").map.values.shape
    assert (report.block, report.cells, report.seeds) == ("layer4.1", h * w, (0, 1))
    assert report.map[0] == pytest.approx(inspection.sanity_check("layer4.1", 0)["map"])
    assert report.grad_cam[1] == pytest.approx(inspection.sanity_check("layer4.1", 1)["grad_cam"])
    assert report.null == null_band(h * w)
    sentence = report.sentence()
    assert f"over {h * w} cells, 2 seeds" in sentence and f"random maps of {h * w} cells" in sentence
    with pytest.raises(ValueError, match="seeds must be"):
        sanity_report(inspection, "layer4.1", seeds=())


@pytest.mark.parametrize("correlations, verdict, words", [
    ((0.9, 0.8), "fails", "barely changes the block's map"),
    ((0.1, -0.2), "passes", "as much as unrelated maps differ"),
    ((0.9, 0.1), "mixed", "for some seeds only"),
    ((float("nan"), 0.1), "flat", "ranks nothing"),
])
def test_the_verdict_reads_the_correlations_against_the_band(correlations, verdict, words):
    report = Sanity("layer3.1", 64, (0, 1), correlations, (0.0, 0.0), (-0.21, 0.21))
    assert report.verdict(correlations) == verdict and words in report.sentence()
