"""The package layout: the README tree matches the files, every module says what it is, imports change nothing."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import course_utils

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "course_utils"


def readme_tree() -> set[str]:
    """The paths listed in the README's "How the code is organised" tree, relative to the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How the code is organised", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    paths, stack = set(), []  # stack of (indent, directory)
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "/".join([d for _, d in stack] + [name.rstrip("/")])
        if name.endswith("/"):
            stack.append((indent, name.rstrip("/")))
        paths.add(path)
    return paths


def package_files() -> set[str]:
    """Every module and subpackage of course_utils, except the per-chapter assignment definitions."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[:3] == ("course_utils", "assessment", "assignments"):
            continue  # listed as one folder
        found.add(rel.as_posix())
    for path in PACKAGE.rglob("*"):
        if path.is_dir() and path.name != "__pycache__":
            found.add(path.relative_to(ROOT).as_posix())
    found.add("course_utils")
    return found


def test_readme_tree_lists_exactly_the_package_files():
    listed, actual = readme_tree(), package_files()
    assert not listed - actual, f"the README lists files that do not exist: {sorted(listed - actual)}"
    assert not actual - listed, f"the README's tree is missing: {sorted(actual - listed)}"


def test_readme_tree_parser_sees_nesting():
    paths = readme_tree()
    assert {"course_utils/viz/ch01.py", "course_utils/assessment/grading/child.py", "course_utils/train.py"} <= paths


def test_every_module_has_a_docstring_whose_first_line_says_what_it_is():
    for path in PACKAGE.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and len(doc.splitlines()[0]) > 20, f"{path.relative_to(ROOT)} needs a one-line docstring"


def test_the_package_map_names_every_top_level_module():
    doc = course_utils.__doc__
    for path in PACKAGE.glob("*.py"):
        if path.stem != "__init__":
            assert re.search(rf"^\s+{path.stem}\b", doc, re.M), f"course_utils/__init__.py does not map {path.stem}"
    for sub in ("viz", "assessment"):
        assert re.search(rf"^\s+{sub}\b", doc, re.M)


def test_old_import_paths_are_gone():
    for old in ("data", "plots", "widgets", "curves", "items", "checks", "authoring", "assignments", "grading",
                "mlm_explorer", "cross_entropy_plots", "smoothing_explorer", "sample_explorer", "finetune_plots",
                "policy_explorer"):
        assert not (PACKAGE / f"{old}.py").exists() and not (PACKAGE / old).is_dir(), old


def test_importing_every_module_changes_no_global_state():
    """Importing any module leaves matplotlib's rcParams and torch's thread count and seed alone."""
    code = """
import pkgutil, importlib, matplotlib, torch
import course_utils
before = (dict(matplotlib.rcParams), torch.get_num_threads(), torch.initial_seed())
names = [m.name for m in pkgutil.walk_packages(course_utils.__path__, "course_utils.")
         if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
after = (dict(matplotlib.rcParams), torch.get_num_threads(), torch.initial_seed())
assert len(names) > 40, names
assert before == after, [k for k in before[0] if before[0][k] != after[0].get(k)]
print("ok", len(names))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stdout + result.stderr


def test_the_course_map_states_each_assignments_items_and_points():
    from course_utils.assessment import assignments

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for key in assignments.keys():
        assignment = assignments.load(key)
        row = re.search(rf"^\| {assignment.number} \| `{key}` \| (\d+) items, (\d+) points \|", readme, re.M)
        assert row, f"the README's course map has no row for {key}"
        assert (int(row.group(1)), int(row.group(2))) == (len(assignment.items), assignment.max_score), key
