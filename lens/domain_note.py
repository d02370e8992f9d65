"""What a bundled shapes model knows, in words for the app and the report: only its shapes, so a
photo still gets one of them."""
from pretrained import LoadedModel


def domain_note(model: LoadedModel) -> str | None:
    """For a bundled model, its classes and what to use for photos; None for any other model."""
    if model.source != "bundled":
        return None
    return (f"{model.name} knows only {len(model.labels)} shapes ({', '.join(model.labels)}): on any other "
            "picture it still answers one of them. For photos, use an ImageNet model or your own checkpoint.")
