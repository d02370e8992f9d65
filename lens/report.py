"""Attention report for slides and batch use: per image, the overview, per-block PNGs and a JSON
of every block's weights.

    python -m lens report IMAGE... --model cbam-resnet18-shapes --out DIR

Writes DIR/<image stem>/overview.png, channels_by_depth.png, model_input.png,
blocks/<block>_channels.png, blocks/<block>_spatial.png and attention.json; each figure is headed by
the image, the model and its top prediction. The notes the app shows beside an image (what resizing
and cropping cost it, an animation's first frame, what a bundled model knows and its model card) are
printed under the image's line and kept in attention.json ("notes"). `--faithfulness` adds, per
block, deletion and insertion for the top class (`lens.faithfulness.block_panel`: the block's map,
its reversal, Grad-CAM, a centred Gaussian, random maps' band) to attention.json ("faithfulness")
and every block's curves to faithfulness.png. An unreadable image is
reported and skipped; the others are still processed (exit status 1 if any failed, 2 if the model
cannot be loaded or has no attention blocks).
"""
import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure

import pretrained
from blocks import attention_sites
from viz import DEFAULT_CMAP, figure_png, spatial_view_figure
from viz.markup import literal

from .card_notes import model_note
from .domain_note import domain_note
from .faithfulness import Panel, block_panel
from .faithfulness_export import panel_json, panels_figure
from .inspection import MAX_TOP_K, Inspection, inspect_image
from .faithfulness_options import add_curve_options
from .model_options import add_model_options, load_model


def report_notes(inspection: Inspection) -> list[str]:
    """The notes the app shows beside this image and model: what decoding, resizing and cropping
    cost the image, what a bundled model knows and what its model card measured."""
    model = inspection.model
    card = model_note(model.name) if model.source == "bundled" else None
    return [*inspection.notes, *filter(None, (domain_note(model), card))]


def heading(inspection: Inspection) -> str:
    """What heads each figure of the report: the image, the model and the top prediction."""
    top = inspection.predictions(1)[0]
    return (f"{inspection.image_name} through {inspection.model.name}: top prediction '{top.label}' "
            f"({top.probability:.1%})")


def report_figures(inspection: Inspection, top_k: int, cmap: str, cams: dict | None = None,
                   panels: list[Panel] | None = None) -> Iterator[tuple[str, Figure]]:
    """Each figure of one image's report with its path in the report's folder, headed (above its
    own title) by `heading`: a slide names the image, the model and the top prediction. `cams`:
    each block's Grad-CAM (`Inspection.grad_cams`), drawn beside its map; `panels`: each block's
    deletion and insertion (`lens.faithfulness.block_panel`), drawn in faithfulness.png."""
    text = literal(heading(inspection))        # a '$' in a file name or label is no maths

    def headed(fig: Figure) -> Figure:
        fig.suptitle("\n".join(filter(None, (text, fig.get_suptitle()))), fontsize=9, wrap=True)
        return fig

    yield "overview.png", headed(inspection.overview_figure(top_k=top_k, cmap=cmap))
    yield "channels_by_depth.png", headed(inspection.depth_figure())
    if panels is not None:
        yield "faithfulness.png", headed(panels_figure(panels, f"Deletion and insertion, {panels[0].fill} fill: does "
                                                               f"the model use what each map marks for "
                                                               f"'{panels[0].target_label}'?"))
    for name in inspection.block_names:
        yield f"blocks/{name}_channels.png", headed(inspection.channels_figure(name, top_k=top_k))
        yield f"blocks/{name}_spatial.png", headed(inspection.map_figure(name, top_k=top_k, cmap=cmap))
        if cams is not None:
            yield f"blocks/{name}_gradcam.png", headed(spatial_view_figure(
                inspection.image, cams[name], cmap=cmap, title=f"{name}: {cams[name].label}"))


def write_report(path: Path, loaded: pretrained.LoadedModel, target: Path, cmap: str, top_k: int, dpi: int,
                 attribution: str = "none", faithfulness: tuple[str, int] | None = None) -> list[str]:
    """One image's report in `target`, one inspection's figures and JSON (with
    `attribution="gradcam"`, each block's Grad-CAM of the top class too, from one backward pass;
    with `faithfulness` = (fill, steps), each block's deletion and insertion panel for the top class);
    returns its notes (`report_notes`)."""
    inspection = inspect_image(loaded, path.read_bytes(), path.name)
    cams = inspection.grad_cams() if attribution == "gradcam" else None
    panels = None if faithfulness is None else [block_panel(inspection, name, fill=faithfulness[0],
                                                            steps=faithfulness[1]) for name in inspection.block_names]
    notes = report_notes(inspection)
    (target / "blocks").mkdir(parents=True, exist_ok=True)
    inspection.image.save(target / "model_input.png")
    for name, fig in report_figures(inspection, top_k, cmap, cams, panels):
        (target / name).write_bytes(figure_png(fig, dpi))
    data = inspection.to_json(top_k, cams)
    for block, panel in zip(data["blocks"], panels or [], strict=panels is not None):
        block["faithfulness"] = panel_json(panel)
    (target / "attention.json").write_text(json.dumps({**data, "notes": notes}, allow_nan=False))
    return notes


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
    parser.add_argument("--cmap", type=colormap, default=DEFAULT_CMAP, metavar="NAME",
                        help="matplotlib colormap of the spatial maps (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K",
                        help="channels labelled in the charts, averaged in the SE/ECA maps and listed as "
                             f"top_channels in attention.json, 1 to {MAX_TOP_K} (default: %(default)s)")
    parser.add_argument("--attribution", choices=["none", "gradcam"], default="none",
                        help="gradcam: also each block's Grad-CAM of the top class (blocks/<block>_gradcam.png; "
                             "grad_cam and grad_cam_agreement, Spearman's rank correlation with the block's map, "
                             "in attention.json), from one backward pass per image (default: %(default)s)")
    parser.add_argument("--faithfulness", action="store_true",
                        help="also each block's deletion and insertion curves for the top class: its map beside "
                             "its reversal, Grad-CAM, a centred Gaussian and 8 random maps' 5-95%% band (curves, "
                             "AUCs and verdicts per block in attention.json, the curves in faithfulness.png); "
                             "hundreds of forward passes per block")
    add_curve_options(parser)
    parser.add_argument("--dpi", type=int, default=110,
                        help="resolution of the figure PNGs, e.g. 300 for slides (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 1 <= args.top_k <= MAX_TOP_K:
        parser.error(f"--top-k must be from 1 to {MAX_TOP_K}, got {args.top_k}")
    if args.dpi < 1:
        parser.error(f"--dpi must be at least 1, got {args.dpi}")
    if args.faithfulness_steps < 1:
        parser.error(f"--faithfulness-steps must be at least 1, got {args.faithfulness_steps}")
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
                notes = write_report(path, loaded, args.out / folder, args.cmap, args.top_k, args.dpi,
                                     args.attribution, (args.faithfulness_fill, args.faithfulness_steps)
                                     if args.faithfulness else None)
                print(f"{path} -> {args.out / folder}", *(f"  note: {note}" for note in notes), sep="\n")
            except (OSError, pretrained.ImageError) as e:
                failed += 1
                print(f"error: {path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}", file=sys.stderr)
    return 1 if failed else 0
