"""Serve Attention Lens with the default page already computed when the first visitor arrives.

    .venv/bin/streamlit run serve.py

`streamlit run app.py` serves the same app, but runs nothing until a browser connects: the first
visitor then waits while PyTorch is imported, the default model is loaded and its first forward
pass runs. Here the server imports PyTorch and the library and runs the default model once
before it accepts connections (so that work never competes with serving a browser), then asks
Streamlit's script health check (`/_stcore/script-health-check`, enabled in
`.streamlit/config.toml`) to run `app.py` once: that run fills the process-wide caches
(`st.cache_resource`) with the default model and the default page's inspection, which every
session then shares. What both steps loaded is then kept out of the garbage collector's walks
(`freeze`), which otherwise cost every script run 0.2 s. A failed warm-up is only logged; the
page then loads on first visit, as with `streamlit run app.py`.
"""
import gc
import threading
import time
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from streamlit.logger import get_logger

WARM_UP_S = 300                  # give up on warming (a very slow or stalled machine) after this
POLL_S = 0.2
log = get_logger("attention_lens.serve")


def load_everything() -> None:
    """Import PyTorch, timm and the library, and run the default model once: most of a cold start.
    Done before the server accepts connections, so it never competes (for the GIL) with serving a
    browser its page."""
    import lens
    import pretrained
    pretrained.available()                                       # imports timm for its model list
    model = pretrained.load(pretrained.DEFAULT_MODEL)
    lens.inspect_image(model, Path(__file__).parent / "assets" / "shapes-circle.png")
    freeze()


def freeze() -> None:
    """Put every object alive now out of the garbage collector's reach (`gc.freeze`): what the
    server loaded lives as long as it does. Streamlit collects garbage after every script run
    (`runner.postScriptGC`), and a full collection walking the ~450,000 objects of PyTorch, timm,
    pandas and the library held the GIL for 0.2 s per run, every other session waiting, where the
    page itself takes 0.03 s."""
    gc.collect()
    gc.freeze()


def warm_page() -> None:
    """Once the server answers, run the app script once through the script health check: that run
    fills the process-wide caches with the default model and the default page's inspection, and
    imports what only a page needs (pandas, pyarrow, Altair)."""
    port = st.get_option("server.port")
    base = f"http://127.0.0.1:{port}{('/' + st.get_option('server.baseUrlPath').strip('/')).rstrip('/')}"
    deadline = time.monotonic() + WARM_UP_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                break
        except OSError:
            time.sleep(POLL_S)
    try:
        with urllib.request.urlopen(f"{base}/_stcore/script-health-check", timeout=WARM_UP_S) as answer:
            log.info("warm-up: the default page is ready (%s)", answer.read().decode(errors="replace")[:80])
        freeze()                                    # and what the page's first run imported
    except OSError as e:
        log.warning("warm-up did not finish (%s): the first visitor loads the default page", e)


@asynccontextmanager
async def lifespan(_app):
    load_everything()
    threading.Thread(target=warm_page, name="attention-lens-warm-up", daemon=True).start()
    yield


app = st.App("app.py", lifespan=lifespan)
