"""Read a user's weights file without running anything in it, and load it into a model strictly.

Two formats, told apart by content, never by file name: safetensors (Hugging Face; an 8-byte
little-endian header length, then a JSON header) and PyTorch files (.pt/.pth/.pth.tar, zip or
legacy), read only with `torch.load(..., weights_only=True)`, whose unpickler refuses every global
outside PyTorch's allowlist before calling anything. Key and shape checks before loading follow
nanoGPT's `from_pretrained`.
"""
import io
import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass

from safetensors.torch import load as safetensors_from_bytes
from safetensors.torch import load_file as safetensors_from_file
import torch
from torch import nn

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")  # checked in order
NOT_WEIGHTS = "not a PyTorch or safetensors weights file"
REFUSED = "refused: this file is not a plain weights file ({}); only tensors are loaded"
SAVE_WEIGHTS = (". If it is a whole model saved with torch.save(model, path), save its weights "
                "instead: torch.save(model.state_dict(), path)")
UNSAFE_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*) (?:was not an allowed global|whose module)")
SHOWN = 5                                   # names listed per kind of problem
INFLATION_LIMIT = 2                         # an archive may unpack to at most this times its file size
INFLATION_SLACK = 1 << 20                   # ... plus this much (tiny files)
MAX_TENSORS = 20_000                        # entries of a state dict at most: each costs its own parse and copy
MESSAGE_CHARS = 1000                        # an error message's length at most: names in a file can be megabytes
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64,   # what a weight may be stored as
          torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class CheckpointError(ValueError):
    """A weights file that cannot be used, with a message a user can act on (at most
    `MESSAGE_CHARS` long: a file's names and text are the file's, of any length)."""

    def __init__(self, message: str):
        if len(message) > MESSAGE_CHARS:
            cut = len(message) - MESSAGE_CHARS
            message = f"{message[:MESSAGE_CHARS - 200]} ... ({cut:,} characters cut) ... {message[-150:]}"
        super().__init__(message)


@dataclass(frozen=True)
class Checkpoint:
    """What a weights file holds, read once: its tensors and, for safetensors, its metadata."""
    state_dict: dict[str, torch.Tensor]     # on the CPU, wrapper prefixes stripped (`strip_shared_prefix`)
    metadata: dict[str, str]                # safetensors `__metadata__`; {} for PyTorch files


def read_checkpoint(source: str | os.PathLike | bytes) -> Checkpoint:
    """The state dict and metadata in a file (a path) or an upload (bytes), in one read.

    Accepts a bare state dict or one under a common key (`STATE_DICT_KEYS`); drops the key prefixes
    a wrapper gave every key (`module.`, `_orig_mod.`, ...), here and nowhere else.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        size = len(data)
        obj, meta = _load(io.BytesIO(data), size, lambda: safetensors_from_bytes(data))
    else:
        path = os.fspath(source)
        with open_weights(path) as f:
            size = os.fstat(f.fileno()).st_size
            obj, meta = _load(f, size, lambda: safetensors_from_file(path))
    state_dict = _check_tensors(_find_state_dict(obj))
    _check_storage(state_dict, size)
    return Checkpoint(strip_shared_prefix(state_dict), meta)


def open_weights(path: str | os.PathLike):
    """The file at `path`, open for reading, or a CheckpointError naming the path as given."""
    try:
        return open(path, "rb")
    except OSError as e:
        raise CheckpointError(f"cannot read {os.fspath(path)}: {e.strerror or e}") from e


def read_state_dict(source: str | os.PathLike | bytes) -> dict[str, torch.Tensor]:
    """`read_checkpoint(source).state_dict`."""
    return read_checkpoint(source).state_dict


def _metadata(header: bytes) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors JSON header; {} where there are none."""
    try:
        meta = json.loads(header).get("__metadata__")
    except (ValueError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors layout: u64 little-endian header length n, then n bytes of JSON, then data."""
    n = int.from_bytes(head[:8], "little")
    return len(head) == 9 and 2 <= n <= size - 8 and head[8:9] == b"{"


def _load(f: io.BufferedIOBase, size: int, load_safetensors) -> tuple[object, dict[str, str]]:
    """(what the file holds, its safetensors metadata)."""
    head = f.read(9)
    if _is_safetensors(head, size):
        header = head[8:] + f.read(int.from_bytes(head[:8], "little") - 1)
        try:
            return load_safetensors(), _metadata(header)
        except Exception as e:      # any failure to parse an untrusted file is the file's fault
            raise CheckpointError(f"{NOT_WEIGHTS}: its safetensors data is damaged ({e})") from e
    f.seek(0)
    if head.startswith(b"PK"):
        _check_archive(f, size)
    try:
        # a file object, not a path: torch.load would trust a ".safetensors" name
        obj = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:          # as above
        if isinstance(e, MemoryError) or "can't allocate memory" in str(e):
            raise MemoryError from e    # a memory limit, not a damaged file: the caller says which
        raise _torch_load_error(e, head) from e
    if not head.startswith(b"PK"):
        _check_legacy(obj, size)
    return obj, {}


def _check_archive(f: io.BufferedIOBase, size: int) -> None:
    """Refuse a zip archive that would unpack to far more than its own size, before anything is
    inflated: torch.save stores its records uncompressed, so a weights file's records add up to about
    its size, while a decompression bomb (a deflated record of zeros) declares gigabytes in a few MB.
    The declared sizes are what PyTorch's reader allocates, so bounding them bounds the memory."""
    try:
        with zipfile.ZipFile(f) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        return                      # not a readable zip: torch.load says what is wrong with it
    finally:
        f.seek(0)
    if declared > INFLATION_LIMIT * size + INFLATION_SLACK:
        raise CheckpointError(REFUSED.format(
            f"its {size / 1e6:.1f} MB archive declares {declared / 1e6:,.0f} MB of contents, "
            f"more than {INFLATION_LIMIT} times its size (a decompression bomb, or a file re-packed with compression)"))


def _check_legacy(obj, size: int) -> None:
    """Refuse a legacy (pre-zip) PyTorch file whose tensors hold more bytes than the file: such a
    file stores every storage's bytes after its pickle, so a real one holds all it declares. Its
    loader allocates each storage the pickle declares and reads only those the file lists, so
    300 bytes can hand back a 17 GB tensor of uninitialised memory, committed when first touched."""
    storages, seen, stack = {}, set(), [obj]
    while stack:                    # no recursion, each container once: a crafted pickle may nest deeply, or in a loop
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storages[item.untyped_storage().data_ptr()] = item.untyped_storage().nbytes()
        elif isinstance(item, (dict, list, tuple, set, frozenset)) and id(item) not in seen:
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
    declared = sum(storages.values())
    if declared > size:
        raise CheckpointError(REFUSED.format(
            f"its {size:,} bytes declare {declared / 1e6:,.0f} MB of tensors, more than the file holds"))


def _torch_load_error(error: Exception, head: bytes) -> CheckpointError:
    """Explain why `torch.load(weights_only=True)` stopped, from its error and the file's start."""
    message = str(error)
    if isinstance(error, pickle.UnpicklingError):
        found = UNSAFE_GLOBAL.search(message)
        if found:                   # torch writes builtins.exec as plain "exec"
            name = found[1] if "." in found[1] else f"builtins.{found[1]}"
            is_class = name.rpartition(".")[2][:1].isupper()      # a pickled object, e.g. a model
            return CheckpointError(REFUSED.format(f"it asks to run code: {name}")
                                   + (SAVE_WEIGHTS if is_class else ""))
        if "Unsupported operand" in message and head.startswith((b"\x80", b"PK")):
            # a pickle (or PyTorch's zip of one) with opcodes the loader lacks, e.g. protocol 4's FRAME
            return CheckpointError(REFUSED.format(
                "it uses pickle instructions the safe loader does not accept; re-save it with "
                "torch.save's default protocol, or as safetensors"))
    if "TorchScript" in message:
        return CheckpointError("refused: this file is a TorchScript program, not a plain weights "
                               "file; only tensors are loaded")
    if not head:
        return CheckpointError(f"{NOT_WEIGHTS}: the file is empty")
    if head.startswith((b"\x80", b"PK")):
        return CheckpointError(f"{NOT_WEIGHTS}: it looks like one but is truncated or damaged")
    return CheckpointError(f"{NOT_WEIGHTS}: it starts with {head[:8]!r}, which neither format does")


def _find_state_dict(obj) -> dict:
    """The dict itself, or the first dict found under one of `STATE_DICT_KEYS`."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"no state dict found: the file holds a {type(obj).__name__}, "
                              "not a dict of named tensors")
    inner = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)), None)
    if inner is not None:
        return inner
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = ", ".join(_first([repr(k) for k in obj], 10)) or "none"
        expected = ", ".join(repr(k) for k in STATE_DICT_KEYS)
        raise CheckpointError(f"no state dict found: expected tensors, or a dict of them under one of "
                              f"{expected}; the file's top-level keys are: {keys}")
    return obj


def _check_tensors(state_dict: dict) -> dict[str, torch.Tensor]:
    if len(state_dict) > MAX_TENSORS:
        raise CheckpointError(f"the state dict holds {len(state_dict):,} entries; at most {MAX_TENSORS:,} are read "
                              "(a ResNet-152 has about 1,000)")
    bad = [f"{k!r} ({type(v).__name__})" for k, v in state_dict.items()
           if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(f"the state dict must map names to tensors, but holds: "
                              f"{', '.join(_first(bad))}")
    return state_dict


def _check_storage(state_dict: dict[str, torch.Tensor], size: int) -> None:
    """Refuse tensors that are not plain numbers held in their own bytes: a pickle can describe a
    huge tensor over a few bytes (stride 0, or many tensors viewing one storage), which costs
    nothing to load and gigabytes once a model copies it; meta tensors hold no values; complex
    and bool weights would be cast silently (the imaginary part dropped; True as 1.0)."""
    total = 0
    for name, tensor in state_dict.items():
        if tensor.layout != torch.strided or tensor.device.type != "cpu" or tensor.is_quantized:
            raise CheckpointError(f"tensor {name!r} holds no plain values (a {tensor.device.type}, "
                                  f"{str(tensor.layout).removeprefix('torch.')} tensor): only dense tensors are read")
        if tensor.dtype not in DTYPES:
            raise CheckpointError(f"tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}: weights must be "
                                  "real numbers (a float or integer type)")
        span = 1 + sum((n - 1) * abs(s) for n, s in zip(tensor.shape, tensor.stride())) if tensor.numel() else 0
        if span < tensor.numel():
            raise CheckpointError(REFUSED.format(
                f"tensor {name!r} of shape {list(tensor.shape)} repeats {span:,} stored values as "
                f"{tensor.numel():,} (stride {list(tensor.stride())})"))
        total += tensor.numel() * tensor.element_size()
    if total > INFLATION_LIMIT * size + INFLATION_SLACK:
        raise CheckpointError(REFUSED.format(
            f"its {size:,} bytes describe {total / 1e6:,.0f} MB of tensors: its tensors share their values"))


def strip_shared_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the key prefixes that every key shares, one after another: DataParallel's `module.`,
    torch.compile's `_orig_mod.`, a Lightning module's attribute (`model.`), ..."""
    while len(state_dict) > 1 and all("." in k for k in state_dict):
        heads = {k.split(".", 1)[0] for k in state_dict}
        if len(heads) != 1:
            break
        prefix = f"{heads.pop()}."
        state_dict = {k.removeprefix(prefix): v for k, v in state_dict.items()}
    return state_dict


@dataclass(frozen=True)
class Mismatch:
    """How a state dict differs from the parameter names and shapes a model expects."""
    missing: list[str]
    unexpected: list[str]
    shapes: list[str]           # "name: file [..] vs model [..]"

    @classmethod
    def between(cls, expected: dict[str, torch.Size], state_dict: dict[str, torch.Tensor]) -> "Mismatch":
        return cls([k for k in expected if k not in state_dict],
                   [k for k in state_dict if k not in expected],
                   [f"{k}: file {list(v.shape)} vs model {list(expected[k])}"
                    for k, v in state_dict.items() if k in expected and v.shape != expected[k]])

    def __len__(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.shapes)

    def __str__(self) -> str:
        return "; ".join(f"{len(items)} {one if len(items) == 1 else many} ({', '.join(_first(items))})"
                         for one, many, items in (("missing key", "missing keys", self.missing),
                                                  ("unexpected key", "unexpected keys", self.unexpected),
                                                  ("shape mismatch", "shape mismatches", self.shapes))
                         if items)


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load `state_dict` into `model` strictly; names and shapes are compared first, so a
    mismatch is one short message rather than PyTorch's full list."""
    mismatch = Mismatch.between({k: v.shape for k, v in model.state_dict().items()}, state_dict)
    if mismatch:
        raise CheckpointError(f"the weights do not fit this model: {mismatch}")
    model.load_state_dict(state_dict)


def build_strictly(build, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """`build()` holding `state_dict`, built for real only once the model it builds, read on the
    meta device (no memory, no initialisation), has exactly the file's names and shapes: a file's
    shapes never make a model larger than the tensors the file holds."""
    try:
        with torch.device("meta"):
            expected = {k: v.shape for k, v in build().state_dict().items()}
    except ValueError as e:         # an option the model refuses, e.g. an even ECA kernel
        raise CheckpointError(f"the file's shapes describe a model that cannot be built: {e}") from e
    mismatch = Mismatch.between(expected, state_dict)
    if mismatch:
        raise CheckpointError(f"the weights do not fit this model: {mismatch}")
    model = build()
    model.load_state_dict(state_dict)
    return model


def _first(items: list[str], n: int = SHOWN) -> list[str]:
    return items[:n] + ([f"... {len(items) - n} more"] if len(items) > n else [])
