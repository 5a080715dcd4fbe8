"""Exercise generation: placeholders, tags, staleness of the committed exercises; the install guard of first cells."""

import json
import re
import subprocess
import sys

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


# --- the install guard at the top of every notebook's first code cell ---

# Runs each source (JSON list on stdin) in a fresh IPython shell, as a notebook kernel does, and prints what each
# showed (stdout and stderr together) and whether it raised, as JSON. With "block", course_utils cannot be imported.
_RUN_CELLS = r"""
import contextlib, io, json, sys
sources, block = json.load(sys.stdin)
if block:
    sys.modules["course_utils"] = None  # `import course_utils` now raises ModuleNotFoundError
from IPython.core.interactiveshell import InteractiveShell
results = []
for source in sources:
    shell = InteractiveShell.instance()
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
        outcome = shell.run_cell(source)
    results.append({"shown": shown.getvalue(), "raised": outcome.error_in_exec is not None})
    InteractiveShell.clear_instance()
print(json.dumps(results))
"""


def run_cells(sources: list[str], block: bool) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", _RUN_CELLS], input=json.dumps([sources, block]), text=True,
                          capture_output=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _sample():
    return new_notebook(cells=[new_markdown_cell("# title"), new_code_cell("import course_utils\nprint('ready')"),
                               new_code_cell("print(2)")])


def _assert_guard_explains(result: dict) -> None:
    shown = result["shown"]
    assert result["raised"], "the guard must stop Run All: the later cells need the package"
    assert " ".join(shown.split()) == " ".join(authoring.INSTALL_HELP.split()), shown
    assert "Traceback" not in shown and "ModuleNotFoundError" not in shown and "---" not in shown


def test_guard_is_put_once_and_replaces_an_older_guard():
    nb = _sample()
    assert authoring.guard_notebook(nb)
    first = nb.cells[1].source
    assert first == authoring.GUARD + "import course_utils\nprint('ready')"
    assert not authoring.guard_notebook(nb) and nb.cells[1].source == first
    assert nb.cells[0].source == "# title" and nb.cells[2].source == "print(2)"
    older = authoring.GUARD_MARK + "\ntry:\n    import course_utils\nexcept ModuleNotFoundError:\n" \
        "    raise CourseNotInstalled('old words') from None\n\nprint('ready')"
    assert authoring.with_guard(older) == authoring.GUARD + "print('ready')"
    with pytest.raises(ValueError, match="no code cell"):
        authoring.guard_notebook(new_notebook(cells=[new_markdown_cell("only prose")]))


def test_guard_names_the_readme_install_commands_and_is_lint_clean():
    readme = (authoring.ROOT / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make lab)\b", setup, flags=re.M) + re.findall(r"`(conda env create[^`]*)`", setup)
    assert len(commands) == 2, commands
    help_text = " ".join(authoring.INSTALL_HELP.split())
    for command in commands:
        assert f"`{command.split(' && conda activate')[0]}" in help_text, command
    assert max(len(line) for line in authoring.GUARD.splitlines()) <= 120
    compile(authoring.GUARD, "<guard>", "exec")


def test_guarded_cell_without_the_package_shows_only_the_install_paragraph():
    nb = _sample()
    authoring.guard_notebook(nb)
    blocked, installed = run_cells([nb.cells[1].source], block=True) + run_cells([nb.cells[1].source], block=False)
    _assert_guard_explains(blocked)
    assert "ready" not in blocked["shown"]
    assert installed == {"shown": "ready\n", "raised": False}


def test_install_guard_rewrites_lessons_and_solutions_and_regenerates_exercises(tmp_path):
    for folder in ("notebooks", "solutions"):
        (tmp_path / folder).mkdir()
        nb = _sample()
        nb.cells.append(new_code_cell("### BEGIN SOLUTION\nA = 1\n### END SOLUTION"))
        (tmp_path / folder / "01_x.ipynb").write_text(authoring.dumps(authoring.normalise(nb)), encoding="utf-8")
    changed = authoring.install_guard(check=True, root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in changed] == \
        ["notebooks/01_x.ipynb", "solutions/01_x.ipynb", "exercises/01_x.ipynb"]
    assert not (tmp_path / "exercises").exists()
    authoring.install_guard(root=tmp_path)
    for folder in ("notebooks", "solutions", "exercises"):
        nb = nbformat.read(tmp_path / folder / "01_x.ipynb", as_version=4)
        assert nb.cells[1].source.startswith(authoring.GUARD), folder
    assert authoring.install_guard(root=tmp_path) == []


def test_every_notebook_first_code_cell_has_the_install_guard():
    paths = sorted(authoring.ROOT.glob("*/[0-9][0-9]_*.ipynb"))
    assert {p.parent.name for p in paths} >= {"notebooks", "exercises"}
    firsts = [next(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code") for p in paths]
    unguarded = [str(p.relative_to(authoring.ROOT)) for p, first in zip(paths, firsts, strict=True)
                 if not first.startswith(authoring.GUARD)]
    assert unguarded == [], f"run `python -m course_utils.assessment.authoring install-guard`: {unguarded}"
    for result in run_cells(firsts, block=True):
        _assert_guard_explains(result)
