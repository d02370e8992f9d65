"""ImageNet-1k SE and ECA ResNets from timm (timm has no pretrained CBAM).

Weights are looked for, in order, at `weights_home() / "imagenet" / <name>.{safetensors,pth}`
(put a file there to work fully offline), in the Hugging Face / torch hub caches, and only then
downloaded once (timm caches them). With no network the load fails within seconds, saying what to
do, instead of hanging on a download.
"""
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from torch import nn

IMAGENET_MODELS = {   # timm name -> (attention, what it is)
    "legacy_seresnet18.in1k": ("se", "SE-ResNet-18, SENet authors' weights"),
    "legacy_seresnet34.in1k": ("se", "SE-ResNet-34, SENet authors' weights"),
    "legacy_seresnet50.in1k": ("se", "SE-ResNet-50, SENet authors' weights"),
    "legacy_seresnet101.in1k": ("se", "SE-ResNet-101, SENet authors' weights"),
    "legacy_seresnet152.in1k": ("se", "SE-ResNet-152, SENet authors' weights"),
    "seresnet50.a1_in1k": ("se", "SE-ResNet-50, timm 'ResNet strikes back' A1 recipe"),
    "ecaresnet26t.ra2_in1k": ("eca", "ECA-ResNet-26-T (tiered stem)"),
    "ecaresnet50d.miil_in1k": ("eca", "ECA-ResNet-50-D (deep stem, avg-down)"),
    "ecaresnet50t.a1_in1k": ("eca", "ECA-ResNet-50-T (tiered stem)"),
    "ecaresnet101d.miil_in1k": ("eca", "ECA-ResNet-101-D (deep stem, avg-down)"),
    "ecaresnetlight.miil_in1k": ("eca", "ECA-ResNet-Light"),
}
LOCAL_SUFFIXES = (".safetensors", ".pth")
CONNECT_TIMEOUT_S = 3.0
HTTPS_PORT = 443


class ModelUnavailable(RuntimeError):
    """The weights are not on this machine and cannot be downloaded now."""


def weights_home() -> Path:
    """Where Attention Lens looks for weight files: $ATTENTION_LENS_HOME or ~/.cache/attention-lens."""
    return Path(os.environ.get("ATTENTION_LENS_HOME", "~/.cache/attention-lens")).expanduser()


def local_file(name: str) -> Path | None:
    for suffix in LOCAL_SUFFIXES:
        path = weights_home() / "imagenet" / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def cached_file(cfg) -> Path | None:
    """The file timm downloaded earlier, if any (Hugging Face hub cache, or torch hub's)."""
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
        return None
    import torch.hub
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
    return path if path.is_file() else None


def download_host(cfg) -> str:
    return "huggingface.co" if cfg.hf_hub_id else urlparse(cfg.url).hostname


def reachable(host: str, port: int | None = None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds."""
    try:
        socket.create_connection((host, port or HTTPS_PORT), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_imagenet_model(name: str) -> nn.Module:
    """A timm ImageNet model in eval mode, from a local file, a cache, or a one-time download."""
    import timm
    cfg = timm.models.get_pretrained_cfg(name)
    found = local_file(name) or cached_file(cfg)
    if found is not None:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(found)))
        return model.eval()
    host = download_host(cfg)
    if not reachable(host):
        target = weights_home() / "imagenet" / f"{name}.safetensors"
        raise ModelUnavailable(
            f"{name} needs a one-time download of its ImageNet weights from {host}, which cannot be "
            f"reached from this machine. Connect to the internet once and choose it again (the "
            f"weights are then cached), or put the weights file at {target}. The bundled models "
            f"work offline.")
    return timm.create_model(name, pretrained=True).eval()   # downloads with progress, then caches
