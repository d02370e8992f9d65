"""Cost of a dataset study (`lens study`) beside a bare batched forward loop over the same DataLoader.

    python -m bench.study_speed [--images 512] [--rounds 3] [--rss] [--ray]

Model: the bundled default (CBAM ResNet-18, 128 px). Two sources of the same images: fresh shapes
with masks (the study also scores every block's map against the object) and the same images saved
as PNGs in class folders (no masks). Per source, interleaved rounds of (a) the bare loop: the
DataLoader's batches through the model in inference mode, and (b) the study's loop (`run_local`:
capture of every block, streaming statistics, shard files); ratio = median of per-round
images/s ratios (target issue #12: >= 0.85). Then the study's images/s with 0, 1 and 2 DataLoader
workers, and, once, the time to write the outputs (Parquet, JSON, figures).
`--rss`: peak RSS of `python -m lens study` over 1k and 10k images (target: growth <= 50 MB).
`--ray`: the whole study through a local Ray instance against the single process, on the same cores.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

import pretrained
from bench.timing import interleaved
from lens.study import Plan, ShardStore, StudyModel, run_local, run_study
from lens.study_source import StudyDataset, collate, parse_source
from training.shapes import render

BATCH, SHARD = 64, 512


class Count:
    def update(self, n: int) -> None:
        pass


def save_folder(root: Path, seed: int, count: int, version: int) -> Path:
    for i in range(count):
        sample = render(seed, i, 128, version)
        folder = root / f"{sample.label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sample.image).save(folder / f"{i:05d}.png")
    return root


def loops(loaded, source: str, workers: int, scratch: Path, faithfulness=None):
    spec = parse_source(source)
    plan = Plan(len(spec), BATCH, SHARD)
    shards = list(range(plan.shards))
    batches = [b for s in shards for b in plan.batches(s)]

    def bare():
        loader = torch.utils.data.DataLoader(StudyDataset(spec, loaded.preprocess), batch_sampler=batches,
                                             num_workers=workers, collate_fn=collate)
        with torch.inference_mode():
            for batch in loader:
                loaded.model(batch["x"])

    def study():
        store = ShardStore(Path(tempfile.mkdtemp(dir=scratch)), {"bench": source})
        run_local(loaded, spec, plan, store, shards, workers, Count(), faithfulness)

    return bare, study


def peak_rss_mb(source: str, out: Path) -> float:
    # VmHWM, not ru_maxrss: getrusage keeps the high-water mark of the forked parent across exec
    code = ("import re, sys; from lens.study import main; main(sys.argv[1:]); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])")
    done = subprocess.run([sys.executable, "-c", code, source, "--out", str(out), "--quiet", "--workers", "0"],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss", action="store_true", help="also peak RSS at 1k and 10k images (minutes)")
    parser.add_argument("--ray", action="store_true", help="also a local Ray instance against one process")
    args = parser.parse_args()
    loaded = pretrained.load(pretrained.DEFAULT_MODEL)
    version = pretrained.available()[0].shapes_version
    cores = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cores} cores, {loaded.name}, "
          f"{args.images} images, batch {BATCH}, {args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        shapes = f"shapes:v{version}:11:{args.images}"
        folder = str(save_folder(scratch / "folder", 11, args.images, version))
        workers = min(2, cores // 2)
        for label, source in (("shapes with masks", shapes), ("PNG folder, no masks", folder)):
            bare, study = loops(loaded, source, workers, scratch)
            t = interleaved({"bare": bare, "study": study}, runs=args.rounds, warmup=1)
            speed = t.ratio("bare", "study")            # time ratio bare/study = throughput study/bare
            print(f"{label:22} {workers} worker(s): bare loop {args.images / t.median('bare'):6.1f} img/s, "
                  f"study {args.images / t.median('study'):6.1f} img/s -> study/bare throughput {speed}")
        for n in (0, 1, 2):
            _, study = loops(loaded, shapes, n, scratch)
            start = time.perf_counter()
            study()
            print(f"shapes, {n} DataLoader worker(s): {args.images / (time.perf_counter() - start):6.1f} img/s")
        start = time.perf_counter()
        run_study(shapes, StudyModel(loaded.name), scratch / "whole", batch_size=BATCH, shard_size=SHARD,
                  workers=workers, progress=False, loaded=loaded)
        whole = time.perf_counter() - start
        print(f"whole study of {args.images} images {whole:.1f} s, of which writing Parquet, JSON and figures "
              f"{_timed_outputs(loaded, shapes, scratch / 'whole'):.1f} s")
        if args.ray:
            start = time.perf_counter()
            run_study(shapes, StudyModel(loaded.name), scratch / "ray", batch_size=BATCH, shard_size=SHARD,
                      engine="ray", progress=False)
            on_ray = time.perf_counter() - start
            print(f"Ray local instance on the same {cores} cores: {on_ray:.1f} s vs one process {whole:.1f} s "
                  f"-> {on_ray / whole:.2f}x (Ray start and actor model loads included)")
        if args.rss:
            small = peak_rss_mb(f"shapes:v{version}:12:1000", scratch / "rss1k")
            large = peak_rss_mb(f"shapes:v{version}:12:10000", scratch / "rss10k")
            print(f"peak RSS: 1k images {small:.0f} MB, 10k images {large:.0f} MB -> growth {large - small:+.0f} MB "
                  "(target <= 50 MB)")
    print(f"(this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


def _timed_outputs(loaded, source: str, out: Path) -> float:
    """A second run over finished shards does only the merge and the outputs."""
    start = time.perf_counter()
    run_study(source, StudyModel(loaded.name), out, batch_size=BATCH, shard_size=SHARD, progress=False,
              loaded=loaded)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
