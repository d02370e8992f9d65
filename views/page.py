"""The page: the sidebar's choices, the image chooser and the compact header, then the chosen view.
`app.py`, the script Streamlit reruns, draws the frame and calls `main`: this package is imported
once per process."""
import logging

import streamlit as st

import pretrained
from lens.glossary import GLOSSARY
from pretrained.image import decoding_for
from viz.markup import md

from . import block, compare, downloads, header, intervene, overview, study
from .internals import bound_uploads, session_id
from .messages import shown
from .models import model_entries
from .picture import Picture, choose_picture
from .sidebar import choose_display, choose_model
from .subject import Subject

VIEWS = [block, overview, compare, intervene, downloads, study]     # each: TITLE, NEEDS_ATTENTION, render
SHOWN_PIXELS = 1024          # an image shown without a model: its longer side at most
log = logging.getLogger(__name__)


def main() -> None:
    """The page, its image decodes counted as this visitor's, then this session's file store trimmed."""
    with decoding_for(visitor()):
        try:
            show_page()
        finally:
            bound_uploads()


def visitor() -> str:
    """Whom this run's decodes are for (one large decode at a time each): the connection's address
    where Streamlit knows it (a visitor can open many sessions, rarely many addresses), else this
    session (a local connection has no address)."""
    return st.context.ip_address or session_id()


def show_page() -> None:
    with st.sidebar:
        st.header("Model")
        chosen = choose_model(model_entries())
        st.header("Display")
        display = choose_display()
    picture = choose_picture()
    if isinstance(chosen, str):
        without_model(picture, chosen)
        return
    subject = inspected(picture, *chosen)
    if subject is None:
        return
    titles = [v.TITLE for v in VIEWS]
    page = st.segmented_control("View", titles, default=titles[0], key="view", label_visibility="collapsed") or titles[0]
    header.render(subject)
    view = VIEWS[titles.index(page)]
    if view.NEEDS_ATTENTION and not subject.inspection.has_attention:
        st.info(f"{md(subject.model.name)} has no attention blocks: it is a baseline without attention. Open Compare "
                "to see it beside the SE, ECA and CBAM models.")
        return
    view.render(subject, display)
    with st.expander("Glossary: what the page's terms mean"):
        st.markdown("\n".join(f"- **{term}**: {text}" for term, text in GLOSSARY.items()))


def inspected(picture: Picture, model: pretrained.LoadedModel, model_key: str) -> Subject | None:
    """The picture through the model, or None once the page has said why it cannot be."""
    try:
        return Subject.of(picture, model, model_key)
    except pretrained.ImageError as e:
        st.error(f"Cannot use {md(picture.name)}: {shown(e)}")
    except Exception:
        if model.source != "file":       # a shipped model failing is a bug of ours: let it show
            raise
        log.exception("a user's model failed on an image")
        st.error(f"Cannot run {md(model.name)} on {md(picture.name)}: the model failed on this image "
                 "(its weights or settings may not fit it). Try other settings under \"How this checkpoint "
                 "sees images\", or another model.")
    return None


def without_model(picture: Picture, text: str) -> None:
    """The page when no model can be used: what to do (`text`), beside the chosen image as it is."""
    left, right = st.columns([1, 2])
    right.info(text)
    try:
        image = pretrained.decode_image(picture.data)
    except pretrained.ImageError as e:
        left.error(f"Cannot use {md(picture.name)}: {shown(e)}")
        return
    image.thumbnail((SHOWN_PIXELS, SHOWN_PIXELS))           # what a page shows, not what a model sees
    left.image(image, width="stretch", caption=md(picture.name))
