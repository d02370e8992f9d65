"""The models every session shares: the list, and each model loaded once per process."""
import logging

import streamlit as st

import pretrained
from viz.markup import md

UNAVAILABLE = {  # what a visitor can do when a model's weights are not on the server (the log says where)
    "timm": "{name} is not available here: its ImageNet weights need a one-time download, which this server cannot "
            "make now. Choose another model (the bundled ones always work).",
    "official": "{name} is not available here: this server does not have the authors' checkpoint file. Choose "
                "another model, or, if you have the file, load it as your own checkpoint."}
log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def model_entries() -> dict[str, pretrained.ModelEntry]:
    return {e.name: e for e in pretrained.available()}


@st.cache_resource(show_spinner=False, max_entries=6)
def load_model(name: str) -> pretrained.LoadedModel:
    return pretrained.load(name)


def unavailable(entry: pretrained.ModelEntry, error: Exception) -> str:
    """What a visitor can do about a model whose weights this server lacks; the operator gets the
    library's account (where the file goes) in the log."""
    log.warning("%s is unavailable: %s", entry.name, error)
    return UNAVAILABLE[entry.source].format(name=md(entry.name))
