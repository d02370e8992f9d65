"""The rooms of ARCHITECTURE.md, read from the imports: viz draws and imports neither pretrained nor
lens; the app does no tensor maths; blocks stays pure PyTorch."""
import ast
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
    ("viz", {"pretrained", "training", "lens", "streamlit", "app", "app_page"}),
    ("blocks", {"pretrained", "training", "lens", "viz", "streamlit", "matplotlib", "app", "app_page"}),
    ("pretrained", {"training", "lens", "viz", "streamlit", "app", "app_page"}),
    ("training", {"lens", "viz", "streamlit", "app", "app_page"}),      # the dataset and the trainer
    ("lens", {"streamlit", "app", "app_page"}),
])
def test_each_room_imports_only_the_rooms_above_it(room, forbidden):
    paths = sorted((ROOT / room).glob("*.py"))
    assert paths, f"no room {room}"
    for path in paths:
        assert not imported(path) & forbidden, f"{path.relative_to(ROOT)} imports {imported(path) & forbidden}"


def test_the_app_does_no_tensor_maths_and_calls_no_pyplot():
    assert imported(ROOT / "app.py") == {"streamlit", "app_page"}      # the script: frame, then the page
    names = imported(ROOT / "app_page.py")
    assert not names & {"torch", "numpy", "blocks", "matplotlib"}, names
    assert names >= {"streamlit", "lens", "pretrained", "viz", "study_page"}
    page = imported(ROOT / "study_page.py")
    assert not page & {"torch", "numpy", "blocks", "matplotlib", "pandas"}, page
