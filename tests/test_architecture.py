"""The rooms of ARCHITECTURE.md, read from the imports: viz draws and imports neither pretrained nor
lens; the app does no tensor maths; blocks stays pure PyTorch."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported(path: Path) -> set[str]:
    """Top-level package names a file imports (relative imports are its own package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("room, forbidden", [
    ("viz", {"pretrained", "training", "lens", "streamlit", "app", "views"}),
    ("blocks", {"pretrained", "training", "lens", "viz", "streamlit", "matplotlib", "app", "views"}),
    ("pretrained", {"training", "lens", "viz", "streamlit", "app", "views"}),
    ("training", {"lens", "viz", "streamlit", "app", "views"}),      # the dataset and the trainer
    ("lens", {"streamlit", "app", "views"}),
])
def test_each_room_imports_only_the_rooms_above_it(room, forbidden):
    paths = sorted((ROOT / room).glob("*.py"))
    assert paths, f"no room {room}"
    for path in paths:
        assert not imported(path) & forbidden, f"{path.relative_to(ROOT)} imports {imported(path) & forbidden}"


def page_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "views").glob("*.py"))]


def test_the_page_does_no_tensor_maths_and_calls_no_pyplot():
    assert imported(ROOT / "app.py") == {"streamlit", "views"}      # the script: frame, then the page
    for path in page_files():
        names = imported(path)
        assert not names & {"torch", "numpy", "matplotlib", "pandas"}, (path.name, names)


def test_no_module_of_the_page_is_over_300_lines():
    lengths = {path.name: len(path.read_text().splitlines()) for path in page_files()}
    assert max(lengths.values()) <= 300, lengths


def test_every_view_is_one_file_listed_once():
    from views import page
    titles = [view.TITLE for view in page.VIEWS]
    assert titles == ["Block", "Overview", "Compare", "Intervene", "Downloads", "Study"]
    assert len({view.__file__ for view in page.VIEWS}) == len(titles)
    assert all(callable(view.render) and isinstance(view.NEEDS_ATTENTION, bool) for view in page.VIEWS)


KIND_NAMES = re.compile(r"""(==|!=)\s*["'](se|eca|cbam)["']|["'](se|eca|cbam)["']\s*(==|!=)"""
                        r"""|\[\s*["']se["']\s*,\s*["']eca["']\s*,\s*["']cbam["']\s*\]\.index""")


def test_no_attention_kind_is_compared_as_a_string_outside_blocks():
    """A kind is a record (`blocks.AttentionKind`): the code asks it, so a new kind touches one file."""
    for path in sorted(ROOT.glob("*.py")) + sorted(ROOT.glob("*/*.py")):
        if path.parts[-2] in ("blocks", ".venv", "tests") or ".venv" in path.parts:
            continue
        found = KIND_NAMES.findall(path.read_text())
        assert not found, f"{path.relative_to(ROOT)} compares a kind by name: {found}"
