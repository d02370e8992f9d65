"""The README's library snippet runs as written, and the README points nowhere outside the repository."""
import json
import re
from pathlib import Path

import pytest

from lens import study

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_library_snippet_runs(monkeypatch, capsys):
    section = README[README.index("## Library"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[Prediction(index=") and printed[1].startswith("[['layer1.0', 'layer1.1']")
    assert printed[-1].startswith("layer4.1 cbam 4 1 torch.Size([1, 128]) torch.Size([1, 4, 4])")


def test_readme_links_stay_inside_the_repository():
    for target in re.findall(r"\]\(([^)]+)\)", README):
        assert not target.startswith(("..", "/")), target
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_two_commands_and_what_a_fresh_machine_needs():
    section = README[README.index("## Two commands"):README.index("## The app")]
    commands = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/streamlit run serve.py",
        "python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt && .venv/bin/python -m pytest"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith(commands[1])     # CI runs exactly that
    flat = " ".join(section.split())
    assert "`apt-get update && apt-get install chromium fonts-dejavu-core`" in flat
    assert "Later starts need no pip: `.venv/bin/streamlit run serve.py`" in flat
    assert "`.venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu`" in flat


@pytest.mark.slow
def test_the_study_command_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's study of the bundled models, on 20 images instead of 2,000."""
    section = README[README.index("## Dataset study"):README.index("## Bundled models")]
    command = re.search(r"```bash\n(.*?)\n```", section, re.S)[1].split()
    assert command[:4] == [".venv/bin/python", "-m", "lens", "study"]
    argv = [arg.replace(":2000", ":20") for arg in command[4:]]
    argv[argv.index("--out") + 1] = str(tmp_path / "bundled")
    monkeypatch.chdir(ROOT)
    assert study.main(argv + ["--quiet"]) == 0
    out = capsys.readouterr().out
    assert "plain-resnet18-shapes: no SE, ECA or CBAM attention blocks, nothing to study (skipped)" in out
    assert sorted(json.loads((tmp_path / "bundled" / "comparison.json").read_text())) == [
        "cbam-resnet18-shapes", "eca-resnet18-shapes", "se-resnet18-shapes"]
