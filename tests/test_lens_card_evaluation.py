"""What the model card measures (`lens.card_evaluation`), checked on tiny seeded models against
measurements made another way: single-map scores, physically edited copies, gates set by hand."""
import copy
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import lens.card as card_command
import pretrained
from blocks import ACTIVITY_CHANNELS, attention_resnet, capture_attention, grad_cam
from blocks.attribution import block_outputs
from lens import Inspection, inspect_image
from lens.card import add_faithfulness, beats_baselines, recipe_reasons, render_card, targets
from lens.card_evaluation import (PLAIN_GRAD_CAM, PLAIN_MEAN, HeldOutSet, _summary, accuracy, accuracy_by_size,
                                  correct, faithfulness, gate_off_costs, localisation, pinned_shares)
from lens.faithfulness import block_panel
from lens.localisation import CENTRED_GAUSSIAN, auc, centred_gaussian, localisation_score, pointing_game
from lens.study_faithfulness import Faithfulness
from pretrained.bundled import CARD_JSON, to_input
from training.shapes import CLASSES, render, render_batch
from training.train import RECIPES

from conftest import randomize_batchnorm


@pytest.fixture(scope="module")
def test_images():
    return HeldOutSet.render(seed=7, count=12, size=96, version=2)


def tiny(kind, seed=0):
    torch.manual_seed(seed)
    return randomize_batchnorm(attention_resnet(18, kind, num_classes=10, width=8, ratio=4), seed).eval()


def own_labels(model, test):
    """The same images labelled with the model's own predictions: its accuracy is 100%."""
    with torch.inference_mode():
        predicted = model(next(test.batches())[0]).argmax(1)
    return HeldOutSet(test.images, test.masks, predicted, test.extents)


def test_a_held_out_set_is_the_rendered_scenes_with_their_object_sizes(test_images):
    images, masks, labels = render_batch(7, 0, 12, 96, 2)
    assert np.array_equal(test_images.images.numpy(), images) and np.array_equal(test_images.masks, masks)
    assert test_images.labels.tolist() == labels.tolist()
    assert test_images.extents.tolist() == [render(7, i, 96, 2).attributes.extent for i in range(12)]


def test_accuracy_by_size_splits_the_hits_by_the_objects_diameter(test_images):
    model = tiny("se")
    extents = np.array([0.1, 0.12, 0.2, 0.3, 0.3, 0.3, 0.6, 0.9, 0.49, 0.5, 0.15, 0.25])
    labels = own_labels(model, test_images).labels.clone()
    labels[extents < 0.25] += 1                                # wrong below a quarter of the side
    test = HeldOutSet(test_images.images, test_images.masks, labels % 10, extents)
    assert accuracy_by_size(correct(model, test), test.extents) == {
        "under 15%": {"images": 2, "accuracy": 0.0}, "15-25%": {"images": 2, "accuracy": 0.0},
        "25-50%": {"images": 5, "accuracy": 1.0}, "50% and over": {"images": 3, "accuracy": 1.0}}
    one_band = HeldOutSet(test.images, test.masks, test.labels, np.full(12, 0.3))
    assert accuracy_by_size(correct(model, one_band), one_band.extents)["under 15%"] == {"images": 0, "accuracy": None}


def test_pinned_shares_count_channel_weights_within_1e6_of_0_or_1(test_images):
    model = tiny("se")
    with torch.no_grad():
        for block, bias in ((model.layer1[0], 30.0), (model.layer1[1], 0.0), (model.layer2[0], -30.0)):
            block.attn.fc2.weight.zero_()
            block.attn.fc2.bias.fill_(bias)          # sigmoid(30) is within 1e-13 of 1; sigmoid(0) is 0.5
    shares = pinned_shares(model, test_images)
    assert (shares["layer1.0"], shares["layer1.1"], shares["layer2.0"]) == (1.0, 0.0, 1.0)
    with torch.inference_mode():
        w = capture_attention(model, next(test_images.batches())[0]).layer("layer3.1").channel.double()
    assert shares["layer3.1"] == float(((w <= 1e-6) | (w >= 1 - 1e-6)).double().mean())
    assert list(shares) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]


@pytest.mark.parametrize("kind", ["se", "eca", "cbam"])
def test_gate_off_cost_is_what_a_copy_without_that_blocks_attention_loses(kind, test_images):
    model = tiny(kind)
    test = own_labels(model, test_images)
    costs = gate_off_costs(model, test, ["layer1.1", "layer3.0"])
    for block, (stage, index) in (("layer1.1", (1, 1)), ("layer3.0", (3, 0))):
        edited = copy.deepcopy(model)
        getattr(edited, f"layer{stage}")[index].attn = nn.Identity()       # every gate 1
        assert costs[block] == pytest.approx(100 * (1 - accuracy(edited, test)))
    assert accuracy(model, test) == 1.0
    assert any(c > 0 for c in costs.values())                              # the check had something to see


def test_localisation_scores_each_map_as_the_single_map_measures_do(test_images):
    model, plain = tiny("cbam"), tiny(None, seed=1)
    result = localisation(model, plain, test_images)
    x, masks, labels = next(test_images.batches())
    block = "layer2.1"
    with torch.inference_mode():
        own = capture_attention(model, x).layer(block).spatial
        mean = block_outputs(plain, x, [block])[block].mean(1)
    cam = grad_cam(plain, x, block, target=labels)
    gaussian = centred_gaussian(masks.shape[1:])
    expected = {"attention": own, CENTRED_GAUSSIAN: [gaussian] * len(masks), PLAIN_MEAN: mean, PLAIN_GRAD_CAM: cam}
    for name, maps in expected.items():
        has_mass = np.array([np.asarray(m).sum() > 0 for m in maps])
        for measure, score in (("AUC", auc), ("mass ratio", localisation_score), ("pointing game", pointing_game)):
            singles = np.array([score(np.asarray(m), mask) for m, mask in zip(maps, masks)])[has_mass]
            assert result[block][name][measure] == pytest.approx(np.nanmean(singles), abs=1e-6), (name, measure)
        assert result[block][name]["defined"] == has_mass.mean()
    assert set(result) == {f"layer{s}.{b}" for s in range(1, 5) for b in range(2)}


def test_a_map_with_no_mass_is_left_out_of_the_means_and_counted():
    parts = [{"mass ratio": np.array([2.0, np.nan]), "pointing game": np.array([1.0, np.nan]),
              "AUC": np.array([0.75, 0.5])},
             {"mass ratio": np.array([np.nan]), "pointing game": np.array([np.nan]), "AUC": np.array([0.5])}]
    assert _summary(parts) == {"mass ratio": 2.0, "pointing game": 1.0, "AUC": 0.75, "defined": pytest.approx(1 / 3)}
    empty = [{"mass ratio": np.array([np.nan]), "pointing game": np.array([np.nan]), "AUC": np.array([0.5])}]
    assert _summary(empty) == {"mass ratio": None, "pointing game": None, "AUC": None, "defined": 0.0}


def block(pinned, cost, aucs):
    """A card's block entry with AUCs for the map and the three baselines."""
    names = ("attention", CENTRED_GAUSSIAN, PLAIN_MEAN, PLAIN_GRAD_CAM)
    return {"pinned": pinned, "gate_off_cost": cost,
            "localisation": {n: {"AUC": a, "mass ratio": 1.5, "pointing game": 0.5, "defined": 1.0}
                             for n, a in zip(names, aucs)}}


def test_targets_compare_each_measurement_with_its_threshold():
    card = {
        "cbam-resnet18-shapes": {
            "attention": "cbam", "parameters": 1, "file_bytes": 10**6, "dataset_version": 2, "test_images": 500,
            "mask_share": 0.2, "training": {"recipe": {}, "train_seconds": 600, "validation_accuracy": 0.9},
            "accuracy": {"in distribution": 0.95, "small": 0.899, "grayscale": 0.95, "low_contrast": 0.9,
                         "clutter": 0.97},
            "accuracy_by_size": {"under 15%": {"images": 50, "accuracy": 0.48}, "15-25%": {"images": 70, "accuracy": 0.76},
                                 "25-50%": {"images": 200, "accuracy": 0.96}, "50% and over": {"images": 0, "accuracy": None}},
            "blocks": {"layer1.0": block(0.05, 10.0, (0.9, 0.8, 0.85, 0.7)),
                       "layer1.1": block(0.049, 3.0, (0.8, 0.8, 0.7, 0.6)),      # a tie does not beat
                       "layer2.0": block(0.0, -1.0, (0.9, 0.8, 0.7, None))}},   # not measured: no claim
        "plain-resnet18-shapes": {"attention": None, "parameters": 1, "file_bytes": 10**6, "dataset_version": 2,
                                  "test_images": 500, "mask_share": 0.2,
                                  "training": {"recipe": {}, "train_seconds": 60, "validation_accuracy": 1.0},
                                  "accuracy": {"in distribution": 0.9499, "small": 0.9, "grayscale": 0.9,
                                               "low_contrast": 0.9, "clutter": 0.9}}}
    rows = {(r["model"][:4], r["target"].split()[0] + r["target"].split()[2]): (r["measured"], r["met"])
            for r in targets(card)}
    assert rows == {
        ("cbam", "accuracydistribution"): ("95.0%", True),
        ("cbam", "accuracyevery"): ("lowest: 89.9% (small)", False),
        ("cbam", "pinnedweights"): ("highest: 5.0% (layer1.0)", False),
        ("cbam", "attentioncosts"): ("10.0 points (layer1.0)", True),
        ("cbam", "spatialbeats"): ("1 of 3 blocks (layer1.0)", False),
        ("plai", "accuracydistribution"): ("95.0%", False),          # 94.99% rounds up but misses
        ("plai", "accuracyevery"): ("lowest: 90.0% (small)", True)}
    assert not beats_baselines(card["cbam-resnet18-shapes"]["blocks"]["layer1.1"]["localisation"])
    even = copy.deepcopy(card)
    for b in even["cbam-resnet18-shapes"]["blocks"].values():
        b["pinned"] = 0.00001
    assert targets(even)[2]["measured"] == "0.0% in every block" and targets(even)[2]["met"]
    text = render_card(card)
    assert ("| layer1.0 | 5.0% | +10.0 | 0.90 / 0.80 / 0.85 / 0.70 | 1.50 / 1.50 / 1.50 / 1.50 | "
            "0.50 / 0.50 / 0.50 / 0.50 | 100% / 100% / 100% / 100% |") in text
    assert "| layer2.0 | 0.0% | -1.0 | 0.90 / 0.80 / 0.70 / - |" in text
    assert ("| model | under 15% | 15-25% | 25-50% | 50% and over |\n|---|---|---|---|---|\n"
            "| `cbam-resnet18-shapes` | 48.0% (50) | 76.0% (70) | 96.0% (200) | - |\n\n") in text   # plain: no row
    absent = card["cbam-resnet18-shapes"]["blocks"]["layer2.0"]["localisation"][PLAIN_GRAD_CAM]
    absent.update({"mass ratio": None, "pointing game": None, "defined": 0.0})
    assert render_card(card).count("| 100% / 100% / 100% / - |") == 1
    assert "| `plain-resnet18-shapes` | none | 1 | 1.0 MB | 95.0% | 90.0% | 90.0% | 90.0% | 90.0% |" in text
    assert ("No training logs are bundled with these weights. Their metadata records the training's wall time and "
            "last validation accuracy: `cbam-resnet18-shapes` 10.0 min, 90.0%; `plain-resnet18-shapes` 1.0 min, 100.0%."
            ) in text


def test_without_a_plain_model_its_baselines_are_absent(test_images):
    result = localisation(tiny("eca"), None, test_images)["layer4.0"]
    for baseline in (PLAIN_MEAN, PLAIN_GRAD_CAM):
        assert result[baseline] == {"mass ratio": None, "pointing game": None, "AUC": None, "defined": 0.0}
    assert result[CENTRED_GAUSSIAN]["AUC"] is not None and result["attention"]["defined"] > 0


def test_the_card_names_the_recipe_and_argues_only_the_choices_it_makes():
    bundled = recipe_reasons(asdict(RECIPES[4])).splitlines()
    assert bundled[0].startswith('Recipe 4 of `training/train.py`: `{"dataset": 2, ')
    assert [line[:30] for line in bundled[1:]] == ["- No label smoothing: it caps ", "- Saturation is penalised wher",
                                                   "- The gates decay like every o", "- bf16 autocast and channels-l"]
    assert "0.1 x mean((|logit| - 6)+^2) " in bundled[2] and "= 0.0025..0.9975 " in bundled[2] and "> 13.8)" in bundled[2]
    assert recipe_reasons(asdict(RECIPES[2])).splitlines()[1:] == [
        bundled[1], "- The gates decay 2.0 (the other weights 0.05), to hold them off their rails."]
    assert recipe_reasons(asdict(RECIPES[3])).splitlines()[2:] == [
        "- The gates decay 0.5 (the other weights 0.05), to hold them off their rails.", bundled[4]]
    v1 = recipe_reasons({"epochs": 12})          # a log without the later fields: Recipe's defaults
    assert v1.startswith("Recipe 1 of") and "\n" not in v1
    pilot = recipe_reasons({**asdict(RECIPES[4]), "gate_weight_decay": 0.5}).splitlines()
    assert pilot[0].startswith("A recipe not in `training/train.py`")
    assert pilot[3] == "- The gates decay 0.5 (the other weights 0.05), to hold them off their rails."


def test_a_card_of_models_with_different_recipes_argues_each_models():
    card = {name: {"attention": None, "parameters": 1, "file_bytes": 10**6, "dataset_version": 2, "test_images": 5,
                   "mask_share": 0.2, "accuracy": {"in distribution": 0.9},
                   "training": {"recipe": asdict(RECIPES[n]), "train_seconds": 60, "validation_accuracy": 0.9}}
            for name, n in (("a", 4), ("b", 2))}
    text = render_card(card)
    assert "`a`: Recipe 4 of `training/train.py`" in text and "`b`: Recipe 2 of `training/train.py`" in text
    card["b"]["training"]["recipe"] = asdict(RECIPES[4])
    assert "\nRecipe 4 of `training/train.py`" in render_card(card) and "`a`: Recipe" not in render_card(card)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["se", "eca", "cbam"])
def test_the_cards_faithfulness_is_block_panel_averaged_over_its_first_images(kind, test_images):
    model, plan = tiny(kind), Faithfulness(3, steps=3)
    result = faithfulness(model, test_images, plan)                # the first 3 of the 12 images
    loaded = pretrained.LoadedModel(f"tiny-{kind}", "file", model, pretrained.Preprocess(96, 1.0, "bilinear"),
                                    CLASSES, "")
    panels = {}
    for i in range(3):
        inspection = inspect_image(loaded, Image.fromarray(test_images.images[i].numpy()))
        assert torch.equal(inspection.x, to_input(test_images.images[i:i + 1]))      # the image as the card sees it
        for name in result:
            panels.setdefault(name, []).append(block_panel(inspection, name, steps=3,    # the card's SE/ECA map:
                                                           top_k=ACTIVITY_CHANNELS))    # its 8 most-excited channels
    assert list(result) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    for name, measured in result.items():
        by_hand = panels[name]
        assert measured["images"] == 3
        for curve in ("deletion", "insertion"):
            maps = {"block map": [p.own for p in by_hand], "Grad-CAM": [p.grad_cam for p in by_hand],
                    "centred Gaussian": [p.gaussian for p in by_hand]}
            expected = {m: np.mean([getattr(s, f"{curve}_auc") for s in scores]) for m, scores in maps.items()}
            bands = np.array([getattr(p, f"random_{curve}") for p in by_hand])       # [3, mean / 5% / 95%]
            expected.update(zip(("random", "random 5%", "random 95%"), bands.mean(0)))
            # abs 1e-4: Grad-CAM over a batch of 3 rounds differently from one image's, which can swap pixels of
            # nearly equal rank (seen: 2e-5 at one SE block)
            assert measured[f"{curve}_auc"] == pytest.approx(expected, abs=1e-4), (name, curve)
            for m in ("block map", "Grad-CAM"):
                verdicts = [getattr(s, f"{curve}_verdict") for s in maps[m]]
                assert measured["better_than_chance"][m][curve] == verdicts.count("better than chance") / 3
                assert measured["inside_band"][m][curve] == verdicts.count("no better than chance") / 3
    shares = [v["inside_band"]["block map"]["deletion"] for v in result.values()]
    assert 0 < sum(shares) < len(shares)            # some images inside the band, some outside: a real check


@pytest.mark.slow
def test_adding_faithfulness_to_a_card_changes_nothing_else_and_the_command_renders_it(test_images, monkeypatch,
                                                                                       tmp_path):
    card = json.loads(CARD_JSON.read_text())
    card = {name: card[name] for name in ("cbam-resnet18-shapes", "plain-resnet18-shapes")}
    for entry in card.values():                  # as a card from before the faithfulness part
        entry.pop("faithfulness", None)
        for block in entry.get("blocks", {}).values():
            block.pop("faithfulness", None)
    model = tiny("cbam")
    loaded = pretrained.LoadedModel("tiny", "file", model, pretrained.Preprocess(96, 1.0, "bilinear"), CLASSES, "")
    monkeypatch.setattr(card_command, "load_trained", lambda path: loaded)
    plan = Faithfulness(2, steps=2)
    added = add_faithfulness(card, plan)
    assert "faithfulness" not in card["cbam-resnet18-shapes"]                  # the input is left as it was
    assert added["plain-resnet18-shapes"] == card["plain-resnet18-shapes"]
    cbam, before = added["cbam-resnet18-shapes"], card["cbam-resnet18-shapes"]
    assert {k: v for k, v in cbam.items() if k not in ("faithfulness", "blocks")} == \
        {k: v for k, v in before.items() if k != "blocks"}
    expected = faithfulness(model, HeldOutSet.render(2026, 2, 96, 2), plan)    # the card's first 2 images
    for block, measured in cbam["blocks"].items():
        assert {k: v for k, v in measured.items() if k != "faithfulness"} == before["blocks"][block]
        assert measured["faithfulness"] == expected[block]
    assert {k: v for k, v in cbam["faithfulness"].items() if k != "seconds"} == {**plan.settings(), "scored": 2}

    for name in card:
        (tmp_path / f"{name}.safetensors").touch()
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert card_command.main(["--weights", str(tmp_path), "--faithfulness", "2", "--faithfulness-only"]) == 0
    written = json.loads((tmp_path / "card.json").read_text())
    assert written["cbam-resnet18-shapes"]["blocks"]["layer4.1"]["faithfulness"]["images"] == 2
    assert (tmp_path / "MODEL_CARD.md").read_text() == render_card(written)
    assert "### `cbam-resnet18-shapes`: 2 images" in render_card(written)


def faithful(deletion, insertion, below, inside, cam_below=0.25):
    """A block's faithfulness entry: (block map, Grad-CAM, Gaussian, random mean, 5%, 95%) AUCs per curve."""
    names = ("block map", "Grad-CAM", "centred Gaussian", "random", "random 5%", "random 95%")
    return {"images": 40, "deletion_auc": dict(zip(names, deletion)), "insertion_auc": dict(zip(names, insertion)),
            "better_than_chance": {"block map": {"deletion": below, "insertion": 0.5},
                                   "Grad-CAM": {"deletion": cam_below, "insertion": 0.5}},
            "inside_band": {"block map": {"deletion": inside, "insertion": 0.5},
                            "Grad-CAM": {"deletion": 0.5, "insertion": 0.5}}}


def test_the_card_renders_each_blocks_deletion_and_insertion_and_reads_them_as_measured():
    card = json.loads(CARD_JSON.read_text())
    card = {name: card[name] for name in ("cbam-resnet18-shapes", "plain-resnet18-shapes")}
    cbam = card["cbam-resnet18-shapes"]
    cbam["faithfulness"] = {**Faithfulness(500).settings(), "scored": 40, "seconds": 1200.0}
    for block in cbam["blocks"].values():
        block["faithfulness"] = faithful((0.3, 0.2, 0.35, 0.31, 0.25, 0.4), (0.5, 0.6, 0.4, 0.45, 0.3, 0.55),
                                         0.1, 0.85)
    cbam["blocks"]["layer4.1"]["faithfulness"] = faithful((0.21, 0.28, 0.35, 0.31, 0.25, 0.4),
                                                          (0.5, 0.6, 0.4, 0.5, 0.3, 0.55), 0.55, 0.45, 0.6)
    text = render_card(card)
    section = text[text.index("## Does the model use what the map marks?"):text.index("## Limits")]
    assert "on the first 40 of the 500 in-distribution test images" in section
    assert "(30.0 s per image and model in the run that measured it)" in section
    assert "the random band in brackets is the images' band ends averaged" in section
    assert ("| layer4.1 | 0.210 / 0.500 | 0.280 / 0.600 | 0.350 / 0.400 | 0.310 (0.250-0.400) | "
            "0.500 (0.300-0.550) | 55% / 45% / 0% | 60% |") in section
    assert "| layer1.0 | 0.300 / 0.500 | 0.200 / 0.600 | 0.350 / 0.400 | 0.310 (0.250-0.400) |" in section
    assert "| 10% / 85% / 5% | 25% |" in section
    assert ("The block map's mean deletion AUC is below the random maps' mean at 8 of 8 blocks, and below the "
            "band's averaged low end at 1 of 8 blocks (layer4.1); its mean insertion AUC is above the random maps' "
            "mean at 7 of 8 blocks (layer1.0, layer1.1, layer2.0, layer2.1, layer3.0, layer3.1, layer4.0). Image by "
            "image, the map's deletion AUC was below its image's random band (better than chance) on 10% to 55% of "
            "the images per block (most: layer4.1, 55%), and inside it (no better than chance) on 45% to 85%. "
            "Lower than the block map's mean deletion AUC: Grad-CAM's at 7 of 8 blocks (layer1.0, layer1.1, "
            "layer2.0, layer2.1, layer3.0, layer3.1, layer4.0), the centred Gaussian's at 0 of 8 blocks.") in section
    assert "plain-resnet18-shapes" not in section
    del cbam["faithfulness"]
    assert "Not measured for these models (`python -m lens card --faithfulness N`)." in render_card(card)
