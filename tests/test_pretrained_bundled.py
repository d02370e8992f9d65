"""The bundled offline models: they load with no network, and a fresh evaluation on generated
test images reproduces every number of their model card (but deletion and insertion, whose
measurement is checked in tests/test_lens_card_evaluation.py: they hold its settings here)."""
import json

import pytest
from safetensors import safe_open

import pretrained
from lens.card import TEST_IMAGES, TEST_SEED, evaluate, render_card
from pretrained.bundled import CARD_JSON, CARD_MD, WEIGHTS_DIR, card_entry

CARD = json.loads(CARD_JSON.read_text())
BUNDLED = [e.name for e in pretrained.available() if e.source == "bundled"]


def test_the_four_bundled_models_are_there_and_small():
    assert sorted(BUNDLED) == ["cbam-resnet18-shapes", "eca-resnet18-shapes", "plain-resnet18-shapes",
                               "se-resnet18-shapes"]
    assert BUNDLED[0] == pretrained.DEFAULT_MODEL
    assert sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.safetensors")) <= 40e6
    assert set(CARD) == set(BUNDLED)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_a_fresh_evaluation_reproduces_the_card(name):
    # everything but deletion and insertion (half a minute per image and model: lens.card --faithfulness-only;
    # tests/test_lens_card_evaluation.py checks how it is measured)
    result, card = evaluate(name), CARD[name]             # 500 fresh images per test set, seed 2026
    assert (TEST_SEED, TEST_IMAGES, result["test_images"]) == (2026, 500, card["test_images"])
    assert result["accuracy"].keys() == card["accuracy"].keys()
    for test_set, value in result["accuracy"].items():    # 3 images of 500: float noise across machines
        assert abs(value - card["accuracy"][test_set]) <= 0.006, test_set
    for band, measured in result["accuracy_by_size"].items():     # the same images: sizes come from the seed
        claimed = card["accuracy_by_size"][band]
        assert measured["images"] == claimed["images"] > 0, band
        assert abs(measured["accuracy"] - claimed["accuracy"]) <= 3 / claimed["images"] + 1e-9, band
    assert result.get("training_log") == card.get("training_log")
    assert (result.get("blocks") is None) == (name == "plain-resnet18-shapes")
    for block, measured in result.get("blocks", {}).items():
        claimed = card["blocks"][block]
        assert measured["pinned"] == pytest.approx(claimed["pinned"], abs=0.002), block
        assert measured["gate_off_cost"] == pytest.approx(claimed["gate_off_cost"], abs=0.61), block
        for name_of_map, scores in measured["localisation"].items():
            assert scores == pytest.approx(claimed["localisation"][name_of_map], abs=0.005), (block, name_of_map)


def test_the_card_holds_every_attention_blocks_deletion_and_insertion_as_measured():
    for name in BUNDLED:
        entry = card_entry(name)
        if entry["attention"] is None:
            assert "faithfulness" not in entry
            continue
        settings = entry["faithfulness"]
        assert {k: settings[k] for k in ("steps", "fill", "randoms", "seed", "band", "target")} == {
            "steps": 20, "fill": "blur", "randoms": 8, "seed": 0, "band": [0.05, 0.95],
            "target": "each image's top prediction"}
        assert 1 <= settings["scored"] == min(settings["images"], entry["test_images"]) and settings["seconds"] > 0
        for block, measured in entry["blocks"].items():
            faith = measured["faithfulness"]
            assert faith["images"] == settings["scored"], block
            for curve in ("deletion", "insertion"):
                aucs = faith[f"{curve}_auc"]
                assert all(0 <= v <= 1 for v in aucs.values()) and len(aucs) == 6, (block, curve)
                assert aucs["random 5%"] <= aucs["random"] <= aucs["random 95%"], (block, curve)
                for m in ("block map", "Grad-CAM"):        # shares of the images: whole images out of `scored`
                    shares = faith["better_than_chance"][m][curve], faith["inside_band"][m][curve]
                    assert sum(shares) <= 1 + 1e-12 and all(
                        abs(v * settings["scored"] - round(v * settings["scored"])) < 1e-9 for v in shares)


def test_the_card_is_its_measurements_rendered():
    assert CARD_MD.read_text() == render_card(CARD)
    assert list(CARD)[-1] == "plain-resnet18-shapes"      # the baselines' model, evaluated last


def test_weights_describe_themselves():
    with safe_open(str(WEIGHTS_DIR / "cbam-resnet18-shapes.safetensors"), "pt") as f:
        meta = f.metadata()
        dtypes = {str(f.get_tensor(k).dtype) for k in f.keys()}
    assert json.loads(meta["architecture"]) == {"depth": 18, "attention": "cbam", "width": 16, "num_classes": 10,
                                                "options": {"ratio": 4}}
    assert json.loads(meta["labels"])[:3] == ["circle", "square", "triangle"]
    assert dtypes == {"torch.float16", "torch.int64"}      # fp16 weights, int64 BN step counters
