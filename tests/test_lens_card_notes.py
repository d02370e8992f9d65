"""The model card's measurements as the app words them (`lens.card_notes`)."""
import pytest

import pretrained
from lens import card_notes
from pretrained.bundled import card_entry


def scores(auc):
    return {"AUC": auc, "mass ratio": 1.0, "pointing game": 0.5, "defined": 1.0}


CARD = {"attention": "cbam", "test_images": 500, "dataset_version": 2,
        "accuracy": {"in distribution": 0.9612, "small": 0.874, "grayscale": 0.95, "low_contrast": 0.931, "clutter": 0.9},
        "blocks": {"layer3.1": {"pinned": 0.0123, "gate_off_cost": 12.4, "localisation": {
            "attention": scores(0.913), "centred Gaussian": scores(0.8), "plain channel mean": scores(0.875),
            "plain Grad-CAM": scores(None)}}}}


@pytest.fixture
def card(monkeypatch):
    monkeypatch.setattr(card_notes, "card_entry", {"m": CARD}.get)


def test_model_note_gives_every_test_sets_accuracy(card, monkeypatch):
    assert card_notes.model_note("m") == (
        "Model card: 96.1% correct on 500 fresh test images of shapes v2; 87.4% on objects below the median size, "
        "95.0% on grayscale, 93.1% on low contrast, 90.0% on clutter over the object.")
    assert card_notes.model_note("another") is None
    sized = {**CARD, "accuracy_by_size": {"under 15%": {"images": 50, "accuracy": 0.48},
                                          "15-25%": {"images": 70, "accuracy": 0.76}}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": sized}.get)
    assert card_notes.model_note("m").endswith("90.0% on clutter over the object. Objects under 15% of the image "
                                               "side (50 of those images): 48.0% correct.")


def test_block_note_sets_the_map_beside_the_baselines_and_the_gate_off_cost(card):
    assert card_notes.block_note("m", "layer3.1") == (
        "Over the model card's 500 test images, its spatial gate scores AUC 0.91 on the object, ahead of every "
        "baseline measured (a centred Gaussian 0.80, the plain model's channel mean 0.88); switching the block's attention off changes accuracy by "
        "-12.4 points; 1.2% of its channel weights are pinned (within 1e-6 of 0 or 1).")
    assert card_notes.block_note("m", "layer1.0") is None and card_notes.block_note("another", "layer3.1") is None


def test_an_se_block_note_names_its_activity_map_and_a_zero_cost_reads_plus_zero(monkeypatch):
    se = {**CARD, "attention": "se", "blocks": {"layer3.1": {**CARD["blocks"]["layer3.1"], "gate_off_cost": 0.0}}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": se}.get)
    note = card_notes.block_note("m", "layer3.1")
    assert note.startswith("Over the model card's 500 test images, its map of where its 8 most-excited channels "
                           "fire scores AUC 0.91")
    assert "changes accuracy by +0.0 points" in note


def test_a_block_note_names_the_baselines_its_map_does_not_beat(monkeypatch):
    block = CARD["blocks"]["layer3.1"]
    behind = {**block, "localisation": {**block["localisation"], "attention": scores(0.8),
                                        "plain Grad-CAM": scores(0.7)}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": {**CARD, "blocks": {"layer3.1": behind}}}.get)
    assert card_notes.block_note("m", "layer3.1").startswith(
        "Over the model card's 500 test images, its spatial gate scores AUC 0.800 on the object, not ahead of a "
        "centred Gaussian or the plain model's channel mean (a centred Gaussian 0.800, the plain model's channel "
        "mean 0.875, the plain model's Grad-CAM 0.700);")       # a tie is not ahead
    ahead = {**block, "localisation": {**block["localisation"], "plain Grad-CAM": scores(0.7)}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": {**CARD, "blocks": {"layer3.1": ahead}}}.get)
    assert "scores AUC 0.91 on the object, ahead of every baseline (" in card_notes.block_note("m", "layer3.1")


def test_a_block_note_adds_the_cards_deletion_auc_beside_grad_cam_and_the_random_band(monkeypatch):
    names = ("block map", "Grad-CAM", "centred Gaussian", "random", "random 5%", "random 95%")
    faithfulness = {"images": 30, "deletion_auc": dict(zip(names, (0.2514, 0.2231, 0.3, 0.3102, 0.2478, 0.3967))),
                    "better_than_chance": {"block map": {"deletion": 0.4333, "insertion": 0.3}}}
    measured = {**CARD["blocks"]["layer3.1"], "faithfulness": faithfulness}
    monkeypatch.setattr(card_notes, "card_entry", {"m": {**CARD, "blocks": {"layer3.1": measured}}}.get)
    note = card_notes.block_note("m", "layer3.1")
    assert note.endswith(
        "pinned (within 1e-6 of 0 or 1). Deleting what the map marks first, on the first 30 of those images, gave a "
        "mean deletion AUC of 0.251 (lower: the model uses it more), beside Grad-CAM's 0.223 and random maps' 0.310 "
        "(band 0.248-0.397); the map was below its image's random band, better than chance, on 43% of them.")


def test_the_bundled_models_notes_come_from_their_card():
    name = pretrained.DEFAULT_MODEL
    card = card_entry(name)
    assert card_notes.model_note(name).startswith(f"Model card: {card['accuracy']['in distribution']:.1%} correct on "
                                                  f"{card['test_images']} fresh test images")
    block = list(card["blocks"])[-1]
    assert f"{card['blocks'][block]['pinned']:.1%} of its channel weights" in card_notes.block_note(name, block)
    deletion = card["blocks"][block]["faithfulness"]["deletion_auc"]
    assert (f"mean deletion AUC of {deletion['block map']:.3f} (lower: the model uses it more), beside Grad-CAM's "
            f"{deletion['Grad-CAM']:.3f}") in card_notes.block_note(name, block)
    assert card_notes.block_note("plain-resnet18-shapes", block) is None


def test_a_block_note_prints_three_decimals_rather_than_a_false_tie_and_warns_below_chance(monkeypatch):
    block = CARD["blocks"]["layer3.1"]
    close = {**block, "localisation": {**block["localisation"], "attention": scores(0.7780),
                                       "plain channel mean": scores(0.7806), "plain Grad-CAM": scores(0.64)}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": {**CARD, "blocks": {"layer3.1": close}}}.get)
    assert card_notes.block_note("m", "layer3.1").startswith(
        "Over the model card's 500 test images, its spatial gate scores AUC 0.778 on the object, not ahead of a "
        "centred Gaussian or the plain model's channel mean (a centred Gaussian 0.800, the plain model's channel "
        "mean 0.781, the plain model's Grad-CAM 0.640);")
    low = {**block, "localisation": {**block["localisation"], "attention": scores(0.12), "plain Grad-CAM": scores(0.62)}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": {**CARD, "blocks": {"layer3.1": low}}}.get)
    assert ("scores AUC 0.12 on the object, not ahead of any baseline, and below chance: it marks the background "
            "more than the object (a centred Gaussian 0.80,") in card_notes.block_note("m", "layer3.1")
    empty = {**block, "localisation": {**block["localisation"], "attention": scores(None)}}
    monkeypatch.setattr(card_notes, "card_entry", {"m": {**CARD, "blocks": {"layer3.1": empty}}}.get)
    assert card_notes.block_note("m", "layer3.1").startswith(
        "Over the model card's 500 test images, its spatial gate has no mass on any image (a centred Gaussian 0.80")
