"""What one browser session keeps for itself, each store bounded: the page's memory of a visitor."""
import hashlib

import streamlit as st

KEPT_DIGESTS = 8             # upload hashes (and other per-file notes) remembered per session
KEPT_RESULTS = 6             # results computed with a user's checkpoint kept per session


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remembered(store: str, key, compute, keep: int):
    """`compute()`, kept in this session under `key`: the last `keep` results of `store`."""
    kept = st.session_state.setdefault(store, {})
    if key not in kept:
        kept[key] = compute()
        trim(kept, keep)
    return kept[key]


def trim(store: dict, keep: int) -> None:
    """Drop the oldest entries of `store` beyond the last `keep`."""
    while len(store) > keep:
        store.pop(next(iter(store)))


def upload_digest(upload) -> str:
    """The content hash of an upload, computed once per uploaded file."""
    return remembered("digests", upload.file_id, lambda: sha(upload.getvalue()), KEPT_DIGESTS)


def in_session(key: tuple, compute):
    """What a user's own checkpoint computes, kept in its session only: the checkpoint's model lives
    there, and a process-wide cache would keep it alive (one model per entry) after the session
    moved on."""
    return remembered("results", key, compute, KEPT_RESULTS)
