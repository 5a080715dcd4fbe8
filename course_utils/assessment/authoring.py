"""Authoring: generate exercises from solutions, execute notebooks to store their outputs, guard first cells.

    python -m course_utils.assessment.authoring exercises [--check]
    python -m course_utils.assessment.authoring outputs NOTEBOOK [NOTEBOOK ...]
    python -m course_utils.assessment.authoring install-guard [--check]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = 'raise NotImplementedError("Replace this line with your code.")'
SOLUTION_ONLY = "solution-only"
RAISES_IN_EXERCISE = "raises-in-exercise"
RAISES = "raises-exception"
_KEEP_NOTEBOOK_METADATA = ("kernelspec",)
INSTALL_HELP = (
    "This notebook needs the course's Python package, course_utils, and this kernel cannot import it. "
    "Install the course once: in a terminal, in the course folder, run `make lab` (it creates .venv, "
    "installs everything and opens JupyterLab on the course); with conda, run "
    "`conda env create -f environment.yml && conda activate mle-course`; in an environment of your own "
    "(Colab, say), run `pip install -e .` in the course folder. Then restart the kernel and run this cell again."
)
GUARD_MARK = "# Set-up check: without the course's package, say how to install it (not a traceback)."


def _guard(help_text: str, width: int = 96) -> str:
    """The guard's source: the import, and on failure an error that shows `help_text` (wrapped) and nothing else."""
    glued = re.sub(r"`[^`]+`", lambda command: command.group(0).replace(" ", "\0"), help_text)  # keep commands whole
    lines = [line.replace("\0", " ") for line in textwrap.wrap(glued, width, break_on_hyphens=False)]
    last = len(lines) - 1
    literal = "\n".join("        " + json.dumps(line + ("\n" if n < last else "")) for n, line in enumerate(lines))
    return (f"{GUARD_MARK}\n"
            "try:\n"
            "    import course_utils\n"
            "except ModuleNotFoundError:\n"
            "    class CourseNotInstalled(Exception):\n"
            "        def _render_traceback_(self):\n"
            "            return [str(self)]\n"
            "\n"
            "    raise CourseNotInstalled(\n"
            f"{literal}\n"
            "    ) from None\n"
            "\n")


# The first lines of every notebook's first code cell; ends with a blank line, then the cell's own code.
GUARD = _guard(INSTALL_HELP)
_KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def strip_solutions(source: str) -> tuple[str, bool]:
    """Replace each BEGIN/END SOLUTION region with an indented placeholder.

    Returns the new source and whether a placeholder sits at the top level of the cell (so
    running the cell itself raises, not only calling a function defined in it).
    """
    out: list[str] = []
    inside = False
    top_level = False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            top_level = top_level or indent == ""
            out.append(indent + PLACEHOLDER)
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} is never closed by {END}")
    return "\n".join(out), top_level


def make_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a solution notebook: answers replaced, outputs cleared."""
    nb = copy.deepcopy(solution)
    cells = []
    for cell in nb.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if SOLUTION_ONLY in tags:
            continue
        if cell.cell_type == "code":
            cell.source, raises = strip_solutions(cell.source)
            if RAISES_IN_EXERCISE in tags:
                tags.remove(RAISES_IN_EXERCISE)
                raises = True
            if raises and RAISES not in tags:
                tags.append(RAISES)
            cell.outputs = []
            cell.execution_count = None
        cell.metadata = {"tags": tags} if tags else {}
        cells.append(cell)
    nb.cells = cells
    return normalise(nb)


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop volatile metadata (widget state, timings, Python version), keeping outputs and counts."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in _KEEP_NOTEBOOK_METADATA}
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(nb.cells):
        cell.id = f"c{index:03d}"
        tags = cell.get("metadata", {}).get("tags", [])
        cell.metadata = {"tags": list(tags)} if tags else {}
        if cell.cell_type == "code":
            for output in cell.outputs:
                if output.get("output_type") in ("display_data", "execute_result"):
                    output["metadata"] = {}
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def exercises(check: bool = False, root: Path = ROOT, out: Path | None = None) -> list[Path]:
    """Write exercises/NN_*.ipynb (or into `out`) from solutions/; with `check`, return the stale ones instead."""
    if not (root / "solutions").is_dir():
        raise ValueError(f"{root} has no solutions/ (a student release): its exercises are final as they are")
    out = root / "exercises" if out is None else out
    stale = []
    for sol in sorted((root / "solutions").glob("*.ipynb")):
        target = out / sol.name
        text = dumps(make_exercise(nbformat.read(sol, as_version=4)))
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    orphans = [p for p in out.glob("*.ipynb") if not (root / "solutions" / p.name).exists()]
    return stale + orphans


def execute(path: Path, timeout: int = 900) -> None:
    """Run a notebook top to bottom in a fresh kernel and store its normalised outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    path.write_text(dumps(normalise(nb)), encoding="utf-8")


def with_guard(source: str) -> str:
    """`source` with GUARD in front, replacing an earlier guard (one that starts with GUARD_MARK): idempotent."""
    if source.startswith(GUARD_MARK):
        end = source.find("\n\n", source.find("raise CourseNotInstalled"))
        source = source[end + 2:] if end >= 0 else ""
    return GUARD + source.lstrip("\n")


def guard_notebook(nb: nbformat.NotebookNode) -> bool:
    """Put GUARD at the top of the first code cell; True if that changed the notebook."""
    first = next((cell for cell in nb.cells if cell.cell_type == "code"), None)
    if first is None:
        raise ValueError("the notebook has no code cell to guard")
    guarded = with_guard(first.source)
    changed = guarded != first.source
    first.source = guarded
    return changed


def install_guard(check: bool = False, root: Path = ROOT) -> list[Path]:
    """Guard the first code cell of every notebook in notebooks/ and solutions/, then regenerate exercises/.

    Returns the notebooks that changed (with `check`, those that would change; nothing is written).
    """
    changed = []
    for path in sorted([*(root / "notebooks").glob("*.ipynb"), *(root / "solutions").glob("*.ipynb")]):
        nb = nbformat.read(path, as_version=4)
        try:
            if not guard_notebook(nb):
                continue
        except ValueError as exc:
            raise ValueError(f"{path.relative_to(root)}: {exc}") from None
        changed.append(path)
        if not check:
            path.write_text(dumps(nb), encoding="utf-8")
    if (root / "solutions").is_dir():
        changed += exercises(check=check, root=root)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.assessment.authoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exercises", help="regenerate exercises/ from solutions/")
    ex.add_argument("--check", action="store_true", help="only report stale exercises (exit 1)")
    out = sub.add_parser("outputs", help="execute notebooks and store their outputs")
    out.add_argument("notebooks", nargs="+", type=Path)
    guard = sub.add_parser("install-guard", help="guard the first code cell of every notebook; regenerate exercises/")
    guard.add_argument("--check", action="store_true", help="only report notebooks without the current guard (exit 1)")
    args = parser.parse_args(argv)
    if args.command in ("exercises", "install-guard"):
        try:
            changed = (exercises if args.command == "exercises" else install_guard)(check=args.check)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for path in changed:
            print(("stale: " if args.check else "wrote: ") + str(path.relative_to(ROOT)))
        return 1 if (args.check and changed) else 0
    from tqdm.auto import tqdm

    for path in tqdm(args.notebooks, desc="executing", unit="notebook"):
        execute(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
