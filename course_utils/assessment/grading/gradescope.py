"""Gradescope export: an autograder zip (`setup.sh`, `run_autograder`) that runs this same grader.

The zip carries the whole package, with the instructor key where this tree has it (Gradescope keeps
the autograder from students); exported from a student release it grades the public cases only.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
_PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once to build the autograder image.
set -euo pipefail
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
/autograder/venv/bin/pip install -q "torch=={torch}" --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install -q /autograder/source/course
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
OUT="$(mktemp -d)"
"$PYTHON" -m course_utils.assessment.grading {key} "$NOTEBOOK" --out "$OUT" --jobs 1
STEM="$(basename "$NOTEBOOK" .ipynb)"
cp "$OUT/$STEM.json" "$ROOT/results/results.json"
"""


def export(key: str, out: Path) -> Path:
    """Write `gradescope_<key>.zip` into `out` and return its path (with the instructor key where installed)."""
    from .. import assignments

    if not assignments.has_key():
        print("course-grade: warning: this tree has no instructor key; the autograder will grade the public "
              "cases only and leave answer items ungraded", file=sys.stderr)
    path = Path(out) / f"gradescope_{key}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _add_text(zf, "setup.sh", SETUP_SH.format(torch=torch.__version__.split("+")[0]))
        _add_text(zf, "run_autograder", RUN_AUTOGRADER.format(key=key))
        for name in _PACKAGE_FILES:
            if (ROOT / name).is_file():
                zf.write(ROOT / name, f"course/{name}")
        for source in sorted((ROOT / "course_utils").rglob("*")):
            if source.is_file() and "__pycache__" not in source.parts and source.suffix != ".pyc":
                zf.write(source, f"course/{source.relative_to(ROOT)}")
    return path


def _add_text(zf: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o755 << 16  # executable, as Gradescope expects
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, text)
