"""Channel-weight chart for C=2048: ours (one `stairs` artist) versus a naive `ax.bar` of 2048
rectangles, each rendered to PNG, interleaved in one process.

    python -m bench.channel_chart_speed [--runs 7]

Target (issue #3): naive / ours >= 5.
"""
import argparse

import numpy as np

from bench.timing import interleaved
from viz import channel_weights_figure, figure_png, new_figure


def naive_chart(w: np.ndarray) -> bytes:
    fig = new_figure(7.0, 2.6)
    ax = fig.add_subplot()
    ax.bar(np.arange(len(w)), w)
    ax.axhline(w.mean(), linestyle="--")
    ax.set_ylim(0, 1.08)
    return figure_png(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    w = np.random.default_rng(0).random(2048)
    t = interleaved({"naive": lambda: naive_chart(w),
                     "ours": lambda: figure_png(channel_weights_figure(w, top_k=5))},
                    runs=args.runs, warmup=1)
    print(f"C=2048 to PNG: naive ax.bar {t.median('naive') * 1e3:.0f} ms, ours {t.median('ours') * 1e3:.0f} ms, "
          f"naive / ours = {t.ratio('naive', 'ours')}")


if __name__ == "__main__":
    main()
