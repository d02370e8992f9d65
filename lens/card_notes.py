"""What the model card measured about a bundled model, in words for the app (`lens.card`):
how the model does in distribution and under each shift, and for one block how its map sits on
the object beside the card's baselines, what switching its attention off costs, and how many of
its channel weights are pinned at 0 or 1, and how deleting what its map marks lowers the top class's
probability beside Grad-CAM and random maps. Measured over the card's test images, not this one image."""
from blocks import ACTIVITY_CHANNELS, attention_kind
from pretrained.bundled import card_entry
from training.shapes import SHIFTS

from .card_evaluation import CARD_BASELINES, PINNED, SIZE_BANDS
from .study_faithfulness import RANDOM

IN_WORDS = {"small": "objects below the median size", "grayscale": "grayscale", "low_contrast": "low contrast",
            "clutter": "clutter over the object", "centred Gaussian": "a centred Gaussian",
            "plain channel mean": "the plain model's channel mean", "plain Grad-CAM": "the plain model's Grad-CAM"}


def model_note(name: str) -> str | None:
    """One sentence on the model's accuracy by test set, or None for a model without a card."""
    card = card_entry(name)
    if card is None:
        return None
    accuracy = card["accuracy"]
    text = (f"Model card: {accuracy['in distribution']:.1%} correct on {card['test_images']} fresh test images of "
            f"shapes v{card['dataset_version']}")
    shifts = [f"{accuracy[s]:.1%} on {IN_WORDS[s]}" for s in SHIFTS if s in accuracy]
    text += f"; {', '.join(shifts)}." if shifts else "; it was not tested under shifts."
    smallest = card.get("accuracy_by_size", {}).get(SIZE_BANDS[0][0], {})
    if smallest.get("accuracy") is not None:
        text += (f" Objects {SIZE_BANDS[0][0]} of the image side ({smallest['images']} of those images): "
                 f"{smallest['accuracy']:.1%} correct.")
    return text


def block_note(name: str, block: str) -> str | None:
    """What the card measured about one block, or None for a model or block it does not cover."""
    card = card_entry(name) or {}
    measured = card.get("blocks", {}).get(block)
    if measured is None:
        return None
    auc = {m: s["AUC"] for m, s in measured["localisation"].items()}
    own, baselines = auc["attention"], [m for m in CARD_BASELINES if auc[m] is not None]
    # two decimals unless they would print a tie that the comparison below does not make
    digits = 3 if own is not None and any(round(auc[m], 2) == round(own, 2) for m in baselines) else 2
    which = ("its spatial gate" if attention_kind(card["attention"]).has_spatial_gate
             else f"its map of where its {ACTIVITY_CHANNELS} most-excited channels fire")
    if own is None:
        where = f"{which} has no mass on any image"
    else:
        behind = [IN_WORDS[m] for m in baselines if auc[m] >= own]
        if not behind:
            verdict = "ahead of every baseline" + ("" if len(baselines) == len(CARD_BASELINES) else " measured")
        elif len(behind) == len(baselines):
            verdict = "not ahead of any baseline"
        else:
            verdict = f"not ahead of {' or '.join(behind)}"
        where = f"{which} scores AUC {own:.{digits}f} on the object, {verdict}"
        if own < 0.5:
            where += ", and below chance: it marks the background more than the object"
    scores = ", ".join(f"{IN_WORDS[m]} {auc[m]:.{digits}f}" for m in baselines)
    text = (f"Over the model card's {card['test_images']} test images, {where} "
            f"({scores}); switching the block's attention off changes accuracy by "
            f"{0.0 - measured['gate_off_cost']:+.1f} points; {measured['pinned']:.1%} of its channel weights are "
            f"pinned ({PINNED}).")
    return text + (f" {_deletion_sentence(measured['faithfulness'])}" if "faithfulness" in measured else "")


def _deletion_sentence(faithfulness: dict) -> str:
    """The card's deletion AUC of the block's map beside Grad-CAM's and the random maps' band."""
    deletion = faithfulness["deletion_auc"]
    better = faithfulness["better_than_chance"]["block map"]["deletion"]
    return (f"Deleting what the map marks first, on the first {faithfulness['images']} of those images, gave a "
            f"mean deletion AUC of {deletion['block map']:.3f} (lower: the model uses it more), beside Grad-CAM's "
            f"{deletion['Grad-CAM']:.3f} and random maps' {deletion[RANDOM[0]]:.3f} (band {deletion[RANDOM[1]]:.3f}-"
            f"{deletion[RANDOM[2]]:.3f}); the map was below its image's random band, better than chance, on "
            f"{better:.0%} of them.")


def costliest_block(name: str) -> str | None:
    """The block where the model card measured switching attention off to cost the most accuracy, or
    None for a model without a card: where an edit is worth trying first."""
    blocks = (card_entry(name) or {}).get("blocks", {})
    return max(blocks, key=lambda b: blocks[b]["gate_off_cost"]) if blocks else None
