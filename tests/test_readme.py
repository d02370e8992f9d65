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
