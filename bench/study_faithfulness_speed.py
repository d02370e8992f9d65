"""Throughput of a dataset study with `--faithfulness N` beside the same study without it.

    python -m bench.study_faithfulness_speed [--images 2000] [--faithfulness 200] [--rounds 2] [--threads 1]

Model: the bundled default (CBAM ResNet-18, 128 px), fresh shapes images (with masks). Interleaved
rounds of the study's loop (`run_local`: capture, streaming statistics, shard files) over the same
images without and with deletion/insertion scoring of N of them (`lens.study_faithfulness`: every
block's map and Grad-CAM, one Gaussian and 8 random maps per block resolution, 20 steps, blur fill);
throughput ratio = median of per-round time ratios (without / with), by the wall clock and by the
process's CPU time (which other jobs on a shared machine do not inflate: with 0 DataLoader workers
and one thread it is the study's own). Also the added CPU time per scored image, in seconds and as
a multiple of one forward pass of an image in a batch of 64.
Each round of 2,000 images with 200 scored takes about 20 minutes on one thread of this project's
2-core CPU; `--images 2000 --faithfulness 20` keeps the share of scored images a tenth as large.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

import pretrained
from bench.study_speed import BATCH, loops
from bench.timing import Timings, interleaved
from lens.study_faithfulness import Faithfulness


def forward_seconds(loaded, repeats: int = 10) -> float:
    """CPU seconds per image of a plain forward pass in a batch of BATCH (inference mode)."""
    x = torch.randn(BATCH, 3, loaded.preprocess.input_size, loaded.preprocess.input_size)
    with torch.inference_mode():
        loaded.model(x)
        start = time.process_time()
        for _ in range(repeats):
            loaded.model(x)
    return (time.process_time() - start) / (repeats * BATCH)


def cpu_timed(fn, seconds: list):
    """`fn`, appending the process's CPU time of each call to `seconds`."""
    def timed():
        start = time.process_time()
        fn()
        seconds.append(time.process_time() - start)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--faithfulness", type=int, default=200, metavar="N")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fill", default="blur")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0: one thread in all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = pretrained.load(pretrained.DEFAULT_MODEL)
    version = pretrained.available()[0].shapes_version
    plan = Faithfulness(args.faithfulness, args.steps, args.fill)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {len(os.sched_getaffinity(0))} cores, "
          f"{loaded.name}, {args.images} images, {args.faithfulness} scored ({args.steps} steps, {args.fill} fill), "
          f"batch {BATCH}, {args.workers} DataLoader worker(s), {args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as scratch:
        source = f"shapes:v{version}:11:{args.images}"
        cpu = {"without": [], "with": []}
        _, without = loops(loaded, source, args.workers, Path(scratch))
        _, with_faithfulness = loops(loaded, source, args.workers, Path(scratch), plan)
        t = interleaved({"without": cpu_timed(without, cpu["without"]), "with": cpu_timed(with_faithfulness,
                                                                                          cpu["with"])},
                        runs=args.rounds, warmup=0)
    forward = forward_seconds(loaded)
    for clock, seconds in (("wall clock", t.seconds), ("CPU time", cpu)):
        timings = Timings(seconds)
        plain, scored = timings.median("without"), timings.median("with")
        print(f"{clock}: without {plain:.1f} s ({args.images / plain:.1f} img/s); with --faithfulness "
              f"{args.faithfulness}: {scored:.1f} s ({args.images / scored:.2f} img/s); per round: "
              + ", ".join(f"{name} {[round(v, 1) for v in values]}" for name, values in seconds.items()))
        print(f"  throughput with/without: {plain / scored:.4f} (time ratio with/without "
              f"{timings.ratio('with', 'without')})")
    per_image = (Timings(cpu).median("with") - Timings(cpu).median("without")) / min(args.faithfulness, args.images)
    print(f"added CPU time per scored image: {per_image:.2f} s = {per_image / forward:,.0f} forward passes of one "
          f"image ({forward * 1e3:.2f} ms of CPU each in a batch of {BATCH})")


if __name__ == "__main__":
    main()
