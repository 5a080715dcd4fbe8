"""The student release: this course without its solutions, its instructor key or the tests that hold answers.

    python -m course_utils.assessment.release DIR      (also `course-release DIR` and `make release`)

The tree written to DIR installs and runs with the same two commands as this one (`make lab`,
`make test`). It holds the lessons, the exercises (generated afresh from the solutions), the
package without `assessment/assignments/key/`, and the unit tests that do not touch the assessment
package or the solutions. Its `check()` runs the public cases and records answers; its grader
grades the public cases only. The instructor keeps this tree, and grades with it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat

from .authoring import BEGIN, END, exercises

ROOT = Path(__file__).resolve().parents[2]
MARKER = ".course-release"  # written into every release; a folder holding it may be replaced
KEY = Path("course_utils/assessment/assignments/key")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml", "environment.yml", "nbval_sanitize.cfg", "conftest.py",
             ".gitignore", "LICENSE")
TREES = ("notebooks", "benchmarks", ".ci", "course_utils", "tools")
_SKIP = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")
_ANSWER_WORDS = ("assessment", "solutions")  # a test that names either may hold, or need, the answers


class ReleaseError(ValueError):
    """The release cannot be written (no solutions to build from, a folder that is not a release, a leak)."""


def student_tests(root: Path = ROOT) -> list[Path]:
    """The test modules a student tree keeps: those that name neither the assessment package nor the solutions."""
    return [p for p in sorted((root / "tests").glob("test_*.py"))
            if not any(word in p.read_text(encoding="utf-8") for word in _ANSWER_WORDS)]


def build(dest: Path, root: Path = ROOT) -> list[Path]:
    """Write the student release of the course at `root` into `dest`; return the files written."""
    root, dest = Path(root).resolve(), Path(dest).resolve()
    _check_source(root, dest)
    _prepare(dest)
    written = [_copy(root / name, dest / name) for name in TOP_FILES if (root / name).is_file()]
    for tree in TREES:
        written += _copy_tree(root, tree, dest)
    written += [_copy(path, dest / "tests" / path.name) for path in student_tests(root)]
    written += exercises(root=root, out=dest / "exercises")  # generated now: no stale copy can carry an answer
    (dest / MARKER).write_text("A student release of the course, written by `make release` from the "
                               "instructor's tree: no solutions, no instructor key.\n", encoding="utf-8")
    problems = leaks(dest)
    if problems:
        raise ReleaseError("the release would reveal answers: " + "; ".join(problems))
    return written


def leaks(tree: Path) -> list[str]:
    """What in `tree` a student release must not have: the key, the solutions, a solution region."""
    found = [f"{rel} exists" for rel in (KEY, Path("solutions")) if (tree / rel).exists()]
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not any(part in _SKIP for part in path.parts) and _has_region(path):
            found.append(f"{path.relative_to(tree)} holds a solution region")
    return found


def _has_region(path: Path) -> bool:
    """Whether a file has a line that is a solution marker (in a notebook: a line of a cell)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if BEGIN not in text and END not in text:
        return False
    if path.suffix == ".ipynb":
        text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
    return any(line.strip() in (BEGIN, END) for line in text.splitlines())


def _check_source(root: Path, dest: Path) -> None:
    if not (root / "solutions").is_dir() or not (root / KEY).is_dir():
        raise ReleaseError(f"{root} has no solutions/ or no instructor key: it is a student release already; "
                           "build the release from the instructor's tree")
    if dest == root or (root in dest.parents and dest.parts[len(root.parts)] in TREES + ("tests", "exercises")):
        raise ReleaseError(f"{dest} is inside the course itself; choose a folder outside its sources")


def _prepare(dest: Path) -> None:
    """An empty `dest`: a new folder, an empty one, or an earlier release (replaced)."""
    if dest.exists():
        if not dest.is_dir():
            raise ReleaseError(f"{dest} exists and is not a folder")
        if any(dest.iterdir()):
            if not (dest / MARKER).is_file():
                raise ReleaseError(f"{dest} is not empty and is not an earlier release; choose another folder")
            shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def _copy_tree(root: Path, name: str, dest: Path) -> list[Path]:
    out = []
    for path in sorted((root / name).rglob("*")):
        rel = path.relative_to(root)
        if (path.is_file() and not path.is_symlink() and not any(part in _SKIP for part in rel.parts)
                and path.suffix != ".pyc" and KEY not in (rel, *rel.parents)):
            out.append(_copy(path, dest / rel))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of `course-release` and `python -m course_utils.assessment.release`."""
    parser = argparse.ArgumentParser(prog="course-release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="folder to write the student course into (new, empty, or an "
                                                "earlier release)")
    args = parser.parse_args(argv)
    try:
        written = build(args.dest)
    except ReleaseError as exc:
        print(f"course-release: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote a student release of {len(written)} files to {args.dest}")
    print("it has no solutions and no instructor key: keep this tree to grade with them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
