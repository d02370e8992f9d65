"""python -m lens: one entry point, one subcommand per job."""
import subprocess
import sys
from pathlib import Path

import pytest

from lens.__main__ import main


def test_usage_names_the_commands(capsys):
    assert main([]) == 2 and main(["nope"]) == 2
    assert main(["--help"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m lens COMMAND [options]\n\ncommands:\n  report   per image: the overview")


@pytest.mark.slow
def test_report_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "lens", "report", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m lens report [-h] [--model MODEL]")


@pytest.mark.slow
def test_card_is_a_command(capsys):
    main([])
    assert "  card     the bundled shapes models measured on fresh test images" in capsys.readouterr().err
    out = subprocess.run([sys.executable, "-m", "lens", "card", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m lens card [-h] [--weights WEIGHTS]")
