"""Hostile and broken uploads in the app (AppTest): bounded messages, a bounded file store per
session, a note on a broken model's output, and one clear error for every bad file."""
import io
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec
from streamlit.testing.v1 import local_script_runner

from views import internals, messages, page, subject
import lens.inspection
import pretrained
from blocks import attention_resnet
from test_app import (ASSETS, app, assert_clean, assert_same_predictions, expected_predictions, own_checkpoint,
                      plain, png, shown_predictions, upload, values, weights_uploaders)

pytestmark = pytest.mark.slow
SESSION = "test session id"          # AppTest's one session


def checkpoint(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def tiny_state(kind: str = "eca", seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return attention_resnet(18, kind, num_classes=10, width=8, ratio=4).state_dict()


def image(seed: int, side: int = 64) -> bytes:
    return png(Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)))


# ---------- item 7: every message and name the page shows is bounded ----------

LIMIT = messages.SHOWN_CHARS + messages.NAME_CHARS + 200          # a message, a name and the words around them


def test_a_megabyte_message_and_a_long_file_name_are_cut(monkeypatch):
    long_name = "n" * 10_000 + ".png"
    at = upload(app(), long_name, b"not an image")
    assert_clean(at)
    [error] = values(at.error)
    assert len(error) < LIMIT and "characters cut" in error and error.startswith("Cannot use nnn")
    assert ".png: not an image" in error                                     # the name keeps its end

    def refused(data):
        raise pretrained.ImageError("bad pixel " * 500_000)                 # 5 MB
    monkeypatch.setattr(lens.inspection, "decode_image", refused)
    at = upload(at, "huge.png", image(1))
    [error] = values(at.error)
    assert len(error) < LIMIT and error.startswith("Cannot use huge.png: bad pixel bad pixel")
    assert f"({5_000_000 - messages.SHOWN_CHARS:,} characters cut)" in error
    monkeypatch.undo()

    load = pretrained.load

    def bad_weights(source, name=None, **kwargs):
        if isinstance(source, bytes):
            raise pretrained.CheckpointError("missing key " * 400_000)
        return load(source, name, **kwargs)
    monkeypatch.setattr(pretrained, "load", bad_weights)
    own_checkpoint(at, "w" * 10_000 + ".pt", checkpoint(tiny_state()))
    assert_clean(at)
    [error] = values(at.sidebar.error)
    assert len(error) < LIMIT and "characters cut" in error and ".pt: missing key missing key" in error
    monkeypatch.undo()

    own_checkpoint(at, "w" * 10_000 + ".pt", checkpoint(tiny_state(seed=1)))   # a good file (other bytes:
                                                                                # a refused one is not reread)
    assert_clean(at)
    assert all(len(text) < LIMIT for text in values(at.sidebar.markdown) + values(at.caption))
    assert any("characters cut" in text and text.endswith(".pt**") for text in values(at.sidebar.markdown))
    at = upload(at, "i" * 10_000 + ".png", image(2))
    assert_clean(at)
    [caption] = [plain(m) for m in values(at.markdown) if "as the model sees it" in m]
    assert len(caption) < LIMIT and "characters cut" in caption


def test_bounded_cuts_the_middle_and_says_how_much():
    assert messages.bounded("short", 10) == "short"
    cut = messages.bounded("a" * 40 + "b" * 60, 30)
    assert cut == "a" * 20 + " ... (70 characters cut) ... " + "b" * 10


# ---------- item 8: what one session holds in Streamlit's file store ----------

@pytest.fixture
def store(monkeypatch) -> MemoryUploadedFileManager:
    """One file store for every run of an AppTest, as the server keeps one for every session (AppTest
    makes a fresh one per run, so nothing would pile up in it)."""
    shared = MemoryUploadedFileManager("/mock/upload")
    monkeypatch.setattr(local_script_runner, "MemoryUploadedFileManager", lambda endpoint: shared)
    return shared


def held(store: MemoryUploadedFileManager) -> tuple[int, int]:
    """How many files, and how many bytes, the store holds for AppTest's session."""
    files = store.file_storage.get(SESSION, {})
    return len(files), sum(len(f.data) for f in files.values())


def test_a_session_holds_only_its_current_image_and_one_weights_file(store, monkeypatch):
    at = app()
    for i in range(5):                                            # new images, one after another
        data = image(i, 64 + 16 * i)
        upload(at, f"image{i}.png", data, "image/png")
        assert_clean(at)
        assert held(store) == (1, len(data)), i
    at.selectbox(key="sample").set_value("Photo: Chelsea the cat").run()      # a sample shown: the upload is kept
    assert held(store) == (1, len(data))
    bad = b"not weights at all" * 100
    own_checkpoint(at, "bad.pt", bad)                             # a weights file that cannot load stays in its uploader
    assert held(store) == (2, len(data) + len(bad))
    good = checkpoint(tiny_state())
    weights_uploaders(at)[0].set_value(("good.pt", good, "application/octet-stream")).run()
    assert_clean(at)
    assert "Weights: **good.pt**" in values(at.sidebar.markdown)
    assert held(store) == (1, len(data))                          # loaded: the weights file left the store
    store.add_file(SESSION, UploadedFileRec("stray", "stray.bin", "application/octet-stream", b"x" * 1000))
    at.run()                                                      # a file no uploader holds: it may be on its way
    at.run()
    assert held(store) == (2, len(data) + 1000)
    later = internals.monotonic() + internals.UNCLAIMED_SECONDS
    monkeypatch.setattr(internals, "monotonic", lambda: later)
    at.run()                                                      # still no uploader's after that long: gone
    assert held(store) == (1, len(data))


def test_the_served_app_keeps_uploads_in_that_store(monkeypatch):
    """`serve.py`'s server (st.App) keeps its sessions' uploads in a `MemoryUploadedFileManager`."""
    from streamlit.runtime import Runtime
    import serve
    monkeypatch.setattr(Runtime, "_instance", None)
    runtime = serve.app._create_runtime()
    assert isinstance(runtime.uploaded_file_mgr, MemoryUploadedFileManager)


# ---------- item 10: a model whose output is NaN says so ----------

def test_a_checkpoint_with_nan_weights_says_so_above_its_predictions():
    state = tiny_state("cbam")
    state["fc.weight"].fill_(float("nan"))
    at = own_checkpoint(app(), "nan.safetensors", save(state))
    assert_clean(at)
    [note] = values(at.main.error)
    assert note.startswith("The model's output is unusable: of its 10 class scores, 10 are NaN (not a number)")
    order = [node.type for node in walk(at.main)]
    assert order.index("error") < order.index("dataframe")          # above the predictions
    at.segmented_control(key="view").set_value("Intervene").run()
    assert_clean(at)
    assert len(values(at.main.error)) == 3                  # above the page's predictions and both of the edit's


def walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from walk(child)


# ---------- every bad file: the library's own clear error, and the session goes on ----------

def test_bad_files_in_a_row_each_get_a_clear_error_and_the_next_image_works():
    good = (ASSETS / "shapes-ring.png").read_bytes()
    at = app()
    bad_images = {"truncated.png": good[:len(good) // 2], "notes.png": b"a text file, renamed\n" * 30}
    for name, data in bad_images.items():
        upload(at, name, data)
        assert_clean(at)
        [error] = values(at.error)
        assert error.startswith(f"Cannot use {name}: "), error
    missing = tiny_state()
    missing.pop("layer2.0.attn.conv.weight")
    int_key = {**tiny_state(), 7: torch.zeros(3)}
    bad_weights = {"missing.pt": (checkpoint(missing), "layer2.0.attn.conv.weight"),   # named, as README promises
                   "int-key.pt": (checkpoint(int_key), ""), "int-key.bin": (pickle.dumps(int_key), "")}
    for name, (data, named) in bad_weights.items():
        own_checkpoint(at, name, data)
        assert_clean(at)
        [error] = values(at.sidebar.error)
        assert error.startswith(f"Cannot use {name}: ") and named in error, error
    at.selectbox(key="model").set_value(pretrained.DEFAULT_MODEL).run()
    upload(at, "ring.png", good, "image/png")
    assert_clean(at)
    assert not at.error
    assert_same_predictions(shown_predictions(at), expected_predictions(pretrained.DEFAULT_MODEL, good))


def test_a_refused_weights_file_is_read_once_not_on_every_rerun(monkeypatch):
    """A crafted file costs its reader up to 30 s: a slider move must not start another."""
    reads = []
    load = pretrained.load
    monkeypatch.setattr(pretrained, "load", lambda source, **k: (isinstance(source, bytes) and reads.append(1))
                        or load(source, **k))
    missing = tiny_state()
    missing.pop("fc.weight")
    at = own_checkpoint(app(), "missing.pt", checkpoint(missing))
    for value in (0.3, 0.7, 0.4):
        at.slider(key="alpha").set_value(value).run()
    assert_clean(at)
    assert len(reads) == 1
    [error] = values(at.sidebar.error)
    assert error.startswith("Cannot use missing.pt: not a ResNet state dict: no 'fc.weight'")


def test_a_users_model_that_fails_on_the_image_gets_a_clear_error(monkeypatch):
    at = own_checkpoint(app(), "mine.safetensors", save(tiny_state()))
    def failing(*args, **kwargs):
        raise RuntimeError("a kernel the model cannot run")

    monkeypatch.setattr(subject, "inspect_image", failing)
    upload(at, "new.png", image(3), "image/png")
    assert_clean(at)
    [error] = values(at.main.error)
    assert error.startswith("Cannot run mine.safetensors on new.png: the model failed on this image")


def test_a_users_model_too_costly_at_its_input_size_says_so_and_a_smaller_size_works(monkeypatch):
    import lens.cost
    at = own_checkpoint(app(), "mine.safetensors", save(tiny_state("cbam", seed=2)))
    assert_clean(at) and not at.error
    [size] = [n for n in at.number_input if n.label == "Input size (pixels)"]
    small = size.value
    monkeypatch.setattr(lens.cost, "MAX_FORWARD_FLOPS", 1e8)      # a tiny model: a tiny budget
    size.set_value(1024).run()
    assert_clean(at)
    [error] = values(at.sidebar.error)
    assert error.startswith("At 1024 px this model needs ") and "this server runs at most 0" in error
    assert values(at.main.info) == [error] and not at.dataframe
    [size] = [n for n in at.number_input if n.label == "Input size (pixels)"]
    size.set_value(small).run()
    assert_clean(at) and not at.error
    assert shown_predictions(at)


# ---------- one visitor cannot hold every large-decode slot ----------

@pytest.mark.parametrize("address, owner", [("203.0.113.7", "203.0.113.7"), (None, SESSION)])
def test_a_runs_decodes_are_its_visitors(monkeypatch, address, owner):
    """Every script run decodes as its visitor (`pretrained.image.decoding_for`): the connection's
    address when Streamlit knows it, else the session (a local connection has no address)."""
    import contextlib
    import streamlit as st
    owners, decodes = [], []

    @contextlib.contextmanager
    def recording(who):
        owners.append(who)
        yield
        owners.append(None)
    monkeypatch.setattr(page, "decoding_for", recording)
    monkeypatch.setattr(type(st.context), "ip_address", property(lambda self: address))
    decode = lens.inspection.decode_image
    monkeypatch.setattr(lens.inspection, "decode_image", lambda data: decodes.append(owners[-1]) or decode(data))
    at = upload(app(), "a.png", image(3 if address else 4))              # a new image: not a cached page
    assert_clean(at)
    assert decodes and set(decodes) == {owner}                           # every decode inside its visitor's block
    assert set(owners) == {owner, None} and owners[-1] is None           # and the block closed after each run
