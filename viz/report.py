"""Attention report for slides and batch use: per image, the overview, per-block PNGs and a JSON
of every block's weights.

    python -m viz.report IMAGE... --model cbam-resnet18-shapes --out DIR

Writes DIR/<image stem>/overview.png, channels_by_depth.png, blocks/<block>_channels.png,
blocks/<block>_spatial.png and attention.json. An unreadable image is reported and skipped; the
others are still processed (exit status 1 if any failed, 2 if the model cannot be loaded).
"""
import argparse
import json
import sys
from pathlib import Path

import torch

import pretrained
from blocks import Capture, capture_attention, strongest_channels

from .channels import channel_depth_figure, channel_weights_figure
from .decode import ImageError, decode_image
from .figure import figure_png
from .heatmap import heatmap_figure
from .overview import spatial_grid_figure
from .spatial_view import spatial_view


def attention_json(capture: Capture, labels, model_name: str, image_name: str) -> dict:
    """Everything a capture holds for image 0, as plain JSON types."""
    return {
        "image": image_name, "model": model_name, "input_size": list(capture.input_size),
        "predictions": [{"class": c, "label": labels[c], "probability": round(p, 6)}
                        for c, p in capture.top_k(5)],
        "blocks": [{"name": r.name, "module": r.module, "kind": r.kind, "stage": r.stage, "block": r.block,
                    "channels": r.channels, "feature_size": list(r.feature_size),
                    "channel_weights": [round(w, 6) for w in r.channel[0].tolist()],
                    "spatial": None if r.spatial is None else [[round(v, 6) for v in row] for row in r.spatial[0].tolist()],
                    "top_channels": strongest_channels(r.channel, 10)[0].tolist()}
                   for r in capture.layers],
    }


def write_report(path: Path, loaded, out: Path, cmap: str, top_k: int) -> Path:
    image = decode_image(path.read_bytes())
    view = loaded.preprocess.view(image)
    capture = capture_attention(loaded.model, loaded.preprocess.to_tensor(view)[None], channel_maps=top_k)
    target = out / path.stem
    (target / "blocks").mkdir(parents=True, exist_ok=True)
    view.save(target / "model_input.png")
    (target / "overview.png").write_bytes(figure_png(spatial_grid_figure(view, capture.layers, cmap=cmap, top_k=top_k)))
    (target / "channels_by_depth.png").write_bytes(figure_png(channel_depth_figure(
        [r.name for r in capture.layers], [r.channel[0] for r in capture.layers])))
    for r in capture.layers:
        (target / "blocks" / f"{r.name}_channels.png").write_bytes(figure_png(channel_weights_figure(
            r.channel[0], top_k=top_k, title=f"{r.name} ({r.kind.upper()}): {r.channels} channel weights")))
        view_map = spatial_view(r, 0, top_k)
        (target / "blocks" / f"{r.name}_spatial.png").write_bytes(figure_png(heatmap_figure(
            view, view_map.values, cmap=cmap, stretch=not view_map.absolute, title=f"{r.name}: {view_map.label}")))
    (target / "attention.json").write_text(json.dumps(attention_json(capture, loaded.labels, loaded.name, path.name)))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--model", default=pretrained.DEFAULT_MODEL, help="a name from pretrained.available() or a weights file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cmap", default="jet")
    parser.add_argument("--top-k", type=int, default=5,
                        help="channels labelled in the charts and averaged in the SE/ECA maps")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    try:
        loaded = pretrained.load(args.model)
    except (ValueError, pretrained.ModelUnavailable) as e:
        print(f"error: cannot load model {args.model!r}: {e}", file=sys.stderr)
        return 2
    failed = 0
    with torch.inference_mode():
        for path in args.images:
            try:
                print(f"{path} -> {write_report(path, loaded, args.out, args.cmap, args.top_k)}")
            except (OSError, ImageError) as e:
                failed += 1
                print(f"error: {path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
