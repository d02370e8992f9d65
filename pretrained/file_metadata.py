"""What a user's safetensors file may say about itself, read field by field and checked.

Three fields of the `__metadata__` strings are read: `labels` (a JSON list of class names),
`preprocess` (a JSON object of `Preprocess` fields: input size, crop, interpolation, mean, std,
each checked by `Preprocess`) and, of `architecture` (as `training.train.save` writes it), only
`stem_pool`, which the weights cannot show. Other fields are ignored. A field that is wrong is named in the
error, with what it should hold.
"""
import json
from dataclasses import asdict, dataclass, fields

from .checkpoint import CheckpointError
from .preprocess import Preprocess

MAX_FIELD_CHARS = 4_000_000      # one field's JSON text at most (100,000 class names of 40 characters)
MAX_CLASSES = 100_000            # ImageNet-21k has 21,841
MAX_LABEL_CHARS = 200            # one class name at most


@dataclass(frozen=True)
class FileMetadata:
    labels: tuple[str, ...] | None = None      # None: the file names no classes
    preprocess: Preprocess | None = None       # None: the file says nothing about its input
    stem_pool: bool | None = None              # None: not said (a stem with its max-pool, as torchvision's)

    @classmethod
    def read(cls, meta: dict[str, str]) -> "FileMetadata":
        """The checked fields of a safetensors file's metadata; a CheckpointError names a bad one."""
        return cls(_field(meta, "labels", _labels, "a JSON list of class names"),
                   _field(meta, "preprocess", lambda value: Preprocess(**value), "a JSON object of Preprocess "
                          f"fields ({', '.join(f.name for f in fields(Preprocess))})"),
                   _field(meta, "architecture", _stem_pool, 'a JSON object (e.g. {"stem_pool": false})'))

    def to_strings(self) -> dict[str, str]:
        """The fields as a safetensors file would hold them (`read` gives back an equal object)."""
        values = {"labels": self.labels and list(self.labels), "preprocess": self.preprocess and asdict(self.preprocess),
                  "architecture": None if self.stem_pool is None else {"stem_pool": self.stem_pool}}
        return {key: json.dumps(value) for key, value in values.items() if value is not None}


def _labels(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise TypeError("not a list of names")
    if len(value) > MAX_CLASSES:
        raise ValueError(f"{len(value):,} names; at most {MAX_CLASSES:,} are read")
    labels = tuple(map(str, value))
    longest = max(range(len(labels)), key=lambda i: len(labels[i]), default=None)
    if longest is not None and len(labels[longest]) > MAX_LABEL_CHARS:
        raise ValueError(f"name {longest} is {len(labels[longest]):,} characters long; at most {MAX_LABEL_CHARS}")
    return labels


def _stem_pool(value) -> bool | None:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    pool = value.get("stem_pool")
    if pool is not None and not isinstance(pool, bool):
        raise ValueError(f"stem_pool must be true or false, got {pool!r:.40}")
    return pool


def _field(meta: dict[str, str], key: str, read, expected: str):
    """`read(json.loads(meta[key]))`, None without the field, or a CheckpointError naming it."""
    text = meta.get(key)
    if text is None:
        return None
    if len(text) > MAX_FIELD_CHARS:
        raise CheckpointError(f"the file's {key!r} metadata is {len(text):,} characters long; at most "
                              f"{MAX_FIELD_CHARS:,} are read")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"the file's {key!r} metadata is not {expected}: {text[:80]!r}") from e
    try:
        return read(value)
    except TypeError as e:
        raise CheckpointError(f"the file's {key!r} metadata is not {expected}: {text[:80]!r}") from e
    except ValueError as e:
        raise CheckpointError(f"the file's {key!r} metadata: {e}") from e
