"""Dataset study: what every attention block does over thousands of images, class by class.

    python -m lens study SOURCE --model cbam-resnet18-shapes --out DIR [--engine ray]

SOURCE is a folder with one subfolder of images per class (torchvision's `ImageFolder`) or
`shapes:v2:SEED:N` (N freshly rendered shapes images, with object masks). Images are read in
batches by a DataLoader and go through the model once; statistics stream into per-shard partials
(`lens.study_stats`), saved under DIR/shards as each shard completes, so an interrupted study
re-run with the same arguments resumes from the last completed shard and gives the same result.

Writes DIR/study.json (per block: class specificity, dead/saturated/static channels,
localisation beside baselines; `lens.study_summary`), channels.parquet (block x class x channel:
mean and variance of the weight, saturated and shut shares), images.parquet (one row per image:
prediction and per-block summaries), maps.parquet (block x class: mean spatial map) and figures/.
`--faithfulness N` also scores deletion and insertion of every block's map beside Grad-CAM, a
centred Gaussian and random maps on N images spread over the source (`lens.study_faithfulness`;
any source, no mask needed): per block and class in study.json, per image in images.parquet,
figures/faithfulness.png. `--engine ray` runs the same batches on a Ray cluster (`lens.study_ray`),
faithfulness included.
"""
import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

import pretrained
from blocks import attention_kind, attention_sites
from viz import figure_png
from viz.study import channel_health_figure, class_maps_figure, excitation_figure, specificity_figure

from .faithfulness_options import add_curve_options
from .model_options import add_model_options, load_model
from .study_batch import compute_batch
from .study_faithfulness import Faithfulness, faithfulness_figure, faithfulness_line
from .study_ray import run_ray
from .study_source import SourceSpec, StudyDataset, collate, parse_source
from .study_stats import Partial
from .study_summary import block_moments, summarise

FORMAT = 1                 # bumped when shard files change meaning


@dataclass(frozen=True)
class StudyModel:
    """How to load the study's model: all a Ray worker needs to load it once."""
    source: str
    input_size: int | None = None
    crop_pct: float | None = None
    labels: tuple[str, ...] | None = None
    device: str | None = None

    def load(self) -> pretrained.LoadedModel:
        return pretrained.load(self.source, device=self.device).configured(self.input_size, self.crop_pct, self.labels)

    def fingerprint(self) -> dict:
        """What changes results: the device does not (beyond float rounding), a file's contents do."""
        path = Path(self.source)
        identity = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else self.source
        return {"model": identity, "input_size": self.input_size, "crop_pct": self.crop_pct,
                "labels": list(self.labels) if self.labels else None}


@dataclass(frozen=True)
class Plan:
    """Which images form which batch and shard: fixed by the arguments, whatever the engine."""
    images: int
    batch_size: int
    shard_size: int

    def __post_init__(self):
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("batch and shard sizes must be at least 1")
        if self.shard_size % self.batch_size:
            raise ValueError(f"the shard size ({self.shard_size}) must be a multiple of the batch size "
                             f"({self.batch_size}), so that every engine forms the same batches")

    @property
    def shards(self) -> int:
        return -(-self.images // self.shard_size)

    def batches(self, shard: int) -> list[list[int]]:
        stop = min(self.images, (shard + 1) * self.shard_size)
        return [list(range(i, min(i + self.batch_size, stop))) for i in range(shard * self.shard_size, stop,
                                                                               self.batch_size)]


class ShardStore:
    """DIR/shards: one .npz per completed shard (written whole, then renamed into place) and
    run.json, the arguments they were computed with."""

    def __init__(self, out: Path, fingerprint: dict):
        self.folder = out / "shards"
        self.folder.mkdir(parents=True, exist_ok=True)
        run = self.folder / "run.json"
        if run.exists() and json.loads(run.read_text()) != fingerprint:
            raise ValueError(f"{out} holds a study made with other arguments (see {run}); "
                             "use another --out, or delete that folder to start over")
        run.write_text(json.dumps(fingerprint, indent=1))

    def path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.npz"

    def done(self, shard: int) -> bool:
        return self.path(shard).exists()

    def save(self, shard: int, partial: Partial) -> None:
        temporary = self.path(shard).with_suffix(".tmp")
        temporary.write_bytes(partial.to_bytes())
        os.replace(temporary, self.path(shard))

    def load(self, shard: int) -> Partial:
        return Partial.from_bytes(self.path(shard).read_bytes())


class Reported:
    """A progress bar that also tells `report(done, total)` each time it moves."""

    def __init__(self, bar: tqdm, report: Callable[[int, int], None]):
        self.bar, self.report = bar, report

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.report(self.bar.n, self.bar.total)


def default_workers() -> int:
    """DataLoader workers: half the cores (the model's forward pass needs the rest), at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) // 2))


def run_local(loaded: pretrained.LoadedModel, spec: SourceSpec, plan: Plan, store: ShardStore, pending: list[int],
              workers: int, progress, faithfulness: Faithfulness | None = None) -> None:
    """The pending shards in this process: a DataLoader forms the plan's batches (pinned for a GPU)."""
    batches = [batch for shard in pending for batch in plan.batches(shard)]
    loader = torch.utils.data.DataLoader(
        StudyDataset(spec, loaded.preprocess), batch_sampler=batches, num_workers=workers, collate_fn=collate,
        pin_memory=next(loaded.model.parameters()).device.type == "cuda")
    batch_iter = iter(loader)
    for shard in pending:
        partial = Partial()
        for indices in plan.batches(shard):
            partial = partial.merge(compute_batch(loaded, spec, next(batch_iter), faithfulness))
            progress.update(len(indices))
        store.save(shard, partial)


def run_study(source: str, model: StudyModel, out: Path, *, batch_size: int = 64, shard_size: int = 512,
              workers: int | None = None, engine: str = "local", address: str | None = None,
              ray_workers: int | None = None, progress: bool | Callable[[int, int], None] = True,
              loaded: pretrained.LoadedModel | None = None, faithfulness: Faithfulness | None = None) -> dict:
    """Run (or resume) a study and write its outputs in `out`; returns the JSON summary.
    `progress`: a tqdm bar in the terminal, or a function called with (images done, images) after
    each batch. `loaded`: the model already loaded from `model` (saves loading it again here).
    `faithfulness`: also score deletion and insertion on some of the images (`lens.study_faithfulness`)."""
    spec = parse_source(source)
    loaded = loaded or model.load()
    blocks = [(site.name, site.kind) for site in attention_sites(loaded.model)]
    if not blocks:
        raise ValueError(f"model {model.source!r} has no SE, ECA or CBAM attention blocks: nothing to study")
    plan = Plan(len(spec), batch_size, shard_size)
    fingerprint = {"format": FORMAT, "source": source, "files": _files_digest(spec), **model.fingerprint(),
                   "batch_size": batch_size, "shard_size": shard_size,
                   **({"faithfulness": asdict(faithfulness)} if faithfulness else {})}
    store = ShardStore(out, fingerprint)
    pending = [s for s in range(plan.shards) if not store.done(s)]
    todo = sum(len(i) for s in pending for i in plan.batches(s))
    with tqdm(total=plan.images, initial=plan.images - todo, unit="img", desc="study", disable=progress is not True,
              dynamic_ncols=True) as bar:
        if callable(progress):
            bar = Reported(bar, progress)
        if pending and engine == "ray":
            run_ray(model, spec, plan, store, pending, address, ray_workers, bar, faithfulness)
        elif pending:
            run_local(loaded, spec, plan, store, pending, default_workers() if workers is None else workers, bar,
                      faithfulness)
    total = Partial()
    for shard in range(plan.shards):
        total = total.merge(store.load(shard))
    return write_outputs(out, total, blocks, spec, loaded, source, model, faithfulness)


def _files_digest(spec: SourceSpec) -> str | None:
    return hashlib.sha256("\n".join(f"{p}\t{c}" for p, c in spec.files).encode()).hexdigest() if spec.files else None


def write_outputs(out: Path, total: Partial, blocks: list[tuple[str, str]], spec: SourceSpec,
                  loaded: pretrained.LoadedModel, source: str, model: StudyModel,
                  faithfulness: Faithfulness | None = None) -> dict:
    import pandas as pd

    if not total.arrays:
        raise ValueError(f"none of the {len(spec)} images in {source!r} could be read")
    classes = spec.classes
    summary = summarise(total, blocks, classes)
    rows = pd.DataFrame(total.rows)
    rows.insert(3, "label_name", [classes[i] for i in rows["label"]])
    matches = set(classes) <= set(loaded.labels)
    if matches:
        rows.insert(6, "correct", rows["label_name"] == rows["predicted_label"])
        summary["accuracy"] = float(rows["correct"].mean())
    summary.update(source=source, model=asdict(model), model_name=loaded.name, classes=list(classes),
                   input_size=loaded.preprocess.input_size,
                   labels_match_model=matches, failed=[{"image": spec.image_id(int(i)), "reason": str(r)} for i, r
                                                       in zip(total.failed.get("index", []),
                                                              total.failed.get("reason", []))])
    if faithfulness is not None:
        scored = int(total.arrays[f"{blocks[0][0]}|faith_count"].sum())
        summary["faithfulness"] = {**faithfulness.settings(), "scored": scored}
    rows.to_parquet(out / "images.parquet", index=False)
    channel_rows, map_rows = [], []
    for name, kind in blocks:
        count, mean, _, eta, _ = block_moments(total, name)
        m2 = total.arrays[f"{name}|m2"]
        high, low = total.arrays[f"{name}|high"], total.arrays[f"{name}|low"]
        maps = total.arrays[f"{name}|map_sum"]
        for k, class_name in enumerate(classes):
            n = max(int(count[k]), 1)
            channel_rows.append(pd.DataFrame({
                "block": name, "kind": kind, "class": k, "class_name": class_name, "channel": np.arange(mean.shape[1]),
                "images": int(count[k]), "mean": mean[k],
                "variance": m2[k] / (count[k] - 1) if count[k] > 1 else np.nan,
                "saturated_share": high[k] / n, "shut_share": low[k] / n, "eta_squared": eta}))
            map_rows.append({"block": name, "kind": kind, "class": k, "class_name": class_name, "images": int(count[k]),
                             "height": maps.shape[1], "width": maps.shape[2],
                             "mean_map": (maps[k] / n).ravel().tolist()})
    pd.concat(channel_rows, ignore_index=True).to_parquet(out / "channels.parquet", index=False)
    pd.DataFrame(map_rows).to_parquet(out / "maps.parquet", index=False)
    (out / "study.json").write_text(json.dumps(summary, indent=1, allow_nan=False))
    write_figures(out / "figures", total, summary, blocks, classes)
    return summary


def write_figures(folder: Path, total: Partial, summary: dict, blocks: list[tuple[str, str]], classes) -> None:
    (folder / "excitations").mkdir(parents=True, exist_ok=True)
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    entries = summary["blocks"]
    names = [e["block"] for e in entries]
    (folder / "class_specificity.png").write_bytes(figure_png(specificity_figure(names, {"": specificity(summary)})))
    (folder / "channel_health.png").write_bytes(figure_png(channel_health_figure(
        names, [e["channels"] for e in entries], [e["dead_channels"] for e in entries],
        [e["saturated_channels"] for e in entries], [e["static_channels"] for e in entries])))
    if "faithfulness" in summary:
        (folder / "faithfulness.png").write_bytes(figure_png(faithfulness_figure(summary)))
    for name, kind in blocks:
        count = np.maximum(total.arrays[f"{name}|count"], 1)
        (folder / "excitations" / f"{name}.png").write_bytes(figure_png(excitation_figure(
            total.arrays[f"{name}|mean"], classes, name)))
        (folder / "maps" / f"{name}.png").write_bytes(figure_png(class_maps_figure(
            total.arrays[f"{name}|map_sum"] / count[:, None, None], classes, name, summary["input_size"],
            fixed=attention_kind(kind).has_spatial_gate)))


def specificity(summary: dict) -> tuple[list, list]:
    """(inter-class correlation, eta squared) per block of a study's summary."""
    return ([e["inter_class_correlation"] for e in summary["blocks"]], [e["eta_squared"] for e in summary["blocks"]])


def write_comparison(out: Path, summaries: dict[str, dict]) -> None:
    """Several models' studies side by side: DIR/comparison.json and DIR/class_specificity.png."""
    rows = {name: [{k: e[k] for k in ("block", "kind", "inter_class_correlation", "eta_squared", "saturated_share",
                                      "dead_channels", "saturated_channels", "static_channels", "faithfulness")
                    if k in e} for e in summary["blocks"]] for name, summary in summaries.items()}
    (out / "comparison.json").write_text(json.dumps(rows, indent=1, allow_nan=False))
    blocks = max(([e["block"] for e in s["blocks"]] for s in summaries.values()), key=len)
    curves = {name: specificity(s) for name, s in summaries.items() if [e["block"] for e in s["blocks"]] == blocks}
    (out / "class_specificity.png").write_bytes(figure_png(specificity_figure(blocks, curves)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lens study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE",
                        help="a folder with one subfolder of images per class, or shapes:v2:SEED:N")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the study's files")
    add_model_options(parser, several=True)
    parser.add_argument("--batch-size", type=int, default=64, metavar="B", help="images per batch (default: 64)")
    parser.add_argument("--shard-size", type=int, default=512, metavar="S",
                        help="images per saved shard, a multiple of the batch size (default: 512)")
    parser.add_argument("--workers", type=int, metavar="W",
                        help=f"DataLoader worker processes (default: {default_workers()} here)")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: this process; ray: Ray Data, one model per worker (default: local)")
    parser.add_argument("--address", metavar="ADDR",
                        help="with --engine ray: the cluster to join (e.g. auto, or ray://HEAD:10001); "
                             "default: a local Ray instance on this machine's cores")
    parser.add_argument("--ray-workers", type=int, metavar="N",
                        help="with --engine ray: model actors (default: one per CPU of the cluster)")
    parser.add_argument("--faithfulness", type=int, nargs="?", const=200, metavar="N",
                        help="also score deletion and insertion of every block's map beside Grad-CAM, a centred "
                             "Gaussian and random maps on N images spread over the source (N default 200 when the "
                             "flag is given; about 2,000 forward passes per image on a ResNet-18)")
    add_curve_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for option, value in (("--faithfulness", args.faithfulness), ("--faithfulness-steps", args.faithfulness_steps)):
        if value is not None and value < 1:
            parser.error(f"{option} must be at least 1, got {value}")
    try:
        parse_source(args.source)
        Plan(1, args.batch_size, args.shard_size)
        faithfulness = None if args.faithfulness is None else Faithfulness(
            args.faithfulness, args.faithfulness_steps, args.faithfulness_fill)
    except ValueError as e:
        parser.error(str(e))
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be 0 or more")
    summaries, failed = {}, 0
    for name in args.model:
        out = args.out / Path(name).stem if len(args.model) > 1 else args.out
        loaded = load_model(argparse.Namespace(**{**vars(args), "model": name}), parser)
        if loaded is None:
            failed += 1
            continue
        if not attention_sites(loaded.model):
            print(f"{name}: no SE, ECA or CBAM attention blocks, nothing to study (skipped)")
            continue
        model = StudyModel(name, args.input_size, args.crop_pct, args.labels, args.device)
        try:
            summary = run_study(args.source, model, out, batch_size=args.batch_size, shard_size=args.shard_size,
                                workers=args.workers, engine=args.engine, address=args.address,
                                ray_workers=args.ray_workers, progress=not args.quiet, loaded=loaded,
                                faithfulness=faithfulness)
        except ValueError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            failed += 1
            continue
        summaries[name] = summary
        print(f"{name}: {summary['images']} images studied -> {out}"
              + (f"; {len(summary['failed'])} could not be read" if summary["failed"] else ""))
        for entry in summary["blocks"]:
            print(f"  {entry['block']:10} {entry['kind']:5} inter-class r {_fmt(entry['inter_class_correlation'])}"
                  f"  eta^2 {_fmt(entry['eta_squared'])}  saturated {entry['saturated_share']:.1%}"
                  f"  dead {entry['dead_channels']}  static {entry['static_channels']}/{entry['channels']}"
                  + (f"\n{'':17}{faithfulness_line(entry['faithfulness'])}" if "faithfulness" in entry else ""))
    if len(summaries) > 1:
        write_comparison(args.out, summaries)
        print(f"comparison of {len(summaries)} models -> {args.out / 'comparison.json'}, "
              f"{args.out / 'class_specificity.png'}")
    return 2 if failed else 0


def _fmt(value) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"
