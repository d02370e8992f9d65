"""What `views/internals.py` relies on in Streamlit and glibc beyond their public API: one test per
internal, so that a Streamlit release that changes one fails here rather than in a visitor's session."""
import ctypes
from types import SimpleNamespace

import pyarrow as pa
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from views import internals


def test_streamlit_keeps_a_sessions_files_where_the_page_looks():
    """`internals.stored_files` reads Streamlit's `MemoryUploadedFileManager.file_storage` (session id ->
    file id -> file): if Streamlit changes it, this fails, and a session's old uploads would pile up."""
    manager = MemoryUploadedFileManager("/upload")
    rec = UploadedFileRec("f1", "a.png", "image/png", b"123")
    manager.add_file("s1", rec)
    manager.add_file("s2", UploadedFileRec("f2", "b.png", "image/png", b"4"))
    assert manager.file_storage["s1"] == {"f1": rec}
    ctx = SimpleNamespace(uploaded_file_mgr=manager, session_id="s1")
    assert internals.stored_files(ctx) == {"f1"}
    manager.remove_file(session_id="s1", file_id="f1")
    assert internals.stored_files(ctx) == set() and manager.get_stats() != {}      # s2's file stays
    assert internals.stored_files(SimpleNamespace(uploaded_file_mgr=manager, session_id="s3")) == set()
    assert "s3" not in manager.file_storage                          # looking creates no entry


def test_release_removes_the_file_from_the_sessions_store(monkeypatch):
    """`internals.release` calls `ctx.uploaded_file_mgr.remove_file(session_id=..., file_id=...)`."""
    manager = MemoryUploadedFileManager("/upload")
    manager.add_file("s1", UploadedFileRec("f1", "a.png", "image/png", b"123"))
    manager.add_file("s1", UploadedFileRec("f2", "b.png", "image/png", b"45"))
    monkeypatch.setattr(internals, "get_script_run_ctx", lambda: SimpleNamespace(uploaded_file_mgr=manager,
                                                                                 session_id="s1"))
    internals.release(SimpleNamespace(file_id="f1"))
    assert internals.stored_files(SimpleNamespace(uploaded_file_mgr=manager, session_id="s1")) == {"f2"}


def test_arrow_bytes_are_an_arrow_stream_of_the_table():
    """`convert_anything_to_arrow_bytes` turns an Arrow table into the IPC stream a chart's dataset is
    sent as: read back, it is the same table."""
    table = pa.Table.from_pylist([{"channel": 0, "weight": 0.25}, {"channel": 1, "weight": 0.75}])
    data = internals.arrow_bytes(table)
    assert isinstance(data, bytes)
    assert pa.ipc.open_stream(data).read_all().equals(table)


def test_malloc_trim_is_there_to_call():
    """glibc's `malloc_trim(0)` returns 1 when it handed memory back, 0 when there was none: either way
    it exists and runs (this project's machines are glibc Linux)."""
    assert internals.LIBC is not None
    trim = internals.LIBC.malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    assert trim(0) in (0, 1)
    internals.give_back_memory()
