"""The student release: nothing in it reveals an answer, its check() works, and only the key grades in full.

The release is built once into a temporary folder and used from subprocesses whose PYTHONPATH points
at it (nothing is installed). Every hidden case, answer, listed mistake and solution region is looked
for, as source text with its whitespace removed, in every file of the release.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from course_utils.assessment import assignments, release
from course_utils.assessment.authoring import BEGIN, END
from course_utils.assessment.grading import gradescope
from course_utils.assessment.grading.scoring import NOT_GRADED, PUBLIC_ONLY
from course_utils.assessment.items import AnswerItem, FunctionItem

ROOT = Path(__file__).resolve().parent.parent
KEY_DIR = ROOT / release.KEY
SOLUTION_01 = ROOT / "solutions" / "01_mle_coin_flips.ipynb"


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def tree():
    """A fresh release in a folder the grader's sandbox user can read (not under a 0700 pytest folder)."""
    base = Path(tempfile.mkdtemp(prefix="course-release-test-"))
    base.chmod(0o755)
    dest = base / "student-course"
    release.build(dest)
    yield dest
    shutil.rmtree(base)


@pytest.fixture(scope="module")
def released_text(tree) -> dict[str, str]:
    """Every file of the release as searchable text (a notebook: its cells' sources and text outputs)."""
    out = {}
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            if path.suffix == ".ipynb":
                nb = nbformat.reads(text, as_version=4)
                parts = [c.source for c in nb.cells]
                parts += [o.get("text", "") or str(o.get("data", {}).get("text/plain", ""))
                          for c in nb.cells if c.cell_type == "code" for o in c.outputs]
                text = "\n".join(parts)
            out[str(path.relative_to(tree))] = _squeeze(text)
    return out


def _found(needle: str, files: dict[str, str]) -> list[str]:
    squeezed = _squeeze(needle)
    return [name for name, text in files.items() if squeezed in text]


# ---------------------------------------------------------------- what must not be there

def _key_keywords():
    """(chapter, keyword, value node, module text) for every keyword of every item key."""
    for path in sorted(KEY_DIR.glob("ch*.py")):
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("FunctionKey", "AnswerKey"):
                for kw in node.keywords:
                    yield path.stem, kw.arg, kw.value, text


SHORTEST = 16  # characters without spaces: shorter argument lists, such as (16,), are found anywhere


def hidden_case_needles() -> list[str]:
    """Each hidden case as written in the key, and the repr of its arguments where they are plain literals.

    Only those of at least SHORTEST characters are searched: `(1,)` or `(4, 12)` is in many a unit test.
    """
    needles = []
    for _, arg, value, text in _key_keywords():
        if arg == "hidden":
            needles += [ast.get_source_segment(text, case.args[0]) for case in value.elts]
    for key in assignments.keys():
        for item in assignments.load(key).items:
            if isinstance(item, FunctionItem):
                needles += [repr(c.args) for c in item.hidden if not callable(c.args) and "tensor" not in repr(c.args)]
    return [n for n in needles if len(_squeeze(n)) >= SHORTEST]


def answer_needles() -> list[str]:
    """Each answer key as written (`expected=...`), its other accepted answers, and why each wrong one is wrong."""
    needles = []
    for _, arg, value, text in _key_keywords():
        if arg == "expected":
            needles.append(f"expected={ast.get_source_segment(text, value)}")
        elif arg in ("also_accepted", "why_not"):
            needles += [n.value for n in ast.walk(value) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                        and (arg == "why_not" and len(n.value) > 20 or arg == "also_accepted")]
    for key in assignments.keys():
        for item in assignments.load(key).items:
            if isinstance(item, AnswerItem):
                needles += [why for _, why in item.why_not]
    return needles


def mistake_needles() -> list[str]:
    """Each listed mistake as it is written in the key, and each helper the key defines (for them or for cases)."""
    needles = []
    for path in sorted(KEY_DIR.glob("ch*.py")):
        text = path.read_text(encoding="utf-8")
        needles += [ast.get_source_segment(text, n) for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)]
    for key in assignments.keys():
        for item in assignments.load(key).items:
            if isinstance(item, FunctionItem):
                needles += [f'Mistake("{m.label}"' for m in item.mistakes]
    return needles


def solution_needles() -> list[str]:
    """The text of every region between the solution markers of every solution notebook (answers first)."""
    regions = []
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            inside, lines = False, []
            for line in cell.source.splitlines():
                if line.strip() == BEGIN:
                    inside, lines = True, []
                elif line.strip() == END:
                    inside = False
                    regions.append("\n".join(lines))
                elif inside:
                    lines.append(line)
    return sorted((r for r in regions if _squeeze(r)), key=lambda r: not r.lstrip().startswith("ANSWER_"))


def _where_searched(kind: str, needle: str, files: dict[str, str]) -> dict[str, str]:
    """The files a needle must not be in. The package's modules hold the course's reference functions by
    design (the lessons use them; the README says so), and a reference can read like a solution: a
    function's solution is looked for everywhere else, an answer's everywhere."""
    if kind != "solutions" or needle.lstrip().startswith("ANSWER_"):
        return files
    return {name: text for name, text in files.items() if not (name.startswith("course_utils/") and
                                                               name.endswith(".py"))}


def test_the_needles_are_real():
    """The searches below look for something: every chapter's key is found, and each kind of needle is there."""
    assert len(list(KEY_DIR.glob("ch*.py"))) == len(assignments.keys())
    assert len(hidden_case_needles()) > 50 and len(mistake_needles()) > 80
    assert 'expected="B"' in answer_needles() and len(solution_needles()) >= 30
    assert sum(r.lstrip().startswith("ANSWER_") for r in solution_needles()) >= 15
    # the search works: a solution region and the key are found in this repository's own files
    here = {"solutions": _squeeze(SOLUTION_01.read_text(encoding="utf-8")),
            "key": _squeeze((KEY_DIR / "ch01_mle_coin_flips.py").read_text(encoding="utf-8"))}
    assert _found('expected="B"', here) == ["key"] and _found("_flips(5000, 0.3, 11)", here) == ["key"]


def test_the_release_has_no_solutions_key_or_answer_tests(tree):
    assert not (tree / "solutions").exists() and not (tree / release.KEY).exists()
    assert (tree / "exercises").is_dir() and (tree / "notebooks").is_dir() and (tree / "course_utils").is_dir()
    assert sorted(p.name for p in (tree / "exercises").glob("*.ipynb")) == \
        sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    kept = {p.name for p in (tree / "tests").glob("*.py")}
    assert kept and "test_release.py" not in kept and "test_mistakes.py" not in kept
    assert all("assessment" not in (tree / "tests" / name).read_text(encoding="utf-8") for name in kept)
    assert release.leaks(tree) == []


def test_every_script_the_release_makefile_runs_is_in_the_release(tree):
    # make test-browser and make site run scripts under tools/: a release without them breaks those targets
    makefile = (tree / "Makefile").read_text(encoding="utf-8")
    scripts = set(re.findall(r"(?:tools|benchmarks)/[\w.]+\.py", makefile))
    assert "tools/browser_test.py" in scripts and "tools/build_site.py" in scripts
    assert [s for s in sorted(scripts) if not (tree / s).is_file()] == []


@pytest.mark.parametrize("kind", ["hidden cases", "answers", "mistakes", "solutions"])
def test_no_answer_is_anywhere_in_the_release(kind, released_text):
    needles = {"hidden cases": hidden_case_needles, "answers": answer_needles, "mistakes": mistake_needles,
               "solutions": solution_needles}[kind]()
    leaked = {needle[:60]: where for needle in needles
              if (where := _found(needle, _where_searched(kind, needle, released_text)))}
    assert not leaked, f"{kind} found in the release: {leaked}"


def test_a_release_refuses_to_be_built_over_other_files_or_from_a_release(tree, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(release.ReleaseError, match="not empty"):
        release.build(tmp_path)
    with pytest.raises(release.ReleaseError, match="student release already"):
        release.build(tmp_path / "again", root=tree)
    leaky = tmp_path / "leaky"
    shutil.copytree(tree / "course_utils", leaky / "course_utils")
    (leaky / "exercises").mkdir()
    shutil.copy(SOLUTION_01, leaky / "exercises" / SOLUTION_01.name)
    assert release.leaks(leaky) == [f"exercises/{SOLUTION_01.name} holds a solution region"]


# ---------------------------------------------------------------- using the release

def _release_env(tree: Path) -> dict[str, str]:
    """The environment of a process that imports the release's package (nothing is installed)."""
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def _in_release(tree: Path, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=_release_env(tree), capture_output=True,
                          text=True, timeout=timeout)


CHECK_IN_RELEASE = r'''
import json, nbformat
import course_utils
from course_utils.assessment import assignments
from course_utils.assessment.checks import check, evaluate
assert course_utils.__file__.startswith(TREE), course_utils.__file__
assert not assignments.has_key()
# the learner runs the exercise notebook from the top: placeholders raise, check() answers
ns = {}
nb = nbformat.read("exercises/01_mle_coin_flips.ipynb", as_version=4)
for cell in nb.cells:
    if cell.cell_type == "code":
        try:
            exec(compile(cell.source, "cell", "exec"), ns)
        except Exception as exc:
            pass
def bernoulli_mle(flips):
    return sum(flips) / len(flips)
lines = [evaluate("bernoulli_mle", bernoulli_mle).message, evaluate("bernoulli_mle", lambda f: 0.5).message,
         evaluate("ANSWER_LOWER_LOSS", "A").message, evaluate("ANSWER_LOWER_LOSS", "B").message,
         evaluate("ANSWER_LOWER_LOSS", "E").message, evaluate("ANSWER_SPREAD_RATIO", 0.5).message]
print(json.dumps(lines))
'''


def test_check_in_the_release_runs_public_cases_and_records_answers(tree):
    proc = _in_release(tree, f"TREE = {str(tree)!r}\n" + CHECK_IN_RELEASE)
    assert proc.returncode == 0, proc.stderr
    assert "not implemented yet" in proc.stdout  # the exercise's own check() cells ran
    right, wrong, a, b, bad, number = json.loads(proc.stdout.strip().splitlines()[-1])
    assert right == "✅ bernoulli_mle: all 2 public cases pass (the graded run also uses hidden cases)."
    assert wrong.startswith("❌ bernoulli_mle: case 1, bernoulli_mle([1, 0, 1, 1]): expected 0.75, got 0.5.")
    # a right and a wrong choice get the same words: nothing to learn from trying A to D
    assert a == "📝 ANSWER_LOWER_LOSS: recorded: 'A'; graded after submission."
    assert b == "📝 ANSWER_LOWER_LOSS: recorded: 'B'; graded after submission."
    assert bad.startswith("❌ ANSWER_LOWER_LOSS: ANSWER_LOWER_LOSS must be one of 'A', 'B', 'C', 'D'; got 'E'.")
    assert number == "📝 ANSWER_SPREAD_RATIO: recorded: 0.5; graded after submission."


def _grade(cwd: Path, out: Path, env: dict | None = None) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-m", "course_utils.assessment.grading", "01", str(SOLUTION_01),
                           "--out", str(out), "--jobs", "1"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / f"{SOLUTION_01.stem}.json").read_text(encoding="utf-8")), proc.stderr


@pytest.mark.usefixtures("readable_environment")
def test_the_solution_gets_full_marks_with_the_key_and_the_public_part_without(tree):
    assignment = assignments.load("01")
    assert assignment.keyed
    with_key, said = _grade(ROOT, tree.parent / "graded-with-key")
    assert "no instructor key" not in said
    assert with_key["score"] == with_key["max_score"] == assignment.max_score
    assert all(PUBLIC_ONLY not in t["output"] for t in with_key["tests"])

    public, said = _grade(tree, tree.parent / "graded-without-key", _release_env(tree))
    assert "course-grade: this course tree has no instructor key: public cases only" in said  # said once per batch
    function_points = sum(i.points for i in assignment.items if isinstance(i, FunctionItem))
    assert public["score"] == public["max_score"] == function_points < assignment.max_score
    for test in public["tests"]:
        if test["name"].startswith("ANSWER_"):
            assert test["max_score"] == 0 and "recorded:" in test["output"] and NOT_GRADED in test["output"]
        else:
            assert test["score"] == test["max_score"] > 0 and test["output"].startswith("✅")
            assert test["output"].endswith(PUBLIC_ONLY)


def test_the_gradescope_zip_carries_the_key(tmp_path):
    import zipfile

    names = zipfile.ZipFile(gradescope.export("01_mle_coin_flips", tmp_path)).namelist()
    assert "course/course_utils/assessment/assignments/key/ch01_mle_coin_flips.py" in names
