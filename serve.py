"""Serve Attention Lens with the default page already computed when the first visitor arrives.

    .venv/bin/streamlit run serve.py

`streamlit run app.py` serves the same app, but runs nothing until a browser connects: the first
visitor then waits while PyTorch is imported, the default model is loaded and its first forward
pass runs. Here, before the server accepts connections (so that none of this competes with
serving a browser, and `/_stcore/health` answers only once the page is ready), the server imports
PyTorch and the library, starts the process that reads users' weights files
(`pretrained.isolation`), runs the default model once, then runs `app.py` once as Streamlit's
script health check does: that run fills the process-wide caches (`st.cache_resource`) with the
default model and the default page's inspection, which every session then shares, and imports
what only a page needs (pandas, pyarrow, Altair). What both steps loaded is then kept out of the
garbage collector's walks (`freeze`). A failed warm-up is only logged; the page then loads on
first visit, as with `streamlit run app.py`. What the app tells operators rather than visitors (a
model's missing weights file and where it goes, a file that failed unforeseen) is logged by its
modules' loggers (`views.models`, `views.study`, ...), written with their time and name (`log_format`).
"""
import gc
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from streamlit import runtime
from streamlit.logger import get_logger

log = get_logger("attention_lens.serve")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_format() -> None:
    """Warnings from the app's own loggers to the server's log with their time and logger name
    (Streamlit formats only its own loggers, which do not propagate; without a handler Python
    prints a bare message)."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)


def load_everything() -> None:
    """Start the fork server that reads users' weights files (it imports PyTorch in its own process,
    meanwhile), import PyTorch, timm and the library, and run the default model once: most of a
    cold start."""
    import lens
    import pretrained
    from pretrained import isolation
    isolation.warm()
    pretrained.available()                                       # imports timm for its model list
    model = pretrained.load(pretrained.DEFAULT_MODEL)
    lens.inspect_image(model, Path(__file__).parent / "assets" / "shapes-circle.png")


async def warm_page() -> None:
    """Run the app script once, in a session no browser sees (Streamlit's script health check)."""
    ok, outcome = await runtime.get_instance().does_script_run_without_error()
    if ok:
        log.info("warm-up: the default page is ready (%s)", outcome)
    else:
        log.warning("warm-up did not finish (%s): the first visitor loads the default page", outcome)


def freeze() -> None:
    """Put every object alive now out of the garbage collector's reach (`gc.freeze`): what the
    server loaded lives as long as it does. A full collection walking the ~450,000 objects of
    PyTorch, timm, pandas and the library holds the GIL for 0.2 s, every session waiting; Streamlit
    ran one after every script run (`runner.postScriptGC`, off in `.streamlit/config.toml`: even
    without these objects its cost grew with the sessions open), Python still runs one now and then."""
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def lifespan(_app):
    log_format()
    load_everything()
    await warm_page()
    freeze()
    yield


app = st.App("app.py", lifespan=lifespan)
