"""The README's library snippet runs as written, and the README points nowhere outside the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


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
