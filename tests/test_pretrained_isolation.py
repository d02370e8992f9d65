"""Weights files are read in a child process under limits: a crafted file crashes, freezes or floods
only that child, the caller gets a clear CheckpointError, and good files come back unchanged."""
import io
import json
import threading
import time

import pytest
import safetensors.torch
import torch

import pretrained
from blocks import attention_resnet
from hostile_checkpoints import deep_tuple_key, empty_sets, huge_bytearray, tuple_dag_key
from pretrained.checkpoint import CheckpointError, read_checkpoint
from pretrained.isolation import LIMITS, Limits, read_isolated


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def refusal(data: bytes, limits: Limits = LIMITS) -> str:
    with pytest.raises(CheckpointError) as error:
        read_isolated(data, limits)
    return str(error.value)


# --- good files come back as they were ---------------------------------------------------------

@pytest.mark.slow
def test_a_good_file_comes_back_equal_in_order_and_dtype(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"z.weight": torch.randn(4, 3, generator=g), "a.bias": torch.randn(4, generator=g).half(),
             "m.num_batches_tracked": torch.tensor(7), "t.weight": torch.randn(3, 4, generator=g).t()}
    for source in (saved({"state_dict": {f"module.{k}": v for k, v in state.items()}}), tmp_path / "w.pth"):
        if not isinstance(source, bytes):
            source.write_bytes(saved(state))
        back = read_isolated(source)
        assert list(back.state_dict) == list(state)              # the file's order, not safetensors' sorted one
        for key, value in state.items():
            assert back.state_dict[key].dtype == value.dtype and torch.equal(back.state_dict[key], value)
        assert back.metadata == {}


def test_safetensors_metadata_comes_back_checked_and_canonical():
    meta = {"labels": json.dumps(["cat", "dog"]), "preprocess": json.dumps({"input_size": 96, "crop_pct": 1.0}),
            "notes": "ignored"}
    back = read_isolated(safetensors.torch.save({"w": torch.ones(2)}, metadata=meta))
    assert back.metadata == {"labels": '["cat", "dog"]', "preprocess": json.dumps(
        {"input_size": 96, "crop_pct": 1.0, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
         "std": [0.229, 0.224, 0.225]})}


@pytest.mark.slow
def test_a_dead_fork_server_is_replaced(monkeypatch):
    from pretrained import isolation
    server = isolation.warm()
    server.process.kill()
    server.process.wait()
    assert list(read_isolated(saved({"w": torch.ones(2)})).state_dict) == ["w"]
    assert isolation.warm() is not server and isolation.warm().alive()


@pytest.mark.slow
def test_the_child_does_not_run_the_callers_main_script(tmp_path, monkeypatch):
    """multiprocessing's children re-run `__main__`: in a Streamlit server, the page script."""
    import sys
    import types
    from pretrained import isolation
    script = tmp_path / "page.py"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('yes')\n")
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__=str(script), __spec__=None))
    old = isolation.warm().process                          # a fresh fork server, started under this __main__
    old.kill()
    old.wait()
    assert list(read_isolated(saved({"w": torch.ones(2)})).state_dict) == ["w"]
    assert not (tmp_path / "ran").exists()


# --- crafted files: each would crash, freeze or flood the server if read in it ------------------

@pytest.mark.slow
def test_a_tuple_nested_a_million_deep_crashes_only_the_child():
    data = deep_tuple_key(1_000_000)
    assert len(data) < 1_100_000
    assert refusal(data) == ("refused: it crashed the reader (a file crafted to overflow its stack); "
                             "nothing of it was used")


@pytest.mark.slow
def test_a_key_whose_hash_never_ends_is_killed_on_time_and_the_caller_keeps_running():
    data = tuple_dag_key(60)
    assert len(data) < 1000
    ticks = []
    ticker = threading.Thread(target=lambda: [ticks.append(time.sleep(0.05)) for _ in range(20)])
    start = time.monotonic()
    ticker.start()
    message = refusal(data, Limits(seconds=2, cpu_seconds=30))
    took = time.monotonic() - start
    ticker.join()
    assert message == ("refused: reading this file took over 2 s, far longer than any weights file of its "
                       "size takes (a file crafted to stall the reader)")
    assert 2 <= took < 6
    assert len(ticks) == 20                   # the caller's other threads ran meanwhile (no GIL held here)


def test_a_few_bytes_asking_for_gigabytes_hit_the_memory_limit():
    data = huge_bytearray(3_000_000_000)
    assert len(data) < 700
    assert refusal(data) == (f"refused: reading this 0.0 MB file needs more than {LIMITS.memory(len(data)) / 1e6:,.0f} "
                             "MB of memory (a file crafted to inflate)")


@pytest.mark.slow
def test_opcodes_that_inflate_216_times_hit_the_memory_limit():
    data = empty_sets(2_000_000)
    limits = Limits(base_bytes=64 << 20)
    assert refusal(data, limits) == (f"refused: reading this 2.0 MB file needs more than "
                                     f"{limits.memory(len(data)) / 1e6:,.0f} MB of memory (a file crafted to inflate)")


@pytest.mark.slow
def test_the_cpu_limit_stops_a_busy_child():
    assert refusal(tuple_dag_key(60), Limits(seconds=30, cpu_seconds=1)) == (
        "refused: reading it used more than 1 s of processor time; nothing of it was used")


@pytest.mark.slow
def test_a_reply_for_a_caller_that_stopped_waiting_is_ignored(monkeypatch):
    """A job given up on (here: no time at all to start) still ends in the fork server; its late
    replies must not stop the thread that hands out everyone else's."""
    from pretrained import isolation
    server = isolation.warm()
    server._wait_ready()
    monkeypatch.setattr(isolation, "START_SECONDS", 0)
    assert refusal(saved({"w": torch.ones(2)})) == "the server could not start a reader for the file; please try again"
    monkeypatch.setattr(isolation, "START_SECONDS", 120)
    time.sleep(1)                                             # its replies arrive meanwhile
    assert list(read_isolated(saved({"w": torch.ones(2)})).state_dict) == ["w"]
    assert isolation.warm() is server and server.alive()


def test_a_busy_server_says_so_rather_than_forking_without_bound(monkeypatch):
    from pretrained import isolation
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(isolation, "PARSES", slots)
    slots.acquire()
    try:
        assert refusal(saved({"w": torch.ones(1)}), Limits(wait_seconds=0.1)) == (
            "the server is busy reading other weights files; please try again in a minute")
    finally:
        slots.release()


# --- what the shapes ask for is checked before anything is built -------------------------------

def test_stride_zero_tensors_are_refused_before_a_model_is_built():
    """2 KB describing a width-1024 ResNet's stem and classifier: stored as one value each."""
    data = saved({"conv1.weight": torch.zeros(1).expand(1024, 3, 7, 7), "fc.weight": torch.zeros(1).expand(10, 512)})
    assert len(data) < 3000
    assert refusal(data) == ("refused: this file is not a plain weights file (tensor 'conv1.weight' of shape "
                             "[1024, 3, 7, 7] repeats 1 stored values as 150,528 (stride [0, 0, 0, 0])); "
                             "only tensors are loaded")


def test_many_tensors_viewing_one_storage_are_refused():
    shared = torch.zeros(1 << 18)                                          # 1 MB
    data = saved({f"w{i}": shared[i:] for i in range(64)})                 # 64 MB of tensors over it
    assert refusal(data).startswith("refused: this file is not a plain weights file (its 1,0")
    assert "describe 67 MB of tensors: its tensors share their values" in refusal(data)


@pytest.mark.parametrize("tensor, what", [
    (torch.ones(2, dtype=torch.complex64), "tensor 'w' is complex64"),
    (torch.ones(2, dtype=torch.bool), "tensor 'w' is bool"),
    (torch.empty(2, device="meta"), "tensor 'w' holds no plain values (a meta, strided tensor)"),
])
def test_weights_that_would_be_cast_silently_are_refused(tensor, what):
    assert refusal(saved({"w": tensor})).startswith(what)


def test_a_wide_stem_or_a_huge_classifier_is_refused_before_a_model_is_built():
    wide = {"conv1.weight": torch.zeros(1024, 3, 1, 1), "fc.weight": torch.zeros(10, 1)}
    many = {"conv1.weight": torch.zeros(8, 3, 1, 1), "fc.weight": torch.zeros(1_000_000, 1)}
    for state, message in ((wide, "the file's stem has 1,024 channels; at most 512 are read (torchvision's "
                                  "ResNets have 64)"),
                           (many, "the file's classifier has 1,000,000 classes; at most 100,000 are read")):
        with pytest.raises(CheckpointError) as error:
            pretrained.load(saved(state))
        assert str(error.value) == message


def test_a_model_is_built_for_real_only_once_its_shapes_match(monkeypatch):
    """A plausible stem with a classifier that does not fit: compared on the meta device only."""
    from pretrained import architecture
    devices = []

    def spy(*args, **kwargs):
        devices.append(torch.empty(0).device.type)
        return attention_resnet(*args, **kwargs)

    monkeypatch.setattr(architecture, "attention_resnet", spy)
    state = attention_resnet(18, "se", num_classes=10, width=8, ratio=2).state_dict()
    state["fc.weight"] = torch.zeros(50_000, 64)
    with pytest.raises(CheckpointError) as error:
        architecture.model_from_state_dict(state)
    assert str(error.value) == "the weights do not fit this model: 1 shape mismatch (fc.bias: file [10] vs model [50000])"
    assert devices == ["meta"]


# --- every bad file: the library's own clear error ----------------------------------------------

def eca_state() -> dict:
    return attention_resnet(18, "eca", num_classes=10, width=8).state_dict()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("layer2.0.attn.conv.weight"),
     "the weights do not fit this model: 1 missing key (layer2.0.attn.conv.weight)"),
    (lambda s: s.__setitem__("layer1.0.attn.conv.weight", torch.tensor(1.0)),
     "the weights do not fit this model: layer1.0.attn.conv.weight has shape [], expected 3 dimensions of non-zero size"),
    (lambda s: s.__setitem__("fc.weight", torch.zeros(0, 64)),
     "the weights do not fit this model: fc.weight has shape [0, 64], expected 2 dimensions of non-zero size"),
])
def test_a_file_that_does_not_fit_names_what_is_wrong(edit, message):
    state = eca_state()
    edit(state)
    with pytest.raises(CheckpointError) as error:
        pretrained.load(saved(state))
    assert str(error.value) == message


def test_an_se_file_with_an_empty_hidden_layer_is_named():
    state = attention_resnet(18, "se", num_classes=10, width=8, ratio=2).state_dict()
    state["layer1.0.attn.fc1.weight"] = torch.zeros(0, 8)
    with pytest.raises(CheckpointError, match=r"^the weights do not fit this model: layer1\.0\.attn\.fc1\.weight "
                                              r"has shape \[0, 8\]"):
        pretrained.load(saved(state))


@pytest.mark.parametrize("preprocess, message", [
    ({"input_size": 12000}, "input_size must be a whole number of pixels from 16 to 1024, got 12000"),
    ({"input_size": 128.5}, "input_size must be a whole number of pixels from 16 to 1024, got 128.5"),
    ({"crop_pct": 0}, "crop_pct must be a share of the resized image from 0.1 to 1, got 0"),
    ({"crop_pct": 1e-310}, "crop_pct must be a share of the resized image from 0.1 to 1, got 1e-310"),
    ({"crop_pct": float("nan")}, "crop_pct must be a share of the resized image from 0.1 to 1, got nan"),
    ({"interpolation": "lanczos"}, "interpolation must be one of bilinear, bicubic, nearest, got 'lanczos'"),
    ({"mean": [0.5, 0.5]}, "mean must be 3 numbers (red, green, blue), got [0.5, 0.5]"),
    ({"std": [0.2, 0.0, 0.2]}, "std must be above 0 in every channel, got (0.2, 0.0, 0.2)"),
])
def test_every_preprocess_field_is_checked_and_named(preprocess, message):
    data = safetensors.torch.save(eca_state(), metadata={"preprocess": json.dumps(preprocess)})
    with pytest.raises(CheckpointError) as error:
        pretrained.load(data)
    assert str(error.value) == f"the file's 'preprocess' metadata: {message}"


def test_only_the_stem_pool_is_read_of_a_files_architecture():
    data = safetensors.torch.save(eca_state(), metadata={"architecture": json.dumps({"stem_pool": "no"})})
    with pytest.raises(CheckpointError) as error:
        pretrained.load(data)
    assert str(error.value) == "the file's 'architecture' metadata: stem_pool must be true or false, got 'no'"
    meta = {"architecture": json.dumps({"depth": 18, "stem_pool": True, "width": 999})}
    assert read_isolated(safetensors.torch.save({"w": torch.ones(1)}, metadata=meta)).metadata == {
        "architecture": '{"stem_pool": true}'}


def test_an_imagenet_21k_file_keeps_its_class_names():
    labels = [f"class {i:05d} with a longer name" for i in range(21_841)]
    back = read_isolated(safetensors.torch.save({"w": torch.ones(1)}, metadata={"labels": json.dumps(labels)}))
    assert json.loads(back.metadata["labels"]) == labels


def test_any_tensor_name_comes_back_even_safetensors_own_header_key():
    state = {"__metadata__": torch.ones(2), "w": torch.zeros(1), "a\nb \u2603": torch.full((1,), 3.0)}
    back = read_isolated(saved(state)).state_dict
    assert list(back) == list(state) and all(torch.equal(back[k], v) for k, v in state.items())


@pytest.mark.slow
def test_a_state_dict_of_too_many_entries_is_refused():
    assert refusal(saved({f"w{i}": torch.zeros(1) for i in range(20_001)})) == (
        "the state dict holds 20,001 entries; at most 20,000 are read (a ResNet-152 has about 1,000)")


def test_work_files_go_where_there_is_room(monkeypatch, tmp_path):
    from pretrained import isolation
    assert isolation._work_root(1 << 20) == "/dev/shm"
    assert isolation._work_root(1 << 60) is None                      # no room: the system's temporary folder
    monkeypatch.setattr(isolation, "SHARED_MEMORY", str(tmp_path / "none"))
    assert isolation._work_root(1) is None
    assert list(read_isolated(saved({"w": torch.ones(1)})).state_dict) == ["w"]


def test_labels_are_bounded():
    for labels, message in ((["x" * 201] + ["b"] * 9, "name 0 is 201 characters long; at most 200"),
                            ([str(i) for i in range(100_001)], "100,001 names; at most 100,000 are read")):
        data = safetensors.torch.save(eca_state(), metadata={"labels": json.dumps(labels)})
        with pytest.raises(CheckpointError) as error:
            pretrained.load(data)
        assert str(error.value) == f"the file's 'labels' metadata: {message}"


def test_an_error_message_stays_short_whatever_the_file_names():
    state = eca_state()
    state["k" * 10_000_000] = torch.zeros(1)                  # a 10 MB name
    with pytest.raises(CheckpointError) as error:
        pretrained.load(saved(state))
    message = str(error.value)
    assert len(message) <= 1000
    assert message.startswith("the weights do not fit this model: 1 unexpected key (kkk")
    assert "characters cut" in message


def test_the_in_process_reader_checks_the_same():
    """read_checkpoint (used for the app's own files) refuses stride-0 tensors too."""
    with pytest.raises(CheckpointError, match="repeats 1 stored values as 150,528"):
        read_checkpoint(saved({"w": torch.zeros(1).expand(1024, 3, 7, 7)}))
