"""read_state_dict / load_weights: both formats, any wrapper, nothing in a file ever runs."""
import builtins
import io
import os
import pathlib
import pickle

import pytest
import safetensors.torch
import torch
from torch import nn

from blocks import attention_resnet
from pretrained.checkpoint import CheckpointError, load_weights, read_state_dict

NOT_WEIGHTS = "not a PyTorch or safetensors weights file: "


def tiny_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "fc.bias": torch.randn(5, generator=g),
            "bn.num_batches_tracked": torch.tensor(7)}


def assert_same(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()           # safetensors sorts the names
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), key


def saved(obj, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def read(data: bytes, as_path: bool, tmp_path: pathlib.Path, name: str = "weights.pth"):
    """read_state_dict on `data`, given as bytes or as a file called `name`."""
    if not as_path:
        return read_state_dict(data)
    path = tmp_path / name
    path.write_bytes(data)
    return read_state_dict(path)


# --- formats and wrappers -----------------------------------------------------------------------

@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 90, "arch": "resnet50", "best_prec1": 77.6,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1, 2]}]}},
    lambda sd: {"model": sd, "epoch": 3},
    lambda sd: {"model_state_dict": sd},
    lambda sd: {"module": sd},
    lambda sd: {"net": sd},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},   # Lightning
    lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},                          # torch.compile
    lambda sd: {f"module._orig_mod.{k}": v for k, v in sd.items()},
], ids=["bare", "state_dict", "model", "model_state_dict", "module", "net", "prefix", "wrapped-prefix",
        "lightning", "compiled", "parallel-compiled"])
def test_torch_round_trip(wrap, legacy, as_path, tmp_path):
    expected = tiny_state_dict()
    assert_same(read(saved(wrap(expected), legacy), as_path, tmp_path, "w.pth.tar"), expected)


def test_prefix_kept_unless_on_every_key():
    sd = {"module.a": torch.ones(1), "b": torch.zeros(2)}
    assert_same(read_state_dict(saved(sd)), sd)


@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
def test_safetensors_round_trip(as_path, tmp_path):
    expected = tiny_state_dict()
    data = safetensors.torch.save(expected)
    assert_same(read(data, as_path, tmp_path, "w.safetensors"), expected)


def test_format_from_content_not_name(tmp_path):
    expected = tiny_state_dict()
    assert_same(read(safetensors.torch.save(expected), True, tmp_path, "w.pt"), expected)
    assert_same(read(saved(expected), True, tmp_path, "w.safetensors"), expected)


def test_no_state_dict_names_the_keys():
    with pytest.raises(CheckpointError) as err:
        read_state_dict(saved({"epoch": 1, "arch": "resnet", "best_prec1": 0.5}))
    assert str(err.value) == (
        "no state dict found: expected tensors, or a dict of them under one of 'state_dict', "
        "'model_state_dict', 'model', 'module', 'net'; the file's top-level keys are: "
        "'epoch', 'arch', 'best_prec1'")


@pytest.mark.parametrize("obj,kind", [([torch.ones(1)], "list"), (torch.ones(3), "Tensor")])
def test_not_a_dict(obj, kind):
    with pytest.raises(CheckpointError) as err:
        read_state_dict(saved(obj))
    assert str(err.value) == f"no state dict found: the file holds a {kind}, not a dict of named tensors"


def test_non_tensor_entries():
    sd = {"conv.weight": torch.ones(1), "epoch": 1, "note": "x", 3: torch.ones(1)}
    with pytest.raises(CheckpointError) as err:
        read_state_dict(saved({"state_dict": sd}))
    assert str(err.value) == ("the state dict must map names to tensors, but holds: "
                              "'epoch' (int), 'note' (str), 3 (Tensor)")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as err:
        read_state_dict(tmp_path / "nope.pt")
    assert str(err.value) == f"cannot read {tmp_path / 'nope.pt'}: No such file or directory"


# --- files that must not run ---------------------------------------------------------------------

class Touch:
    """A pickle payload that creates `path` when unpickled, by way of one of three globals."""

    def __init__(self, path: pathlib.Path, via: str):
        self.path, self.via = path, via

    def __reduce__(self):
        if self.via == "touch":          # pickled as builtins.getattr(pathlib.Path, "touch")
            return pathlib.Path.touch, (self.path,)
        if self.via == "system":
            return os.system, (f"touch {self.path}",)
        return builtins.exec, (f"open({str(self.path)!r}, 'w').close()",)


VIA_GLOBAL = {"touch": "builtins.getattr", "system": f"{os.system.__module__}.system",
              "exec": "builtins.exec"}


@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("via", list(VIA_GLOBAL))
def test_malicious_pickle_refused_and_not_run(via, legacy, as_path, tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Touch(control, via)))      # the payload is live when unpickled freely
    assert control.exists()

    target = tmp_path / "pwned"
    data = saved({"conv.weight": torch.ones(1), "x": Touch(target, via)}, legacy)
    with pytest.raises(CheckpointError) as err:
        read(data, as_path, tmp_path)
    assert str(err.value) == (f"refused: this file is not a plain weights file (it asks to run code: "
                              f"{VIA_GLOBAL[via]}); only tensors are loaded")
    assert not target.exists()


NEW_PROTOCOL = ("refused: this file is not a plain weights file (it uses pickle instructions the "
                "safe loader does not accept; re-save it with torch.save's default protocol, or as "
                "safetensors); only tensors are loaded")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("in_zip", [False, True], ids=["raw", "zip"])
def test_protocol5_pickle_refused_and_not_run(in_zip, tmp_path):
    target = tmp_path / "pwned"
    payload = Touch(target, "exec")
    if in_zip:
        buf = io.BytesIO()
        torch.save({"x": payload}, buf, pickle_protocol=5)
        data = buf.getvalue()
    else:
        data = pickle.dumps(payload, protocol=5)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(data)
    assert str(err.value) == NEW_PROTOCOL
    assert not target.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_protocol4_state_dict_gets_advice():
    buf = io.BytesIO()
    torch.save(tiny_state_dict(), buf, pickle_protocol=4)   # torch's safe loader lacks FRAME
    with pytest.raises(CheckpointError) as err:
        read_state_dict(buf.getvalue())
    assert str(err.value) == NEW_PROTOCOL


@pytest.mark.parametrize("model,cls", [
    (nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),
    (attention_resnet(18, "se", width=8, ratio=4), "blocks.resnet.AttentionResNet"),
], ids=["linear", "attention-resnet"])
def test_whole_model_refused_with_what_to_save_instead(model, cls):
    with pytest.raises(CheckpointError) as err:
        read_state_dict(saved({"model": model, "epoch": 3}))
    assert str(err.value) == (
        f"refused: this file is not a plain weights file (it asks to run code: {cls}); only tensors "
        "are loaded. If it is a whole model saved with torch.save(model, path), save its weights "
        "instead: torch.save(model.state_dict(), path)")


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_torchscript_refused():
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), buf)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(buf.getvalue())
    assert str(err.value) == ("refused: this file is a TorchScript program, not a plain weights "
                              "file; only tensors are loaded")


# --- not weights at all --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
RANDOM = b"\x17" + torch.randint(0, 256, (999,), generator=torch.Generator().manual_seed(0),
                                 dtype=torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("as_path", [True, False], ids=["path", "bytes"])
@pytest.mark.parametrize("data,reason", [
    (b"", "the file is empty"),
    (PNG, r"it starts with b'\x89PNG\r\n\x1a\n', which neither format does"),
    (RANDOM, f"it starts with {RANDOM[:8]!r}, which neither format does"),
    (b"hello, world", "it starts with b'hello, w', which neither format does"),
    (saved(tiny_state_dict())[:300], "it looks like one but is truncated or damaged"),
    (saved(tiny_state_dict(), legacy=True)[:300], "it looks like one but is truncated or damaged"),
], ids=["empty", "png", "random", "text", "truncated-zip", "truncated-legacy"])
def test_not_weights(data, reason, as_path, tmp_path):
    with pytest.raises(CheckpointError) as err:
        read(data, as_path, tmp_path)
    assert str(err.value) == NOT_WEIGHTS + reason


def test_damaged_safetensors():
    data = safetensors.torch.save(tiny_state_dict())
    header = int.from_bytes(data[:8], "little")
    with pytest.raises(CheckpointError) as err:
        read_state_dict(data[:8] + b"{" + b"x" * (header - 1) + data[8 + header:])
    assert str(err.value).startswith(NOT_WEIGHTS + "its safetensors data is damaged (")


# --- load_weights ----------------------------------------------------------------------------------

def test_load_weights_copies_values():
    torch.manual_seed(0)
    source, target = nn.Linear(4, 3), nn.Linear(4, 3)
    load_weights(target, source.state_dict())
    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)


def test_load_weights_one_of_each():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    sd = {"0.weight": torch.zeros(3, 5), "0.bias": torch.zeros(3), "1.weight": torch.zeros(2, 3),
          "2.weight": torch.zeros(1)}
    before = model[0].weight.clone()
    with pytest.raises(CheckpointError) as err:
        load_weights(model, sd)
    assert str(err.value) == ("the weights do not fit this model: 1 missing key (1.bias); "
                              "1 unexpected key (2.weight); "
                              "1 shape mismatch (0.weight: file [3, 5] vs model [3, 4])")
    assert torch.equal(model[0].weight, before)          # nothing loaded


def test_load_weights_lists_five_then_counts():
    file = attention_resnet(18, "se", width=8, ratio=2).state_dict()     # fc1: [4, 8] in layer1
    model = attention_resnet(18, "se", width=8, ratio=4)                 # fc1: [2, 8]
    del file["fc.bias"]
    with pytest.raises(CheckpointError) as err:
        load_weights(model, file)
    assert str(err.value) == (
        "the weights do not fit this model: 1 missing key (fc.bias); 24 shape mismatches ("
        "layer1.0.attn.fc1.weight: file [4, 8] vs model [2, 8], "
        "layer1.0.attn.fc1.bias: file [4] vs model [2], "
        "layer1.0.attn.fc2.weight: file [8, 4] vs model [8, 2], "
        "layer1.1.attn.fc1.weight: file [4, 8] vs model [2, 8], "
        "layer1.1.attn.fc1.bias: file [4] vs model [2], ... 19 more)")


def deflated(data: bytes) -> bytes:
    """A torch.save archive re-packed with every record deflated: what a decompression bomb is."""
    import io
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_before_anything_is_inflated(tmp_path):
    """256 MB of zeros deflated into a file of about 0.25 MB: refused, and the process that reads it
    grows by under 100 MB (peak RSS, measured in a fresh subprocess)."""
    import io
    import subprocess
    import sys
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(64, 1 << 20)}, buf)          # 256 MB of float32 zeros
    bomb = tmp_path / "bomb.pth"
    bomb.write_bytes(deflated(buf.getvalue()))
    del buf
    assert bomb.stat().st_size < 1e6
    code = ("import resource, sys; from pretrained.checkpoint import read_checkpoint, CheckpointError\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    read_checkpoint(sys.argv[1]); print('loaded')\n"
            "except CheckpointError as e:\n    print(e)\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, check=True,
                         cwd=pathlib.Path(__file__).resolve().parents[1]).stdout.splitlines()
    assert out[0] == (f"refused: this file is not a plain weights file (its {bomb.stat().st_size / 1e6:.1f} MB "
                      "archive declares 268 MB of contents, more than 2 times its size (a decompression bomb, or "
                      "a file re-packed with compression)); only tensors are loaded")
    assert int(out[1]) < 100, f"peak RSS grew by {out[1]} MB"


def test_a_lightly_compressed_archive_still_loads():
    import io
    torch.manual_seed(0)
    weights = {"w": torch.randn(1000)}                                  # random floats barely compress
    buf = io.BytesIO()
    torch.save(weights, buf)
    assert torch.equal(read_state_dict(deflated(buf.getvalue()))["w"], weights["w"])


def legacy_declaring(numel: int, listed: bool) -> bytes:
    """A legacy (pre-zip) torch.save file of one tensor whose storage of `numel` floats its pickle
    declares but whose bytes the file does not hold; `listed`: its list of stored storages names it."""
    import collections
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    storage = object()

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (storage, 0, (numel,), (1,), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel, None) if obj is storage else None

    buf = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                                                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buf, protocol=2)
    Pickler(buf, protocol=2).dump({"fc.weight": Tensor()})
    pickle.dump(["0"] if listed else [], buf, protocol=2)       # the storages whose bytes follow
    return buf.getvalue()


@pytest.mark.parametrize("listed", [False, True], ids=["unlisted", "listed"])
def test_a_legacy_file_cannot_declare_more_than_it_holds(listed):
    """torch.load(weights_only=True) allocates every storage a legacy pickle declares, then reads the
    bytes of those the file lists: one listed but missing fails there, but one left unlisted came
    back as a tensor of uninitialised memory (300 bytes gave a 17 GB tensor, committed when first
    touched). Both are refused; real legacy files load (test_torch_round_trip)."""
    data = legacy_declaring(1 << 24, listed)                   # 64 MB declared in a few hundred bytes
    assert len(data) < 1000
    with pytest.raises(CheckpointError) as err:
        read_state_dict(data)
    assert str(err.value) == (NOT_WEIGHTS + "it looks like one but is truncated or damaged" if listed else
                              f"refused: this file is not a plain weights file (its {len(data)} bytes declare "
                              "67 MB of tensors, more than the file holds); only tensors are loaded")


def test_a_legacy_file_may_hold_a_loop():
    """A pickle can hold a list that contains itself (here beside the state dict); the size check
    walks it once."""
    looped = [torch.ones(3)]
    looped.append(looped)
    assert read_state_dict(saved({"state_dict": {"w": torch.ones(2)}, "loop": looped}, legacy=True))["w"].shape == (2,)
