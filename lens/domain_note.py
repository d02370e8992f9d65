"""What a bundled shapes model knows, in words for the app and the report: only its shapes, so a
photo still gets one of them."""
from pretrained import LoadedModel


def domain_note(model: LoadedModel) -> str | None:
    """For a bundled model, its classes and what to use for photos; None for any other model."""
    if model.source != "bundled":
        return None
    return (f"{model.name} knows only {len(model.labels)} shapes ({', '.join(model.labels)}): on any other "
            "picture it still answers one of them. For photos, use an ImageNet model or your own checkpoint.")


def photo_note(model: LoadedModel) -> str | None:
    """For a bundled model shown an image that is not one of its shapes (a photo, an upload, a camera
    shot): what it knows, and what can be done here and now; None for any other model."""
    note = domain_note(model)
    if note is None:
        return None
    return (f"{note} Unless this picture is a drawing of one of them, its answer and maps say little about the "
            "picture. Here and now: pick one of the shape samples (under Image, above), upload a drawing of one "
            "of these shapes, or choose an ImageNet model (its weights must be on this server) or load your own "
            "checkpoint in the sidebar. The maps below still show what each block weights on this picture.")
