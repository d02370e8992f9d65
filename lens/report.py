"""Attention report for slides and batch use: per image, the overview, per-block PNGs and a JSON
of every block's weights.

    python -m lens report IMAGE... --model cbam-resnet18-shapes --out DIR

Writes DIR/<image stem>/overview.png, channels_by_depth.png, model_input.png,
blocks/<block>_channels.png, blocks/<block>_spatial.png and attention.json. An unreadable image is
reported and skipped; the others are still processed (exit status 1 if any failed, 2 if the model
cannot be loaded or has no attention blocks).
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib
import torch

import pretrained
from blocks import attention_sites
from viz import figure_png, spatial_view_figure

from .inspection import MAX_TOP_K, inspect_image
from .model_options import add_model_options, load_model


def write_report(path: Path, loaded: pretrained.LoadedModel, target: Path, cmap: str, top_k: int, dpi: int,
                 attribution: str = "none") -> Path:
    """One image's report in `target`: a loop over the blocks of one inspection (with
    `attribution="gradcam"`, each block's Grad-CAM of the top class beside it, from one backward pass)."""
    inspection = inspect_image(loaded, path.read_bytes(), path.name)
    cams = inspection.grad_cams() if attribution == "gradcam" else None
    (target / "blocks").mkdir(parents=True, exist_ok=True)
    inspection.image.save(target / "model_input.png")
    (target / "overview.png").write_bytes(figure_png(inspection.overview_figure(top_k=top_k, cmap=cmap), dpi))
    (target / "channels_by_depth.png").write_bytes(figure_png(inspection.depth_figure(), dpi))
    for name in inspection.block_names:
        (target / "blocks" / f"{name}_channels.png").write_bytes(figure_png(
            inspection.channels_figure(name, top_k=top_k), dpi))
        (target / "blocks" / f"{name}_spatial.png").write_bytes(figure_png(
            inspection.map_figure(name, top_k=top_k, cmap=cmap), dpi))
        if cams is not None:
            (target / "blocks" / f"{name}_gradcam.png").write_bytes(figure_png(spatial_view_figure(
                inspection.image, cams[name], cmap=cmap, title=f"{name}: {cams[name].label}"), dpi))
    (target / "attention.json").write_text(json.dumps(inspection.to_json(top_k, cams), allow_nan=False))
    return target


def report_folders(paths: list[Path]) -> list[str]:
    """One folder name per image, its file stem; a repeated stem (a.png then a.jpg) gets the
    first of -2, -3, ... that is neither used nor another image's own stem (a-2.png), so no report
    overwrites another."""
    stems, used, names = {path.stem for path in paths}, set(), []
    for path in paths:
        name, n = path.stem, 1
        while name in used or (n > 1 and name in stems):
            n += 1
            name = f"{path.stem}-{n}"
        used.add(name)
        names.append(name)
    return names


def colormap(name: str) -> str:
    """argparse type: a registered matplotlib colormap."""
    if name not in matplotlib.colormaps:
        raise argparse.ArgumentTypeError(f"unknown colormap {name!r}; choose one of matplotlib's colormaps, "
                                         "e.g. jet, turbo, viridis, inferno, magma, gray")
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lens report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                        help="image files (JPEG, PNG, WebP, BMP, GIF, TIFF)")
    add_model_options(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the reports, one subfolder per image")
    parser.add_argument("--cmap", type=colormap, default="jet", metavar="NAME",
                        help="matplotlib colormap of the spatial maps (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K",
                        help="channels labelled in the charts, averaged in the SE/ECA maps and listed as "
                             f"top_channels in attention.json, 1 to {MAX_TOP_K} (default: %(default)s)")
    parser.add_argument("--attribution", choices=["none", "gradcam"], default="none",
                        help="gradcam: also each block's Grad-CAM of the top class (blocks/<block>_gradcam.png; "
                             "grad_cam and grad_cam_agreement, Spearman's rank correlation with the block's map, "
                             "in attention.json), from one backward pass per image (default: %(default)s)")
    parser.add_argument("--dpi", type=int, default=110,
                        help="resolution of the figure PNGs, e.g. 300 for slides (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 1 <= args.top_k <= MAX_TOP_K:
        parser.error(f"--top-k must be from 1 to {MAX_TOP_K}, got {args.top_k}")
    if args.dpi < 1:
        parser.error(f"--dpi must be at least 1, got {args.dpi}")
    loaded = load_model(args, parser)
    if loaded is None:
        return 2
    if not attention_sites(loaded.model):
        print(f"error: model {args.model!r} has no SE, ECA or CBAM attention blocks: nothing to report",
              file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        parser.error(f"cannot create --out {args.out}: {e.strerror or e}")
    failed = 0
    with torch.inference_mode():
        for path, folder in zip(args.images, report_folders(args.images)):
            try:
                written = write_report(path, loaded, args.out / folder, args.cmap, args.top_k, args.dpi,
                                       args.attribution)
                print(f"{path} -> {written}")
            except (OSError, pretrained.ImageError) as e:
                failed += 1
                print(f"error: {path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}", file=sys.stderr)
    return 1 if failed else 0
