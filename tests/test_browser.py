"""The browser check itself (tools/browser_test.py) on tiny lessons: it passes a working one and names each fault."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the scripts under tools/ import as modules
import browser_test as driver  # noqa: E402

pytestmark = pytest.mark.skipif(
    not driver.CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
    reason="needs Chromium and playwright: `make test-browser` installs them and runs this file first")

# An explorer whose summary doubles its slider; with FROZEN, one whose summary ignores it.
EXPLORER = """from ipywidgets import IntSlider
from course_utils.viz.explorer import Explorer

class Doubler(Explorer):
    def __init__(self, frozen=False):
        self.n, self.frozen = IntSlider(value=3, min=0, max=10, description="n"), frozen
        super().__init__([self.n], draw=False)

    def compute(self):
        return "twice n is " + str(6 if self.frozen else 2 * self.n.value)
"""


def lesson(folder: Path, name: str, *cells: str) -> Path:
    path = folder / name
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}"), *map(new_code_cell, cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_working_lesson_passes_and_each_fault_is_named(tmp_path):
    made = [lesson(tmp_path, "01_works.ipynb", EXPLORER, "Doubler()", "print('end')"),
            lesson(tmp_path, "02_raises.ipynb", EXPLORER, "Doubler()", "raise ValueError('boom')", "print('end')"),
            lesson(tmp_path, "03_frozen.ipynb", EXPLORER, "Doubler(frozen=True)"),
            lesson(tmp_path, "04_no_explorer.ipynb", "print(1)")]
    out = tmp_path / "shots"
    done = driver.run([driver.lesson_at(p) for p in made], out, jobs=2, timeout=300, explorer_timeout=10)
    problems = {d.path.name: d.problems for d in done}
    assert problems["01_works.ipynb"] == []
    assert problems["02_raises.ipynb"] == ["code cells [4] have no execution count",
                                           "code cell 3 raised ValueError: boom"]
    assert problems["03_frozen.ipynb"] == ["explorer 1: moving its slider changed nothing shown"]
    assert problems["04_no_explorer.ipynb"] == ["no explorer (an ipywidgets VBox) is displayed"]
    assert sorted(p.name for p in out.iterdir()) == [p.stem + ".png" for p in made]
    assert all(p.stat().st_size > 10_000 for p in out.iterdir())
