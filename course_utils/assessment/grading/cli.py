"""The `course-grade` command: grade submissions in parallel sandboxes, write results and grades.csv.

    course-grade ASSIGNMENT SUBMISSION [SUBMISSION ...] --out DIR [--jobs N] [--timeout SECONDS]
                 [--roster ROSTER.csv] [--feedback md|html]
    course-grade report DIR
    course-grade collect-manual DIR                                  (see manual.py)
    course-grade merge-manual DIR SCORES.csv [--feedback md|html]
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
    from .protocol import ItemSpec

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
    from . import gradescope

    p = _Parser(prog="course-grade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("assignment", nargs="?", help="chapter number or name, e.g. 01 or 01_mle_coin_flips")
    p.add_argument("submissions", nargs="*", type=Path,
                   help="notebook files, or directories whose *.ipynb files are all graded")
    p.add_argument("--out", type=Path, default=None, help="directory for <stem>.json files and grades.csv")
    p.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: number of cores)")
    p.add_argument("--timeout", type=float, default=None,
                   help=f"wall-time limit per submission in seconds (default {DEFAULT_TIMEOUT_S:g}, "
                        "or the assignment's own)")
    p.add_argument("--roster", type=Path, default=None,
                   help="CSV with columns file,student_id[,email]: adds the ids to grades.csv, writes lms.csv and "
                        "a `missing` row for each student without a submission")
    p.add_argument("--feedback", choices=("md", "html"), default=None,
                   help="also write a feedback file per submission next to its result (<stem>.md or <stem>.html)")
    p.add_argument("--export-gradescope", metavar="ASSIGNMENT", default=None,
                   help="write a Gradescope autograder zip for ASSIGNMENT into --out instead of grading")
    p.add_argument("--hidden-visibility", choices=gradescope.VISIBILITIES, default=gradescope.HIDDEN_VISIBILITY,
                   help="with --export-gradescope: when Gradescope shows each item's graded result")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `course-grade` and `python -m course_utils.assessment.grading`."""
    from . import gradescope

    words = sys.argv[1:] if argv is None else argv
    if gradescope.handles(words):
        return gradescope.main(words)  # --test-gradescope: see gradescope.py
    if words and words[0] in ("collect-manual", "merge-manual"):
        from . import manual

        return manual.main(words)  # manually graded items: see manual.py
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"course-grade: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.assignment == REPORT:
        return _report(args)
    if args.out is None:
        raise UsageError("the following arguments are required: --out")
    if args.export_gradescope is not None:
        if args.assignment or args.submissions:
            raise UsageError("--export-gradescope takes no submissions")
        from .gradescope import export

        assignment = _load(args.export_gradescope)
        out = _writable_dir(args.out)
        path = export(assignment.key, out, args.hidden_visibility)
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
    roster = _roster(args.roster)
    jobs = args.jobs or len(os.sched_getaffinity(0))
    from .parent import Pool

    problem = unreadable_environment()
    if problem:
        raise UsageError(problem)
    _warn_if_readable(files)
    workers = min(jobs, len(files))
    pool = Pool(workers, wait=False, warm_up=len(files) > workers)  # it imports torch while we do
    try:
        assignment = _load(args.assignment)
        timeout = args.timeout or float(assignment.notes.get("grading_timeout_s", DEFAULT_TIMEOUT_S))
        return grade(assignment, files, out, jobs=jobs, timeout=timeout, pool=pool, roster=roster,
                     feedback=args.feedback)
    finally:
        pool.close()


REPORT = "report"


def _report(args: argparse.Namespace) -> int:
    """`course-grade report DIR`: the class report of a results folder, written to DIR/report.md and printed."""
    if len(args.submissions) != 1 or args.roster or args.feedback or args.export_gradescope:
        raise UsageError("usage: course-grade report DIR (one results directory, no other options)")
    folder = args.submissions[0]
    if not folder.is_dir():
        raise UsageError(f"no such directory: {folder}")
    from . import report

    try:
        text = report.write_report(folder)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _say(text.rstrip("\n"))
    return EXIT_OK


def _roster(path: Path | None) -> list | None:
    """The roster's students (`results.Student`), or None without --roster."""
    if path is None:
        return None
    from .results import read_roster

    try:
        return read_roster(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _refuse_other_assignment(out: Path, assignment: Assignment) -> None:
    """A results folder holds one assignment: grading another into it would mix two classes' grades."""
    from .results import assignment_of, item_names, load_results, shown

    names = {item.name for item in assignment.items}
    for g in load_results(out):
        other = assignment_of(g)
        if other not in (None, assignment.key) or other is None and set(item_names([g])) != names:
            raise UsageError(f"the output directory {shown(str(out))} holds results of another assignment "
                             f"({shown(other or 'unknown')}, e.g. {shown(g.submission)}.json); grade "
                             f"{assignment.key} into its own directory")


def _load(key: str) -> Assignment:
    from .. import assignments

    try:
        return assignments.load(key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _submissions(paths: list[Path]) -> list[Path]:
    """The files to grade; a symbolic link is kept, to be refused with a result of its own."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.ipynb") if p.is_symlink() or p.is_file())
            if not found:
                raise UsageError(f"no .ipynb files in the directory {path}")
            files += found
        elif path.is_file() or path.is_symlink():
            files.append(path)
        else:
            raise UsageError(f"no such file or directory: {path}")
    return files


def unreadable_environment(packages: list[str] | None = None) -> str | None:
    """As root, why the sandbox user could not import the installed packages (one line), else None.

    `packages` defaults to the folders `parent.unreadable_by_others()` finds; a notebook graded
    without access to them fails its lazy imports and loses points it earned, so grading is refused.
    """
    from .parent import is_root, unreadable_by_others

    if packages is None:
        if not is_root():
            return None
        packages = unreadable_by_others()
    for package in packages:
        closed = first_closed_folder(Path(package))
        if closed is not None:
            fix = f"chmod o+x {closed}" if closed != Path(package).resolve() else f"chmod -R o+rX {closed}"
            return (f"the sandbox user cannot read {closed} (it holds {package}), so graded notebooks would fail "
                    f"to import and lose points; run '{fix}' or install the course where all users can read it")
    return None


def first_closed_folder(path: Path) -> Path | None:
    """The outermost folder on the way to `path` that other users cannot enter, or `path` itself
    when they cannot list it; None when they can read it."""
    path = path.resolve()
    for folder in [*reversed(path.parents), path]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            return folder
        if not mode & 0o001 or folder == path and not mode & 0o004:
            return folder
    return None


def _warn_if_readable(files: list[Path]) -> None:
    """Submissions that every user can read are readable by the sandboxed notebooks too."""
    from .parent import is_root, readable_by_others
    from .results import shown

    exposed = [f for f in files if readable_by_others(f)]
    if is_root() and exposed:
        print(f"course-grade: warning: {len(exposed)} submission(s), e.g. {shown(str(exposed[0]))}, can be read by any "
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
    """A distinct result name per submission: exactly the file's stem (`Alice` and `alice` are two).

    Only a stem seen a second time (the same file name in two folders) gets -2, -3, …, chosen
    so that it takes no other submission's name.
    """
    stems = [f.stem or "submission" for f in files]
    used = set(stems)
    names, seen = [], set()
    for stem in stems:
        name, k = stem, 1
        while name in seen or name != stem and name in used:
            k += 1
            name = f"{stem}-{k}"
        seen.add(name)
        used.add(name)
        names.append(name)
    return names


def with_references(spec: list[ItemSpec], assignment: Assignment) -> list[ItemSpec]:
    """The child spec (`protocol.ItemSpec`s) with the qualified name of each item's reference where it is
    public course code: the child records calls to it (integrity flags). Names only, never the functions."""
    import dataclasses

    from . import protocol

    names = {item.name: protocol.reference_name(getattr(item, "reference", None)) for item in assignment.items}
    return [dataclasses.replace(s, reference=names.get(s.name, "")) for s in spec]


def _say(line: str, stream=None) -> None:
    """Print one line; a character the terminal cannot show is escaped, never an error."""
    stream = stream or sys.stdout
    try:
        print(line, file=stream, flush=True)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        print(line.encode(encoding, "backslashreplace").decode(encoding), file=stream, flush=True)


def _write_feedback(path: Path, grade, failures: list[str]) -> None:
    """One submission's feedback file; a failure is reported, never fatal to the batch."""
    from . import feedback, results

    try:
        feedback.write_feedback(path, grade.results)
    except Exception as exc:
        failures.append(f"cannot write {results.shown(path.name)} ({type(exc).__name__}: {results.shown(str(exc))})")


def _write_class(out: Path, roster: list | None, failures: list[str]) -> None:
    """grades.csv from every result in `out` (and, with a roster, roster.csv kept there and lms.csv)."""
    from . import results

    try:
        saved = out / results.ROSTER_FILE
        if roster is not None:
            results.write_roster(saved, roster)
        elif saved.is_file():
            roster = results.read_roster(saved)
        everyone = results.load_results(out)
        results.write_csv(out / "grades.csv", everyone, roster)
        if roster is not None:
            results.write_lms(out / "lms.csv", everyone, roster)
            strays = sorted({g.submission for g in everyone} - {s.file for s in roster})
            if strays:
                _say(f"course-grade: warning: {len(strays)} submission(s) not in the roster, e.g. "
                     f"{results.shown(strays[0])}: no student_id in grades.csv, no row in lms.csv", sys.stderr)
    except Exception as exc:
        failures.append(f"cannot write grades.csv ({type(exc).__name__}: {results.shown(str(exc))})")


def grade(assignment: Assignment, files: list[Path], out: Path, jobs: int, timeout: float,
          pool: Pool | None = None, roster: list | None = None, feedback: str | None = None) -> int:
    """Grade `files` into `out`; returns 0 when every submission got its result file.

    `pool` (a `parent.Pool`) lets several calls share warm fork servers; by default a pool of
    `jobs` workers is started for this call and stopped at its end. grades.csv is rebuilt from every
    result in `out`, so a regrade of some students keeps the others' rows; `roster` (`results.Student`s,
    kept in `out` for later regrades) adds ids, `missing` rows and lms.csv; `feedback` (`md` or `html`)
    writes a feedback file next to each result.
    """
    from . import protocol, results
    from .notebook import UnreadableNotebook, read_notebook
    from .parent import Limits, Pool
    from .scoring import Plan

    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    _refuse_other_assignment(out, assignment)
    plan = Plan(assignment)
    child_spec = with_references(plan.child_spec(), assignment)
    expect = protocol.outcome_counts(child_spec)
    limits = Limits(timeout=timeout)
    names = _names(files)
    grades: list[results.Graded | None] = [None] * len(files)
    todo: queue.Queue = queue.Queue()
    item_points = [(item.name, float(item.points)) for item in assignment.items]
    for index, (name, path) in enumerate(zip(names, files, strict=True)):
        try:
            cells = read_notebook(path)
        except UnreadableNotebook as exc:
            grades[index] = results.unreadable(name, str(exc), item_points)
            continue
        except Exception as exc:  # the grader's fault, not the student's: said so in the status
            grades[index] = results.grader_error(name, exc, item_points)
            continue
        todo.put((index, cells))
    lock = threading.Lock()
    failures: list[str] = []

    def report(index: int, grade: results.Graded) -> None:
        """Write one result; any failure costs this submission only (a `grader error` result)."""
        path = out / f"{names[index]}.json"
        grade = results.for_assignment(grade, assignment.key)
        try:
            results.write_result(path, grade)
        except Exception as exc:
            grade = results.grader_error(names[index], exc, item_points)
            try:
                results.write_result(path, grade)
            except Exception as again:
                failures.append(f"{results.shown(str(files[index]))}: cannot write its result "
                                f"({type(again).__name__}: {results.shown(str(again))})")
                return
        if feedback is not None:
            _write_feedback(path.with_suffix(f".{feedback}"), grade, failures)
        with lock:
            grades[index] = grade
            _say(f"{results.shown(grade.submission)}: {results.number(grade.score)}/"
                 f"{results.number(grade.max_score)} {grade.status}")

    def grade_one(worker, spec: Path, index: int, cells) -> results.Graded:
        try:
            run = worker.run(cells.sources, limits, spec, expect)
            return results.graded(names[index], plan.score(run.items), run, timeout, cells)
        except Exception as exc:  # the grader itself failed: never disguised as a student's zero
            return results.grader_error(names[index], exc, item_points)

    def work(worker, spec: Path) -> None:  # one thread per worker slot
        try:
            while True:
                try:
                    index, cells = todo.get_nowait()
                except queue.Empty:
                    return
                report(index, grade_one(worker, spec, index, cells))
        except Exception as exc:
            failures.append(f"grading worker failed: {type(exc).__name__}: {results.shown(str(exc))}")

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
                spec = pool.spec(child_spec)
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
    _write_class(out, roster, failures)
    errors = [g for g in done if g.status.startswith(results.GRADER_ERROR)]
    if errors:
        failures.append(f"the grader failed on {len(errors)} submission(s), e.g. {results.shown(errors[0].submission)} "
                        f"({errors[0].status}); grade them again")
    for message in failures:
        _say(f"course-grade: {message}", sys.stderr)
    flagged = results.flag_summary(done)
    if flagged:
        _say(flagged, sys.stderr)
    if plan.public_only:
        _say("course-grade: this course tree has no instructor key: public cases only, answer items not graded",
             sys.stderr)
    missing = len(files) - len(done)
    _say(f"graded {len(done)} of {len(files)} submissions in {time.monotonic() - start:.1f} s; "
         f"results in {results.shown(str(out))}", sys.stderr)
    return EXIT_OK if missing == 0 and not failures else EXIT_INCOMPLETE
