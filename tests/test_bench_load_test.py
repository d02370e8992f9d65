"""bench.load_test: its judge tells a page's own image from another session's; a short real run."""
import pathlib
import subprocess
import sys

import pytest

from bench.load_test import Page, Upload, judged

A = Upload("a.png", b"", [("circle", 99.0), ("star", 1.0)])
B = Upload("b.png", b"", [("star", 60.0), ("circle", 40.0)])


def shown(name: str, predictions: list) -> Page:
    return Page(0.1, f"{name}, as the model sees it (128 x 128 after resize and crop)", predictions)


def test_the_judge_tells_own_pages_from_cross_talk_and_errors():
    assert judged(shown("a.png", [("circle", 99.0004), ("star", 0.9996)]), A, [A, B]) == "ok"
    assert judged(shown("b.png", B.expected), A, [A, B]) == "cross-talk"
    assert judged(shown("a.png", B.expected), A, [A, B]) == "cross-talk"        # its name, another's predictions
    assert judged(shown("a.png", [("circle", 98.0), ("star", 2.0)]), A, [A, B]).startswith("error: shows")
    assert judged(Page(0.1, problems=["Cannot use a.png"]), A, [A, B]) == "error: Cannot use a.png"
    assert judged(TimeoutError("no page"), A, [A, B]) == "error: TimeoutError: no page"


@pytest.mark.slow
def test_a_short_run_has_no_errors_and_no_cross_talk():
    out = subprocess.run([sys.executable, "-m", "bench.load_test", "--sessions", "2", "--rounds", "1"],
                         cwd=pathlib.Path(__file__).resolve().parents[1], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    rows = [line.split() for line in out.splitlines()[2:4]]                     # under the title and header
    assert [row[0] for row in rows] == ["1", "2"], out
    assert all(row[6:8] == ["0", "0"] for row in rows), out                     # errors, cross-talk
