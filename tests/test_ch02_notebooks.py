"""Chapter 02's notebooks against its graded items: the solution scores full marks, the exercise zero."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat
import pytest

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.verdict import earned_points

ASSIGNMENT = assignments.load("02")  # the public part with the instructor key attached

ROOT = Path(__file__).resolve().parent.parent


def _run(path: Path) -> dict:
    """Execute a notebook's code cells in one namespace; cells tagged raises-exception may raise."""
    nb = nbformat.read(path, as_version=4)
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            tags = cell.get("metadata", {}).get("tags", [])
            try:
                exec(compile(cell.source, str(path), "exec"), namespace)
            except NotImplementedError:
                assert "raises-exception" in tags, f"untagged cell raised:\n{cell.source[:200]}"
    return namespace


def _graded_points(namespace: dict) -> dict[str, float]:
    return {item.name: earned_points(item, namespace[item.name]) if item.name in namespace else 0.0
            for item in ASSIGNMENT.items}


@pytest.fixture(scope="module")
def solution():
    return _run(ROOT / "solutions" / "02_autoregressive.ipynb")


@pytest.fixture(scope="module")
def exercise():
    return _run(ROOT / "exercises" / "02_autoregressive.ipynb")


def test_solution_scores_full_marks_on_public_and_hidden_cases(solution):
    points = _graded_points(solution)
    assert points == {item.name: item.points for item in ASSIGNMENT.items}
    for item in ASSIGNMENT.items:
        assert evaluate(item.name, solution[item.name]).passed


def test_exercise_scores_zero(exercise):
    assert sum(_graded_points(exercise).values()) == 0
    for item in ASSIGNMENT.items:
        if item.name in exercise:
            message = evaluate(item.name, exercise[item.name]).message
            assert message.startswith("❌") and "not implemented" in message


def test_every_item_has_a_check_cell_in_the_notebooks():
    for folder in ("solutions", "exercises"):
        source = "\n".join(c.source for c in nbformat.read(ROOT / folder / "02_autoregressive.ipynb", 4).cells)
        for item in ASSIGNMENT.items:
            assert f'check("{item.name}")' in source
