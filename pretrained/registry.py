"""Every model the app can offer, and loading one by name or from a file.

    pretrained.available()            -> [ModelEntry]  (no weights are read)
    pretrained.load("cbam-resnet18-shapes" | "ecaresnet50d.miil_in1k" | path | bytes) -> LoadedModel

Sources: "bundled" (trained here by `training.train`, committed, offline), "timm" (ImageNet, one
download), "official" (the ECA-Net / CBAM authors' checkpoints, from a file you place), "file" (a
user's own weights for one of our architectures or a timm SE/ECA ResNet). Failures raise
exceptions whose message says what to do: `CheckpointError` (a file that cannot be used),
`ModelUnavailable` (weights not here).
"""
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from blocks import attention_resnet

from .architecture import model_from_state_dict
from .checkpoint import CheckpointError, build_strictly
from .file_metadata import FileMetadata
from .isolation import read_isolated
from .device import resolve_device
from .imagenet import IMAGENET_MODELS, ModelUnavailable, load_imagenet_model, weights_home
from .preprocess import Preprocess
from .bundled import WEIGHTS_DIR

DEFAULT_MODEL = "cbam-resnet18-shapes"
TORCHVISION_EVAL = Preprocess(224, 0.875, "bilinear")      # Resize(256) + CenterCrop(224)
WEIGHTS_SUFFIXES = (".pt", ".pth", ".tar", ".bin", ".safetensors")
OFFICIAL_FILES = {  # name -> (file name the authors publish, attention, what it is)
    "ecanet18-official": ("eca_resnet18_k3577.pth.tar", "eca", "ECA-Net18, ECA-Net authors' ImageNet weights"),
    "ecanet34-official": ("eca_resnet34_k3357.pth.tar", "eca", "ECA-Net34, ECA-Net authors' ImageNet weights"),
    "ecanet50-official": ("eca_resnet50_k3557.pth.tar", "eca", "ECA-Net50, ECA-Net authors' ImageNet weights"),
    "ecanet101-official": ("eca_resnet101_k3357.pth.tar", "eca", "ECA-Net101, ECA-Net authors' ImageNet weights"),
    "ecanet152-official": ("eca_resnet152_k3357.pth.tar", "eca", "ECA-Net152, ECA-Net authors' ImageNet weights"),
    "cbam-resnet50-official": ("RESNET50_CBAM_new_name_wrap.pth.tar", "cbam",
                               "CBAM-ResNet-50, CBAM authors' ImageNet weights"),
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str                    # "bundled" | "timm" | "official" | "file"
    attention: str | None          # "se" | "eca" | "cbam" | None
    description: str
    preprocess: Preprocess
    path: Path | None = None       # the weights file, where it is known before loading
    shapes_version: int | None = None   # bundled: the version of the shapes dataset it was trained on

    @property
    def downloads(self) -> bool:
        return self.source == "timm"


def class_names(text: str) -> tuple[str, ...]:
    """Class names written one per line (blank lines and surrounding spaces ignored)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class LoadedModel:
    name: str
    source: str
    model: nn.Module = field(repr=False)   # eval mode
    preprocess: Preprocess
    labels: tuple[str, ...]
    description: str

    def configured(self, input_size: int | None = None, crop_pct: float | None = None,
                   labels: tuple[str, ...] | None = None) -> "LoadedModel":
        """The same model seeing images at `input_size` with centre crop `crop_pct`, its classes
        named `labels`: what a bare weights file cannot say. None keeps the current setting."""
        if labels is not None and len(labels) != len(self.labels):
            raise ValueError(f"{len(labels)} class names for {len(self.labels)} classes")
        if input_size is not None and (not isinstance(input_size, int) or not 16 <= input_size <= 1024):
            raise ValueError(f"input size must be a whole number of pixels from 16 to 1024, got {input_size!r}")
        if crop_pct is not None and not 0 < crop_pct <= 1:
            raise ValueError(f"crop must be a share of the resized image in (0, 1], got {crop_pct!r}")
        p = self.preprocess
        preprocess = replace(p, input_size=p.input_size if input_size is None else input_size,
                             crop_pct=p.crop_pct if crop_pct is None else crop_pct)
        return replace(self, preprocess=preprocess, labels=self.labels if labels is None else tuple(labels))


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """ImageNet-1k class names, shipped with timm (no download): the first synonym of each."""
    from timm.data import ImageNetInfo
    return tuple(d.split(",")[0] for d in ImageNetInfo().label_descriptions())


def bundled_description(arch: dict, training: dict, classes: int) -> str:
    """What the sidebar says about a bundled model, from its weights' metadata."""
    recipe = training["recipe"]
    smoothing = recipe["label_smoothing"]
    stem = "" if arch.get("stem_pool", True) else ", no stem max-pool"
    text = (f"{(arch['attention'] or 'plain').upper()} ResNet-{arch['depth']} (width {arch['width']}{stem}) trained "
            f"on the bundled shapes dataset (v{recipe.get('dataset', 1)}); works offline "
            f"({training['validation_accuracy']:.1%} validation accuracy).")
    if smoothing:       # the targets were never one-hot: a sure answer cannot reach 100%
        text += (f" Trained with label smoothing {smoothing}, so a sure answer reads about "
                 f"{1 - smoothing + smoothing / classes:.0%}, not 100%.")
    return text


def _bundled() -> list[ModelEntry]:
    entries = []
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        arch, training = json.loads(meta["architecture"]), json.loads(meta["training"])
        entries.append(ModelEntry(path.stem, "bundled", arch["attention"],
                                  bundled_description(arch, training, len(json.loads(meta["labels"]))),
                                  Preprocess(**json.loads(meta["preprocess"])), path,
                                  training["recipe"].get("dataset", 1)))
    return entries


def _timm_entries() -> list[ModelEntry]:
    import timm
    entries = []
    for name, (attention, description) in IMAGENET_MODELS.items():
        cfg = timm.models.get_pretrained_cfg(name)
        entries.append(ModelEntry(name, "timm", attention, f"{description}; ImageNet-1k, downloads once",
                                  Preprocess(cfg.input_size[-1], cfg.crop_pct, cfg.interpolation,
                                             tuple(cfg.mean), tuple(cfg.std))))
    return entries


def _official_entries() -> list[ModelEntry]:
    return [ModelEntry(name, "official", attention, f"{description}; needs the authors' file {filename} on this "
                       "machine", TORCHVISION_EVAL, weights_home() / "official" / filename)
            for name, (filename, attention, description) in OFFICIAL_FILES.items()]


def available() -> list[ModelEntry]:
    """Every model the app can offer, bundled first (the default leads)."""
    bundled = sorted(_bundled(), key=lambda e: e.name != DEFAULT_MODEL)
    return bundled + _timm_entries() + _official_entries()


def load(source: str | Path | bytes, name: str | None = None, device: str | torch.device | None = None
         ) -> LoadedModel:
    """Load a model by registry name, or from a weights file (a path, or an upload's bytes), onto
    `device` (`pretrained.device.resolve_device`: default a CUDA GPU when there is one, else the CPU)."""
    device = resolve_device(device)
    loaded = _load(source, name)
    return loaded if device.type == "cpu" else replace(loaded, model=loaded.model.to(device))


def _load(source: str | Path | bytes, name: str | None) -> LoadedModel:
    if isinstance(source, str) and not Path(source).is_file():
        entries = {e.name: e for e in available()}
        if source in entries:
            return _load_entry(entries[source])
        if not _looks_like_a_path(source):
            raise ValueError(f"unknown model {source!r}; choose one of {', '.join(entries)}, "
                             f"or give the path of a weights file")
    return _load_file(source, name or (Path(source).name if not isinstance(source, bytes) else "uploaded file"))


def _looks_like_a_path(text: str) -> bool:
    """Whether a string that names no model names a file (even a missing one) or a folder."""
    path = Path(text)
    return path.exists() or path.name != text or text.lower().endswith(WEIGHTS_SUFFIXES)


def _load_entry(entry: ModelEntry) -> LoadedModel:
    if entry.source == "timm":
        model = load_imagenet_model(entry.name)
        return LoadedModel(entry.name, "timm", model, entry.preprocess, imagenet_labels(), entry.description)
    if entry.source == "official" and not entry.path.is_file():
        raise ModelUnavailable(f"{entry.name} is loaded from the authors' checkpoint file, which is "
                               f"not on this machine: download {entry.path.name} from the paper's "
                               f"repository and put it at {entry.path}")
    loaded = load_trained(entry.path) if entry.source == "bundled" else _load_file(entry.path, entry.name)
    return LoadedModel(entry.name, entry.source, loaded.model, entry.preprocess, loaded.labels, entry.description)


def load_trained(path: Path) -> LoadedModel:
    """A file `training.train.save` wrote (a bundled model, or a candidate beside the model card),
    on the CPU: built as its `architecture` metadata says, since the stem's max-pool leaves no trace
    in the weights, and holding them strictly. safetensors only (nothing is unpickled), read in this
    process: for files made here; a user's file is read in isolation and inferred from its weights."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    arch, training = json.loads(meta["architecture"]), json.loads(meta["training"])
    labels = tuple(json.loads(meta["labels"]))
    model = build_strictly(lambda: attention_resnet(arch["depth"], arch["attention"], arch["num_classes"],
                                                    arch["width"], stem_pool=arch.get("stem_pool", True),
                                                    **arch["options"]),
                           load_file(str(path))).eval()
    return LoadedModel(path.stem, "bundled", model, Preprocess(**json.loads(meta["preprocess"])), labels,
                       bundled_description(arch, training, len(labels)))


def _load_file(source: Path | bytes, name: str) -> LoadedModel:
    """A weights file not shipped with the app: our layout, timm's, or an official checkpoint, read
    in a child process (`isolation`); built from its weights, and from its `architecture` metadata
    where it says what weights cannot (a stem without its max-pool)."""
    checkpoint = read_isolated(source)
    meta = FileMetadata.read(checkpoint.metadata)
    built = model_from_state_dict(checkpoint.state_dict, stem_pool=meta.stem_pool)
    classes = built.num_classes
    if meta.labels is not None:
        labels = meta.labels
        if len(labels) != classes:
            raise CheckpointError(f"the file names {len(labels)} classes but its classifier has {classes}")
    elif classes == 1000:
        labels = imagenet_labels()
    else:
        labels = tuple(f"class {i}" for i in range(classes))
    return LoadedModel(name, "file", built.model, meta.preprocess or TORCHVISION_EVAL, labels,
                       f"{built.architecture} from {name} ({built.layout} layout, {classes} classes)")
