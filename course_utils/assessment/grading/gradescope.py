"""Gradescope export: an autograder zip (`setup.sh`, `run_autograder`) that runs this same grader, and its local test.

The zip carries the whole package, with the instructor key where this tree has it (Gradescope keeps
the autograder from students); exported from a student release it grades the public cases only.
`run_autograder` copies the upload to a fixed name, grades it with each keyed item split into a
visible public part and a graded part shown later, and writes Gradescope's `results.json`.

    course-grade --export-gradescope ASSIGNMENT --out DIR [--hidden-visibility VISIBILITY]
    course-grade --test-gradescope ZIP NOTEBOOK
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")
DISTRIBUTION = "course-utils"
CONSTRAINTS = "constraints.txt"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
HIDDEN_VISIBILITY = "after_due_date"
UPLOAD = "submission.ipynb"  # the fixed name an upload is graded under, whatever the student called it
_RESULT_SECONDS = 600

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once to build the autograder image; every package is pinned to the versions
# the autograder was exported from (course/constraints.txt).
set -euo pipefail
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
/autograder/venv/bin/pip install -q "torch=={torch}" --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install -q -c /autograder/source/course/{constraints} /autograder/source/course
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade the notebook in /autograder/submission.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{COURSE_GRADE_PYTHON:-$ROOT/venv/bin/python}}"
mkdir -p "$ROOT/results"
NOTEBOOK="$(ls "$ROOT"/submission/{key}.ipynb 2>/dev/null || ls "$ROOT"/submission/*.ipynb 2>/dev/null | head -n 1)"
if [ -z "$NOTEBOOK" ]; then
  echo '{{"score": 0, "output": "No .ipynb file was submitted: upload your notebook {key}.ipynb.", "tests": []}}' \\
    > "$ROOT/results/results.json"
  exit 0
fi
WORK="$ROOT/work"
rm -rf "$WORK"
mkdir -p "$WORK/out"
cp "$NOTEBOOK" "$WORK/{upload}"
{hidden_apart}=1 "$PYTHON" -m course_utils.assessment.grading {key} "$WORK/{upload}" --out "$WORK/out" --jobs 1
"$PYTHON" -m course_utils.assessment.grading.gradescope "$WORK/out/{stem}.json" "$ROOT/results/results.json" \\
  --hidden-visibility "${{COURSE_GRADE_HIDDEN_VISIBILITY:-{visibility}}}"
"""


def export(key: str, out: Path, hidden_visibility: str = HIDDEN_VISIBILITY) -> Path:
    """Write `gradescope_<key>.zip` into `out` and return its path (with the instructor key where installed)."""
    import torch

    from .. import assignments
    from .scoring import HIDDEN_APART_ENV

    _check_visibility(hidden_visibility)
    if not assignments.has_key():
        print("course-grade: warning: this tree has no instructor key; the autograder will grade the public "
              "cases only and leave answer items ungraded", file=sys.stderr)
    path = Path(out) / f"gradescope_{key}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _add_text(zf, "setup.sh", SETUP_SH.format(torch=torch.__version__.split("+")[0], constraints=CONSTRAINTS))
        _add_text(zf, "run_autograder", RUN_AUTOGRADER.format(
            key=key, upload=UPLOAD, stem=Path(UPLOAD).stem, hidden_apart=HIDDEN_APART_ENV,
            visibility=hidden_visibility))
        _add_text(zf, f"course/{CONSTRAINTS}", "".join(f"{name}=={version}\n" for name, version in pinned()))
        for name in _PACKAGE_FILES:
            if (ROOT / name).is_file():
                zf.write(ROOT / name, f"course/{name}")
        for source in sorted((ROOT / "course_utils").rglob("*")):
            if source.is_file() and "__pycache__" not in source.parts and source.suffix != ".pyc":
                zf.write(source, f"course/{source.relative_to(ROOT)}")
    return path


def pinned(distribution: str = DISTRIBUTION) -> list[tuple[str, str]]:
    """Every package the course needs, with the version installed here, sorted by name (torch included).

    The requirements of `distribution` (not its extras) and theirs, recursively, as `importlib.metadata`
    reads them; a requirement that applies only to another platform or Python is skipped.
    """
    found: dict[str, str] = {}
    todo = list(_requirements(distribution))
    while todo:
        name = todo.pop()
        key = _canonical(name)
        if key in found:
            continue
        try:
            found[key] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or an optional one: nothing to pin
        todo += _requirements(name)
    return sorted(found.items())


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requirements(distribution: str) -> list[str]:
    """The names of the packages `distribution` requires, leaving out extras."""
    names = []
    for line in metadata.requires(distribution) or []:
        if re.search(r"\bextra\s*==", line):
            continue
        match = _NAME.match(line)
        if match:
            names.append(match.group(1))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _check_visibility(visibility: str) -> None:
    if visibility not in VISIBILITIES:
        raise ValueError(f"the visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r}")


# ---------------------------------------------------------------- results.json for Gradescope

def for_gradescope(results: dict, hidden_visibility: str = HIDDEN_VISIBILITY) -> dict:
    """The grader's result as Gradescope's results.json: each keyed item's public part visible at once,
    its graded result (hidden cases, judged answers) with `hidden_visibility`, the total shown with them."""
    from .scoring import PUBLIC_PART

    _check_visibility(hidden_visibility)
    tests = [dict(t) for t in results.get("tests", [])]
    later = {t["name"].removesuffix(PUBLIC_PART) for t in tests if t["name"].endswith(PUBLIC_PART)}
    for test in tests:
        if test["name"].endswith(PUBLIC_PART):
            test["visibility"] = "visible"
            test["status"] = "passed" if str(test.get("output", "")).startswith(_FINE) else "failed"
        elif test["name"] in later:
            test["visibility"] = hidden_visibility
    out = {**results, "tests": tests}
    if later and hidden_visibility != "visible":
        lines = str(results.get("output", "")).split("\n")
        if lines and lines[0].startswith("Score:"):
            lines[0] = "Your score is shown with the graded results of each item."
        out["output"] = "\n".join(lines)
    return out


_FINE = ("✅", "📝")  # a public part passed, or an answer well formed and recorded for the graded run


def write_for_gradescope(source: Path, target: Path, hidden_visibility: str = HIDDEN_VISIBILITY) -> None:
    """Read the grader's result at `source` and write Gradescope's results.json at `target`."""
    try:
        results = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        results = {"score": 0, "output": f"The grader wrote no result ({type(exc).__name__}); ask your instructor.",
                   "tests": []}
    Path(target).write_text(json.dumps(for_gradescope(results, hidden_visibility), indent=2, ensure_ascii=False)
                            + "\n", encoding="utf-8")


# ---------------------------------------------------------------- testing the zip locally

def test_zip(archive: Path, notebook: Path, timeout: float = _RESULT_SECONDS) -> dict:
    """Run the zip's `run_autograder` on `notebook` in a temporary `/autograder`-shaped tree with this
    interpreter (nothing is installed) and return the results.json it wrote; ValueError if it wrote none."""
    archive, notebook = Path(archive), Path(notebook)
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"not a zip file: {archive}")
    if not notebook.is_file():
        raise ValueError(f"no such notebook: {notebook}")
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the grader's sandbox user reads the copied submission from here
        with zipfile.ZipFile(archive) as zf:
            if "run_autograder" not in zf.namelist():
                raise ValueError(f"{archive} has no run_autograder: is it a Gradescope autograder zip?")
            zf.extractall(root / "source")
        (root / "submission").mkdir()
        shutil.copyfile(notebook, root / "submission" / notebook.name)
        env = dict(os.environ, AUTOGRADER_ROOT=str(root), COURSE_GRADE_PYTHON=sys.executable)
        run = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                             text=True, timeout=timeout)
        result = root / "results" / "results.json"
        if not result.is_file():
            raise ValueError(f"run_autograder wrote no results.json (exit {run.returncode}): "
                             f"{' '.join(run.stderr.split())[-500:]}")
        return json.loads(result.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """`course-grade --test-gradescope ZIP NOTEBOOK`: run the zip as Gradescope would and print its results.json."""
    p = argparse.ArgumentParser(prog="course-grade")
    p.add_argument("--test-gradescope", nargs=2, metavar=("ZIP", "NOTEBOOK"), type=Path, required=True)
    args = p.parse_args(argv)
    try:
        print(json.dumps(test_zip(*args.test_gradescope), indent=2, ensure_ascii=False))
        return 0
    except (ValueError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"course-grade: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def handles(argv: list[str]) -> bool:
    """Whether a command line is this module's (`course-grade` hands it over)."""
    return any(a.split("=")[0] == "--test-gradescope" for a in argv)


def _add_text(zf: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o755 << 16  # executable, as Gradescope expects
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, text)


def _convert(argv: list[str] | None = None) -> int:
    """`python -m course_utils.assessment.grading.gradescope SOURCE TARGET [--hidden-visibility V]` (run_autograder)."""
    p = argparse.ArgumentParser(prog="run_autograder")
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--hidden-visibility", choices=VISIBILITIES, default=HIDDEN_VISIBILITY)
    args = p.parse_args(argv)
    write_for_gradescope(args.source, args.target, args.hidden_visibility)
    return 0


if __name__ == "__main__":
    sys.exit(_convert())
