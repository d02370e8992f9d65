"""What the model card measured about a bundled model, in words for the app (`pretrained.model_card`):
how the model does in distribution and under each shift, and for one block how its map sits on
the object beside the card's baselines, what switching its attention off costs, and how many of
its channel weights are saturated. Measured over the card's test images, not this one image."""
from pretrained.bundled import card_entry

SHIFTS = {"small": "small objects", "grayscale": "grayscale", "low_contrast": "low contrast",
          "clutter": "clutter over the object"}


def model_note(name: str) -> str | None:
    """One sentence on the model's accuracy by test set, or None for a model without a card."""
    card = card_entry(name)
    if card is None:
        return None
    accuracy = card["accuracy"]
    text = (f"Model card: {accuracy['in distribution']:.1%} correct on {card['test_images']} fresh test images of "
            f"shapes v{card['dataset_version']}")
    shifts = [f"{accuracy[s]:.1%} on {words}" for s, words in SHIFTS.items() if s in accuracy]
    return text + (f"; {', '.join(shifts)}." if shifts else "; it was not tested under shifts.")


def block_note(name: str, block: str) -> str | None:
    """What the card measured about one block, or None for a model or block it does not cover."""
    measured = (card_entry(name) or {}).get("blocks", {}).get(block)
    if measured is None:
        return None
    auc = {m: s["AUC"] for m, s in measured["localisation"].items()}
    baselines = ", ".join(f"{words} {auc[m]:.2f}" for m, words in (
        ("centred Gaussian", "a centred Gaussian"), ("plain channel mean", "the plain model's channel mean"),
        ("plain Grad-CAM", "the plain model's Grad-CAM")) if auc.get(m) is not None)
    own = "no map with any mass" if auc["attention"] is None else f"AUC {auc['attention']:.2f}"
    return (f"Over the model card's {card_entry(name)['test_images']} test images, this block's map scores {own} on "
            f"the object ({baselines}); switching its attention off changes accuracy by "
            f"{-measured['gate_off_cost']:+.1f} points; {measured['saturated']:.1%} of its channel weights are "
            "within 1e-6 of 0 or 1.")
