"""Exercise generation: placeholders, tags, staleness of the committed exercises."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.assessment import authoring


def test_strip_solutions_keeps_indentation_and_reports_top_level():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\nprint(1)"
    out, top = authoring.strip_solutions(src)
    assert out == f"def f(x):\n    {authoring.PLACEHOLDER}\n\nprint(1)"
    assert not top
    out, top = authoring.strip_solutions("### BEGIN SOLUTION\nA = 1\n### END SOLUTION")
    assert out == authoring.PLACEHOLDER and top


@pytest.mark.parametrize(
    "src",
    ["### BEGIN SOLUTION\nx = 1", "### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"],
)
def test_unbalanced_markers_are_errors(src):
    with pytest.raises(ValueError, match="SOLUTION"):
        authoring.strip_solutions(src)


def test_make_exercise_drops_solution_only_cells_and_tags_raising_cells():
    nb = new_notebook(cells=[
        new_markdown_cell("# title"),
        new_code_cell("secret = 1", metadata={"tags": ["solution-only"]}),
        new_code_cell("### BEGIN SOLUTION\nANSWER = 1\n### END SOLUTION"),
        new_code_cell("use(f)", metadata={"tags": ["raises-in-exercise"]}),
        new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
    ])
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[4].execution_count = 3
    ex = authoring.make_exercise(nb)
    assert len(ex.cells) == 4 and "secret" not in authoring.dumps(ex)
    assert ex.cells[1].metadata["tags"] == ["raises-exception"]
    assert ex.cells[2].metadata["tags"] == ["raises-exception"]
    assert ex.cells[3].metadata == {} and ex.cells[3].outputs == [] and ex.cells[3].execution_count is None
    nbformat.validate(ex)


def test_committed_exercises_are_up_to_date():
    stale = authoring.exercises(check=True)
    assert stale == [], f"regenerate with `make exercises`: {stale}"


def test_every_solution_cell_with_a_region_keeps_its_signature():
    for sol in sorted((authoring.ROOT / "solutions").glob("*.ipynb")):
        ex = authoring.make_exercise(nbformat.read(sol, as_version=4))
        text = authoring.dumps(ex)
        assert authoring.BEGIN not in text and authoring.END not in text
