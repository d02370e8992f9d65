"""Side-by-side timing: candidates run interleaved in one process, in alternating order, and each
ratio is the median of per-round ratios -- so that machine noise (other jobs, a shared cache,
thermal state) hits numerator and denominator alike."""
import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Ratio:
    median: float
    q1: float        # quartiles of the per-round ratios: how noisy the machine was
    q3: float

    def __str__(self) -> str:
        return f"{self.median:.3f}x (quartiles {self.q1:.3f}-{self.q3:.3f})"


@dataclass(frozen=True)
class Timings:
    seconds: dict[str, list[float]]   # candidate -> one time per round

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, name: str, baseline: str) -> Ratio:
        ratios = [a / b for a, b in zip(self.seconds[name], self.seconds[baseline])]
        q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return Ratio(median, q1, q3)


def interleaved(candidates: dict[str, Callable[[], object]], runs: int = 15, warmup: int = 3) -> Timings:
    """Time every candidate once per round for `runs` rounds; odd rounds run in reverse order, so
    no candidate always runs right after the same neighbour."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    seconds = {name: [] for name in candidates}
    order = list(candidates.items())
    for round_ in range(runs):
        for name, fn in (order if round_ % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return Timings(seconds)
