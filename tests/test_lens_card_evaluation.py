"""What the model card measures (`lens.card_evaluation`), checked on tiny seeded models against
measurements made another way: single-map scores, physically edited copies, gates set by hand."""
import copy
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from blocks import attention_resnet, capture_attention, grad_cam
from blocks.attribution import block_outputs
from lens.card import beats_baselines, recipe_reasons, render_card, targets
from lens.card_evaluation import (PLAIN_GRAD_CAM, PLAIN_MEAN, HeldOutSet, _summary, accuracy, accuracy_by_size,
                                  correct, gate_off_costs, localisation, pinned_shares)
from lens.localisation import CENTRED_GAUSSIAN, auc, centred_gaussian, localisation_score, pointing_game
from training.shapes import render, render_batch
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
