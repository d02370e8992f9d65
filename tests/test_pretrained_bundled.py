"""The bundled offline models: they load with no network, reach the accuracy their model card
claims on freshly generated test images, and the card's localisation scores are reproduced."""
import json

import pytest
from safetensors import safe_open

import pretrained
from pretrained.bundled import WEIGHTS_DIR
from pretrained.model_card import CARD_JSON, CARD_MD, TEST_IMAGES, TEST_SEED, evaluate

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
def test_accuracy_and_localisation_match_the_card(name):
    result = evaluate(name)                                # 500 fresh images, seed 2026
    assert (TEST_SEED, TEST_IMAGES) == (2026, 500)
    assert result["accuracy"] >= 0.95
    assert abs(result["accuracy"] - CARD[name]["accuracy"]) <= 0.02
    assert result["localisation"] == pytest.approx(CARD[name]["localisation"], abs=0.01)
    assert f"| `{name}` |" in CARD_MD.read_text()
    assert f"{CARD[name]['accuracy']:.1%}" in CARD_MD.read_text()


def test_weights_describe_themselves():
    with safe_open(str(WEIGHTS_DIR / "cbam-resnet18-shapes.safetensors"), "pt") as f:
        meta = f.metadata()
        dtypes = {str(f.get_tensor(k).dtype) for k in f.keys()}
    assert json.loads(meta["architecture"]) == {"depth": 18, "attention": "cbam", "width": 16, "num_classes": 10,
                                                "options": {"ratio": 4}}
    assert json.loads(meta["labels"])[:3] == ["circle", "square", "triangle"]
    assert dtypes == {"torch.float16", "torch.int64"}      # fp16 weights, int64 BN step counters


def test_cbam_spatial_attention_sits_on_the_object():
    """The point of the default model: CBAM's spatial gates favour the object over the clutter."""
    scores = CARD[pretrained.DEFAULT_MODEL]["localisation"]
    assert max(scores.values()) > 1.2
