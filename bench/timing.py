"""Side-by-side timing: candidates run interleaved in one process; report medians and ratios."""
import statistics
import time
from typing import Callable


def interleaved_medians(candidates: dict[str, Callable[[], object]], runs: int = 15,
                        warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin so that machine noise
    (other jobs, thermal state) hits all of them alike."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(runs):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
