"""What the page needs from Streamlit beyond its public API, and from the C library: the one place
that relies on them, each with a test (tests/test_views_internals.py) that fails when a Streamlit
release changes what it relies on.

- `convert_anything_to_arrow_bytes` (streamlit.dataframe_util): the bytes a chart's dataset is sent as.
- the session's uploaded-file manager (`ctx.uploaded_file_mgr`: `remove_file`, and
  `MemoryUploadedFileManager.file_storage`, session id -> file id -> file): to drop files once used.
- glibc's `malloc_trim`: freed heap pages handed back to the system.
"""
import ctypes
import gc
import math
from time import monotonic

import pyarrow as pa
import streamlit as st
from streamlit.dataframe_util import convert_anything_to_arrow_bytes
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

try:
    LIBC = ctypes.CDLL("libc.so.6")          # glibc: malloc_trim (elsewhere nothing to trim)
except OSError:
    LIBC = None
UNCLAIMED_SECONDS = 30.0     # a stored file no uploader has held goes after this long (it may be on its way)


def arrow_bytes(table: pa.Table) -> bytes:
    """An Arrow table as the bytes Streamlit sends for a chart's dataset."""
    return convert_anything_to_arrow_bytes(table)


def give_back_memory() -> None:
    """Return freed memory to the system: glibc keeps the pages of freed heap blocks (a checkpoint's
    worth, per upload) in the process unless asked, and the server would grow with every upload."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)


def session_id() -> str:
    """This browser session's id ("" outside a script run)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else ""


def release(upload) -> None:
    """Drop an upload's bytes from Streamlit's uploaded-file store once they have been used: the
    store keeps a file while its session lives, even after its uploader has left the page."""
    ctx = get_script_run_ctx()
    if ctx is not None:
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=upload.file_id)


def stored_files(ctx) -> set[str]:
    """The ids of the files Streamlit's store holds for this session. Streamlit lists them nowhere
    public: this reads `MemoryUploadedFileManager.file_storage` (session id -> file id -> file; a test
    checks it). Another store lists nothing, and so loses nothing."""
    storage = getattr(ctx.uploaded_file_mgr, "file_storage", {})
    return set(storage.get(ctx.session_id, ()))


def bound_uploads() -> None:
    """Keep in Streamlit's store only the files this session's uploaders hold: its image, its camera
    shot and a weights file that has not loaded. The store keeps every file a session sends until
    the session ends, also those that a newer upload replaced. A file an uploader held goes once
    none holds it; one that none has held yet (it may be on its way: a browser sends the file, then
    the widget that holds it) after `UNCLAIMED_SECONDS`."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    held = {value.file_id for value in map(st.session_state.get, list(st.session_state))
            if isinstance(value, UploadedFile)}
    now, seen, kept = monotonic(), st.session_state.get("stored_uploads", {}), {}
    for file_id in stored_files(ctx):
        since = -math.inf if file_id in held else seen.get(file_id, now)      # when it was first seen unclaimed
        if file_id in held or now - since < UNCLAIMED_SECONDS:
            kept[file_id] = since
        else:
            ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
    st.session_state["stored_uploads"] = kept
