"""The `course-grade` command: grade submissions in parallel sandboxes, write results and grades.csv.

    course-grade ASSIGNMENT SUBMISSION [SUBMISSION ...] --out DIR [--jobs N] [--timeout SECONDS]
    course-grade --export-gradescope ASSIGNMENT --out DIR
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..items import Assignment
    from .parent import Pool

DEFAULT_TIMEOUT_S = 30.0
"""Wall-time limit per submission unless the assignment's notes set `grading_timeout_s`.

Chapter 01's solution notebook runs in well under a second in the sandbox on a 2-core machine,
so 30 s leaves room for slow machines and slow-but-correct answers; it is a constant so that a
grade never depends on how busy the grading machine was.
"""

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="course-grade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("assignment", nargs="?", help="chapter number or name, e.g. 01 or 01_mle_coin_flips")
    p.add_argument("submissions", nargs="*", type=Path,
                   help="notebook files, or directories whose *.ipynb files are all graded")
    p.add_argument("--out", type=Path, required=True, help="directory for <stem>.json files and grades.csv")
    p.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: number of cores)")
    p.add_argument("--timeout", type=float, default=None,
                   help=f"wall-time limit per submission in seconds (default {DEFAULT_TIMEOUT_S:g}, "
                        "or the assignment's own)")
    p.add_argument("--export-gradescope", metavar="ASSIGNMENT", default=None,
                   help="write a Gradescope autograder zip for ASSIGNMENT into --out instead of grading")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `course-grade` and `python -m course_utils.assessment.grading`."""
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"course-grade: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.export_gradescope is not None:
        if args.assignment or args.submissions:
            raise UsageError("--export-gradescope takes no submissions")
        from .gradescope import export

        assignment = _load(args.export_gradescope)
        out = _writable_dir(args.out)
        path = export(assignment.key, out)
        print(f"wrote {path}")
        return EXIT_OK
    if not args.assignment:
        raise UsageError("the ASSIGNMENT argument is required (e.g. 01)")
    if not args.submissions:
        raise UsageError("give at least one SUBMISSION (a notebook or a directory of notebooks)")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    files = _submissions(args.submissions)
    out = _writable_dir(args.out)
    jobs = args.jobs or len(os.sched_getaffinity(0))
    from .parent import Pool

    _warn_if_readable(files)
    workers = min(jobs, len(files))
    pool = Pool(workers, wait=False, warm_up=len(files) > workers)  # it imports torch while we do
    try:
        assignment = _load(args.assignment)
        timeout = args.timeout or float(assignment.notes.get("grading_timeout_s", DEFAULT_TIMEOUT_S))
        return grade(assignment, files, out, jobs=jobs, timeout=timeout, pool=pool)
    finally:
        pool.close()


def _load(key: str) -> Assignment:
    from .. import assignments

    try:
        return assignments.load(key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _submissions(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.ipynb") if p.is_file())
            if not found:
                raise UsageError(f"no .ipynb files in the directory {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"no such file or directory: {path}")
    return files


def _warn_if_readable(files: list[Path]) -> None:
    """Submissions that every user can read are readable by the sandboxed notebooks too."""
    from .parent import is_root, readable_by_others

    exposed = [f for f in files if readable_by_others(f)]
    if is_root() and exposed:
        print(f"course-grade: warning: {len(exposed)} submission(s), e.g. {exposed[0]}, can be read by any "
              "user, so a graded notebook could read another student's work; make their folder private "
              "(chmod go-rwx) before grading", file=sys.stderr)


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write to the output directory {path}: {exc.strerror or exc}") from None
    return path


def _names(files: list[Path]) -> list[str]:
    """A distinct result name per submission: the file stem, with -2, -3, … for repeats."""
    used: set[str] = set()
    names = []
    for f in files:
        name, k = f.stem or "submission", 1
        while name.lower() in used or name.lower() == "grades":
            k += 1
            name = f"{f.stem}-{k}"
        used.add(name.lower())
        names.append(name)
    return names


def grade(assignment: Assignment, files: list[Path], out: Path, jobs: int, timeout: float,
          pool: Pool | None = None) -> int:
    """Grade `files` into `out`; returns 0 when every submission got its result file.

    `pool` (a `parent.Pool`) lets several calls share warm fork servers; by default a pool of
    `jobs` workers is started for this call and stopped at its end.
    """
    from . import results
    from .notebook import UnreadableNotebook, read_code_cells
    from .parent import Limits, Pool
    from .scoring import Plan

    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    plan = Plan(assignment)
    limits = Limits(timeout=timeout)
    names = _names(files)
    grades: list[results.Graded | None] = [None] * len(files)
    todo: queue.Queue = queue.Queue()
    item_points = [(item.name, float(item.points)) for item in assignment.items]
    for index, (name, path) in enumerate(zip(names, files, strict=True)):
        try:
            cells = read_code_cells(path)
        except UnreadableNotebook as exc:
            grades[index] = results.unreadable(name, str(exc), item_points)
            continue
        todo.put((index, cells))
    lock = threading.Lock()
    failures: list[str] = []

    def report(index: int, grade: results.Graded) -> None:
        try:
            results.write_result(out / f"{names[index]}.json", grade)
        except OSError as exc:
            failures.append(f"{files[index]}: cannot write its result ({exc})")
            return
        with lock:
            grades[index] = grade
            print(f"{grade.submission}: {results.number(grade.score)}/{results.number(grade.max_score)} "
                  f"{grade.status}", flush=True)

    def work(worker, spec: Path) -> None:  # one thread per worker slot
        try:
            while True:
                try:
                    index, cells = todo.get_nowait()
                except queue.Empty:
                    return
                run = worker.run(cells, limits, spec)
                report(index, results.graded(names[index], plan.score(run.items), run, timeout))
        except Exception as exc:  # the grader itself failed: never disguise it as a student's zero
            failures.append(f"grading worker failed: {type(exc).__name__}: {exc}")

    for index, grade in enumerate(grades):
        if grade is not None:
            report(index, grade)
    if not todo.empty():
        own_pool = pool is None
        try:
            pool = pool or Pool(min(jobs, todo.qsize()))
        except Exception as exc:
            failures.append(f"the sandbox could not start: {type(exc).__name__}: {exc}")
            own_pool = False
        if pool is not None:
            try:
                pool.wait_ready()
                spec = pool.spec(plan.child_spec())
                threads = [threading.Thread(target=work, args=(w, spec), daemon=True)
                           for w in pool.workers[:max(1, min(jobs, todo.qsize()))]]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                if own_pool:
                    pool.close()
    done = [g for g in grades if g is not None]
    results.write_csv(out / "grades.csv", done)
    for message in failures:
        print(f"course-grade: {message}", file=sys.stderr)
    missing = len(files) - len(done)
    print(f"graded {len(done)} of {len(files)} submissions in {time.monotonic() - start:.1f} s; "
          f"results in {out}", file=sys.stderr)
    return EXIT_OK if missing == 0 else EXIT_INCOMPLETE
