"""The one command that trains the four models (`training.train_all`), run as the lent GPU runs it
(`bench/gpu_train_all.sh`) with --dry-run on the CPU: what comes back, the logs, the estimate
printed before anything is rendered, the stop, and the model card of what it wrote."""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from safetensors import safe_open
from torch import nn

from lens.card import main as card
from pretrained.registry import load_trained
from training import train_all
from training.train import RECIPES

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["plain-resnet18-shapes", "se-resnet18-shapes", "eca-resnet18-shapes", "cbam-resnet18-shapes"]
MiB = 1 << 20


def run_device_command(out: Path, *args: str) -> subprocess.CompletedProcess:
    """`bench/gpu_train_all.sh ARGS` as the device runs it, with $OUT = `out`, on this interpreter and
    one torch thread (as conftest's: two on two shared cores beside another test run are 3x slower)."""
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_train_all.sh"), *args], cwd=ROOT, text=True,
                          env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def device_run(tmp_path_factory) -> tuple[Path, str]:
    """What the device command leaves under $OUT with --dry-run, and what it printed."""
    out = tmp_path_factory.mktemp("out")
    done = run_device_command(out, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


@pytest.fixture(scope="module")
def candidates(device_run, tmp_path_factory) -> Path:
    """The returned files unpacked as `python -m lens card --weights` reads them."""
    out, _ = device_run
    folder = tmp_path_factory.mktemp("v3")
    for path in out.glob("*.safetensors"):
        shutil.copy(path, folder)
    with tarfile.open(out / "logs.tar") as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.mark.slow                    # runs the command end to end
def test_what_comes_back_fits_what_the_device_returns(device_run):
    out, _ = device_run
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{n}.safetensors" for n in NAMES] + ["logs.tar", "train_all.log"])
    assert len(files) <= 8 and all((out / f).stat().st_size <= 16 * MiB for f in files)
    assert sum((out / f"{n}.safetensors").stat().st_size for n in NAMES) <= 40e6
    with tarfile.open(out / "logs.tar") as tar:
        assert sorted(tar.getnames()) == sorted([f"{n}.train.json" for n in NAMES] + ["summary.json"])
    assert (out / "train_all.log").read_text() == device_run[1]


@pytest.mark.slow                    # runs the command end to end
def test_a_failed_command_still_returns_its_log_and_its_status(tmp_path):
    done = run_device_command(tmp_path, "--recipe", "99")
    assert done.returncode == 2 and [p.name for p in tmp_path.iterdir()] == ["train_all.log"]
    assert "invalid choice: 99" in (tmp_path / "train_all.log").read_text()


@pytest.mark.slow                    # runs the command end to end
def test_the_estimate_is_printed_before_anything_is_rendered(device_run):
    lines = device_run[1].splitlines()
    assert lines[0].startswith("recipe 5 (dry run) on cpu, ")
    assert lines[1].startswith("estimate on this machine: ")
    assert lines[2].startswith("estimate on the H200 (16 cores; 790 TFLOP/s bf16 at 4%): ")
    assert lines[3].startswith("rendered 192 + 64 images in ")
    assert sum(line.startswith("saved ") for line in lines) == 4 and lines[-1].startswith("summary: ")


@pytest.mark.slow                    # runs the command end to end
def test_each_log_has_every_epochs_loss_accuracy_seconds_and_device(candidates):
    dry = asdict(replace(RECIPES[5], **train_all.DRY_RUN))
    for name in NAMES:
        log = json.loads((candidates / f"{name}.train.json").read_text())
        assert log["recipe"] == dry
        [epoch] = log["epochs"]
        assert epoch["epoch"] == 1 and epoch["device"] == "cpu" and epoch["loss"] > 0 and epoch["seconds"] > 0
        assert 0 <= epoch["validation_accuracy"] <= 1
    summary = json.loads((candidates / "summary.json").read_text())
    assert (summary["recipe"], summary["dry_run"], summary["device"]) == (5, True, "cpu")
    assert list(summary["models"]) == NAMES and summary["estimate_seconds"] > 0
    assert summary["total_seconds"] >= sum(m["train_seconds"] for m in summary["models"].values())


@pytest.mark.slow                    # runs the command end to end
def test_the_weights_load_back_with_their_stem(candidates):
    for name in NAMES:
        path = candidates / f"{name}.safetensors"
        with safe_open(str(path), "pt") as f:
            assert json.loads(f.metadata()["architecture"])["stem_pool"] is False
        model = load_trained(path).model
        assert model.stem_pool is False and isinstance(model.maxpool, nn.Identity)
        assert [info["reduction"] for info in model.feature_info] == [2, 2, 4, 8, 16]


@pytest.mark.slow                    # runs the command end to end
def test_the_model_card_evaluates_them(candidates):
    card(["--weights", str(candidates), "--images", "10"])
    measured = json.loads((candidates / "card.json").read_text())
    assert list(measured) == ["cbam-resnet18-shapes", "eca-resnet18-shapes", "se-resnet18-shapes",
                              "plain-resnet18-shapes"]
    assert all(len(c["accuracy"]) == 5 and c["training_log"]["epochs"][0]["device"] == "cpu"
               for c in measured.values())
    text = (candidates / "MODEL_CARD.md").read_text()
    assert "- No max-pool after the stem: every feature map twice as fine" in text
    assert re.search(r"\n\| `cbam-resnet18-shapes` \| 1 \| \d+\.\d min on cpu \| ", text)


@pytest.mark.slow                    # runs the command end to end
def test_a_run_that_does_not_fit_stops_before_rendering(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"does not fit the budget of 1 s: stopped before rendering$"):
        train_all.main(["--dry-run", "--out", str(tmp_path), "--budget", "1", "--workers", "1"])
    assert "estimate on this machine: " in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_recipe_5_fits_the_h200_by_its_flops():
    recipe = RECIPES[5]
    trained = recipe.train_images // recipe.batch * recipe.batch            # 208 steps of 384
    assert train_all.training_flops(None, recipe) == recipe.epochs * 296_094_208 * (3 * trained + 1000)
    h200 = train_all.h200_estimate(recipe, render_core_seconds=0.0)
    assert h200.render == 0 and 0.4 * train_all.BUDGET_SECONDS < h200.total < 0.5 * train_all.BUDGET_SECONDS


def test_the_epochs_that_fit_leave_room_for_what_was_spent_and_the_rendering():
    estimate = train_all.Estimate(spent=30, render=50, models={"a": 100, "b": 300})      # 40 s an epoch of 10
    assert estimate.total == 480 and estimate.epochs_that_fit(480, 10) == 10
    assert estimate.epochs_that_fit(300, 10) == 5 and estimate.epochs_that_fit(60, 10) == 0
