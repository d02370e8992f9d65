"""The study's batches on a Ray cluster (Ray Data, https://docs.ray.io/en/latest/data/): the same
`lens.study_batch.compute_batch` as the local engine, on an actor pool that loads the model once per
actor, and the same shard files, so the totals equal a single-process run's.

One dataset row per planned batch (not per image): Ray Data may re-slice rows into batches as
it likes, so rows that name whole batches keep every engine's batches, and sums, identical.
Actors ask for a fraction of a CPU (`actor_resources`): actors that each hold a whole CPU on a
small machine leave none to the tasks that feed them, and the pipeline never finishes.
"""
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .study_batch import compute_batch
from .study_source import SourceSpec, StudyDataset, collate
from .study_stats import Partial

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_EXCLUDES = [".git", ".venv", "out", "**/__pycache__", "tests", "bench"]   # not needed on a worker


def actor_resources(cpus: float, actors: int | None = None) -> tuple[int, float]:
    """(actors, CPUs each asks for) on a cluster of `cpus` CPUs: by default one actor per whole
    CPU, together asking for at most all but one CPU (half a CPU in all on a 1-CPU machine), so
    Ray Data's read tasks always find a CPU to run on."""
    if cpus <= 0:
        raise ValueError(f"the Ray cluster has no CPUs ({cpus})")
    actors = actors or max(1, int(cpus))
    if actors < 1:
        raise ValueError(f"--ray-workers must be at least 1, got {actors}")
    spare = cpus - 1 if cpus >= 2 else cpus / 2
    return actors, min(1.0, spare / actors)


class BatchWorker:
    """A Ray Data actor: loads the model once, then computes whole planned batches."""

    def __init__(self, model, spec: SourceSpec, threads: int, faithfulness=None):
        torch.set_num_threads(threads)
        self.compute, self.loaded, self.spec, self.faithfulness = compute_batch, model.load(), spec, faithfulness
        self.dataset = StudyDataset(spec, self.loaded.preprocess)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        partials = [self.compute(self.loaded, self.spec, collate([self.dataset[i] for i in range(start, stop)]),
                                 self.faithfulness).to_bytes() for start, stop in zip(rows["start"], rows["stop"])]
        return {"shard": rows["shard"], "start": rows["start"], "partial": np.array(partials, dtype=object)}


def run_ray(model, spec: SourceSpec, plan, store, pending: list[int], address: str | None,
            actors: int | None, progress, faithfulness=None) -> None:
    """The pending shards through Ray Data; each shard is saved once all its batches are back,
    merged in batch order. `faithfulness` (`lens.study_faithfulness.Faithfulness`) goes to every actor."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else os.cpu_count(), include_dashboard=False,
                 logging_level=logging.WARNING, runtime_env=_runtime_env(address))
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        actors, cpus = actor_resources(ray.cluster_resources().get("CPU", 0), actors)
        items = [{"shard": shard, "start": batch[0], "stop": batch[-1] + 1}
                 for shard in pending for batch in plan.batches(shard)]
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            BatchWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus,
            fn_constructor_kwargs={"model": model, "spec": spec, "threads": max(1, int(cpus)),
                                   "faithfulness": faithfulness})
        waiting = {shard: {} for shard in pending}
        for row in results.iter_rows():
            shard, start = int(row["shard"]), int(row["start"])
            waiting[shard][start] = Partial.from_bytes(row["partial"])
            progress.update(len(range(start, min(start + plan.batch_size, plan.images))))
            if len(waiting[shard]) == len(plan.batches(shard)):
                total = Partial()
                for first in sorted(waiting[shard]):
                    total = total.merge(waiting[shard][first])
                store.save(shard, total)
                del waiting[shard]
    finally:
        if started:
            ray.shutdown()


def _runtime_env(address: str | None) -> dict:
    """Local workers import this checkout; a cluster's get a copy of it (without tests and venv)."""
    if address:
        return {"working_dir": str(ROOT), "excludes": SHIPPED_EXCLUDES}
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}}
