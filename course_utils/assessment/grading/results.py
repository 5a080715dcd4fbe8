"""Grading results: one Gradescope-style results.json per submission; grades.csv and lms.csv for the class."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import os
import re
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .notebook import CodeCells
from .parent import MAX_RESULT_BYTES, RunResult
from .protocol import NOTEBOOK, encodable
from .scoring import ItemResult

CSV_HEADER = ("submission", "score", "max_score", "status", "flags")
ROSTER_HEADER = ("student_id", "email")
LMS_HEADER = ("student_id", "email", "score", "max_score", "status")
ROSTER_FILE = "roster.csv"
MISSING = "missing"
RESULT_LIMIT = "result limit"
MEMORY_LIMIT = "memory limit"
GRADER_ERROR = "grader error"
_MAX_CELL_ERRORS_SHOWN = 10
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CELL_NAME = re.compile(r"<cell (\d+)>")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SUMMARY_NAMES = 10
FIGURES = "figures"  # extra_data: each recorded figure answer's PNG, in base64, by item


@dataclass(frozen=True)
class Graded:
    """One submission's grade: a row of grades.csv and the content of its results.json."""

    submission: str
    score: float
    max_score: float
    status: str
    results: dict
    flags: dict[str, str] = field(default_factory=dict)  # item (or "notebook") → why it was flagged


def status_of(run: RunResult) -> str:
    """`ok`, or a short reason: timeout, crashed (SIGSEGV), exited early (code 3), result limit, …"""
    if run.overflow:
        return RESULT_LIMIT
    exit_ = run.exit
    if exit_ is not None and exit_.timed_out:
        return "timeout"
    if exit_ is None or exit_.worker_died:
        return "grader worker died"
    if exit_.memory_exceeded:
        return MEMORY_LIMIT
    sig = exit_.signal
    if type(sig) is int:
        if sig == signal.SIGXCPU:
            return "cpu time limit"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"crashed ({name})"
    if not run.done:
        return f"exited early (code {exit_.exit_code})"
    return "ok"


def graded(submission: str, items: list[ItemResult], run: RunResult, timeout: float,
           cells: CodeCells | None = None) -> Graded:
    """Combine the item scores and the run's status into results.json content.

    `cells` names each cell as the learner sees it: the child counts code cells only, the
    notebook counts every cell (markdown too).
    """
    status = status_of(run)
    flags = flag_reasons(run)
    items = apply_flags(items, flags)
    score = sum(i.score for i in items)
    max_score = sum(i.max_score for i in items)
    lines = [f"Score: {number(score)} / {number(max_score)}."]
    if flags:
        lines.append("Flagged for the instructor's review (a flagged item scores 0): " + flag_text(flags) + ".")
    if status != "ok":
        lines.append(_explain(status, timeout))
    cell_errors = _as_notebook_cells(run.cell_errors, cells)
    if cell_errors:
        lines.append("Cells that raised an error (each costs only the items that depend on it):")
        lines += [f"  cell {n}: {err}" for n, err in cell_errors[:_MAX_CELL_ERRORS_SHOWN]]
        if len(cell_errors) > _MAX_CELL_ERRORS_SHOWN:
            lines.append(f"  … and {len(cell_errors) - _MAX_CELL_ERRORS_SHOWN} more")
    if run.output_bytes > 0 and status != "ok":
        lines.append("The last output your notebook printed (from your code, not from the grader):")
        lines.append(run.output_text()[-1500:])
    results = {
        "score": number(score),
        "max_score": number(max_score),
        "execution_time": round(run.elapsed, 3),
        "output": "\n".join(lines),
        "tests": [{"name": i.name, "score": number(i.score), "max_score": number(i.max_score),
                   "status": "passed" if i.score == i.max_score else "failed",
                   "output": i.output, "visibility": "visible"} for i in items],
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"status": status, "submission": shown(submission),
                       "grader_cpu_s": round(run.grader_cpu_s, 3),
                       "network_isolated": run.exit is not None and run.exit.network_isolated,
                       "flags": flags,
                       "cell_errors": [[n, err] for n, err in cell_errors[:_MAX_CELL_ERRORS_SHOWN]]},
    }
    figures = {i.name: base64.b64encode(i.figure).decode("ascii") for i in items if i.figure is not None}
    if figures:
        results["extra_data"][FIGURES] = figures
    return Graded(submission, score, max_score, status, results, flags)


def recorded_figure(grade: Graded, item: str) -> bytes | None:
    """The PNG a figure answer recorded in `extra_data` (still to be checked with `items.read_png`), or None."""
    figures = grade.results.get("extra_data", {}).get(FIGURES)
    text = figures.get(item) if type(figures) is dict else None
    if type(text) is not str:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def flag_reasons(run: RunResult) -> dict[str, str]:
    """Each item the child flagged (or `notebook`) with its reasons in one line."""
    return {item: "; ".join(reasons) for item, reasons in run.flags.items() if reasons}


def apply_flags(items: list[ItemResult], flags: dict[str, str]) -> list[ItemResult]:
    """Flagged items score 0, with the reason; a flag on the notebook (raised while cells ran) flags every item."""
    whole = flags.get(NOTEBOOK)
    out = []
    for item in items:
        reasons = [r for r in (flags.get(item.name), whole and f"while the cells ran: {whole}") if r]
        if not reasons:
            out.append(item)
            continue
        output = (f"⚑ flagged for the instructor's review: {'; '.join(reasons)}. The item scores 0 until "
                  f"your instructor has read the code. The result itself: {item.output}")
        out.append(replace(item, score=0.0, output=output))
    return out


def flag_text(flags: dict[str, str]) -> str:
    """The flags of one submission as one line: `item: reason; item: reason`."""
    return "; ".join(f"{item}: {reason}" for item, reason in flags.items())


def flag_summary(grades: list[Graded]) -> str | None:
    """The batch summary's line naming the flagged submissions (first flag of each), or None when none is."""
    flagged = [g for g in grades if g.flags]
    if not flagged:
        return None
    parts = []
    for g in flagged[:_SUMMARY_NAMES]:
        (item, reason), more = next(iter(g.flags.items())), len(g.flags) - 1
        parts.append(f"{shown(g.submission)} ({shown(f'{item}: {reason}')}{f'; +{more} more' if more else ''})")
    rest = f", and {len(flagged) - _SUMMARY_NAMES} more (see grades.csv)" if len(flagged) > _SUMMARY_NAMES else ""
    noun = "submission" if len(flagged) == 1 else "submissions"
    return f"{len(flagged)} {noun} flagged: {', '.join(parts)}{rest}"


def unreadable(submission: str, reason: str, items: list[tuple[str, float]]) -> Graded:
    """The grade of a file that is not a readable notebook: zero, with the reason."""
    return _zero(submission, "unreadable notebook", items,
                 f"The submission could not be read as a notebook: {reason}.", "❌ the notebook could not be read.")


def grader_error(submission: str, error: BaseException, items: list[tuple[str, float]]) -> Graded:
    """The grade of a submission the grader itself failed on: zero, marked as the grader's fault."""
    what = shown(" ".join(f"{type(error).__name__}: {error}".split()))[:200]
    return _zero(submission, f"{GRADER_ERROR}: {what}", items,
                 "The grader failed on this submission (not the notebook's fault); ask for it to be graded again.",
                 "❌ not graded: the grader failed.")


def _zero(submission: str, status: str, items: list[tuple[str, float]], why: str, item_output: str) -> Graded:
    max_score = sum(p for _, p in items)
    results = {
        "score": 0,
        "max_score": number(max_score),
        "execution_time": 0.0,
        "output": f"Score: 0 / {number(max_score)}. {why}",
        "tests": [{"name": name, "score": 0, "max_score": number(p), "status": "failed",
                   "output": item_output, "visibility": "visible"} for name, p in items],
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"status": status, "submission": shown(submission), "flags": {}},
    }
    return Graded(submission, 0.0, max_score, status, results)


def written_here(path: Path, first_line: str) -> bool:
    """Whether `path` is a plain file (not a link) that starts with `first_line`, as each file the grader writes
    and may rewrite does: a file of anyone else's, under the same name, is left alone."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(first_line.encode())) == first_line.encode()
    except OSError:
        return False


def shown(name: str) -> str:
    """A name as one printable line: control characters, line breaks, backslashes and bytes that
    are not UTF-8 (a file name's) become visible escapes, so a name can never pass for another line."""
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in name)


def _escape(c: str) -> str:
    code = ord(c)
    if c in _ESCAPES:
        return _ESCAPES[c]
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def write_result(path: Path, grade: Graded) -> None:
    """Write results.json atomically (a reader never sees half a file); every text in it encodes."""
    _atomic_write(path, json.dumps(_encodable_all(grade.results), indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, grades: list[Graded], roster: list[Student] | None = None) -> None:
    """grades.csv: one row per submission, in the order given, then one per roster student without one.

    After `submission,score,max_score,status,flags` come the items' scores (one column per item, in
    the order the results list them) and, with a roster, `student_id,email`. Every field is quoted,
    names and flags are shown escaped and no field can start a spreadsheet formula. `flags` is empty,
    or `item: reason` for each flagged item (`notebook` when it happened while cells ran), joined by "; ".
    """
    items = item_names(grades)
    students = {s.file: s for s in roster or []}
    header = [*CSV_HEADER, *items, *(ROSTER_HEADER if roster is not None else ())]
    rows = [_csv_row(header, quoting=csv.QUOTE_MINIMAL)]
    for g in [*grades, *missing(grades, roster or [], items)]:
        scores = item_scores(g)
        student = [students[g.submission].student_id, students[g.submission].email] \
            if g.submission in students else ["", ""]
        rows.append(_csv_row([shown(g.submission), number(g.score), number(g.max_score), g.status,
                              shown(flag_text(g.flags)), *(scores.get(i, "") for i in items),
                              *(student if roster is not None else ())]))
    _atomic_write(path, "\n".join(rows) + "\n")


def write_lms(path: Path, grades: list[Graded], roster: list[Student]) -> None:
    """lms.csv: `student_id,email,score,max_score,status` per roster student, in the roster's order
    (a student without a submission scores 0 with status `missing`), ready for a gradebook import."""
    by_name = {g.submission: g for g in grades}
    items = item_names(grades)
    absent = {g.submission: g for g in missing(grades, roster, items)}
    rows = [",".join(LMS_HEADER)]
    for s in roster:
        g = by_name.get(s.file) or absent[s.file]
        rows.append(_csv_row([s.student_id, s.email, number(g.score), number(g.max_score), g.status]))
    _atomic_write(path, "\n".join(rows) + "\n")


def item_names(grades: list[Graded]) -> list[str]:
    """Every item named in the results, in the order they first list them."""
    names: dict[str, None] = {}
    for g in grades:
        names.update((t["name"], None) for t in g.results.get("tests", []))
    return list(names)


def item_scores(grade: Graded) -> dict[str, float | int]:
    """Each item's score in one result."""
    return {t["name"]: number(t["score"]) for t in grade.results.get("tests", [])}


def missing(grades: list[Graded], roster: list[Student], items: list[str]) -> list[Graded]:
    """A zero with status `missing` for each roster student whose file has no result."""
    have = {g.submission for g in grades}
    full = {t["name"]: float(t["max_score"]) for g in grades for t in g.results.get("tests", [])}
    points = [(name, full.get(name, 0.0)) for name in items]
    return [_zero(s.file, MISSING, points, "No submission was received.", "❌ no submission.")
            for s in roster if s.file not in have]


@dataclass(frozen=True)
class Student:
    """One roster line: the submission's file name (without .ipynb), the student's id and e-mail."""

    file: str
    student_id: str
    email: str


def read_roster(path: Path) -> list[Student]:
    """A roster CSV with columns `file` and `student_id` (and optionally `email`); ValueError if it is not one."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            columns = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the roster {path}: {exc}") from None
    if not {"file", "student_id"} <= columns:
        raise ValueError(f"the roster {path} needs the columns file and student_id (and optionally email), "
                         f"found: {', '.join(sorted(c for c in columns if c)) or 'no rows'}")
    students, seen = [], set()
    for line, row in enumerate(rows, start=2):
        name = Path((row["file"] or "").strip()).name.removesuffix(".ipynb")
        student_id = (row["student_id"] or "").strip()
        if not name or not student_id:
            raise ValueError(f"the roster {path}, line {line}: file and student_id must not be empty")
        if name in seen:
            raise ValueError(f"the roster {path}, line {line}: the file {shown(name)} is listed twice")
        seen.add(name)
        students.append(Student(name, student_id, (row.get("email") or "").strip()))
    return students


def write_roster(path: Path, roster: list[Student]) -> None:
    """Keep the roster in the results folder, so that a later regrade there uses it too."""
    rows = [",".join(("file", *ROSTER_HEADER))]
    rows += [_csv_row([s.file, s.student_id, s.email], quoting=csv.QUOTE_MINIMAL) for s in roster]
    _atomic_write(path, "\n".join(rows) + "\n")


def load_results(folder: Path) -> list[Graded]:
    """Every result in `folder` (a `<submission>.json` with `tests` and `extra_data`), sorted by name."""
    grades = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not _is_result(data):
            continue
        extra = data["extra_data"]
        grades.append(Graded(path.stem, float(data.get("score", 0)), float(data.get("max_score", 0)),
                             str(extra.get("status", "")), data, dict(extra.get("flags") or {})))
    return grades


def _is_result(data: Any) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("tests"), list)
            and isinstance(data.get("extra_data"), dict))


def assignment_of(grade: Graded) -> str | None:
    """The assignment a result was graded for (None for a result that does not say)."""
    return grade.results.get("extra_data", {}).get("assignment")


def for_assignment(grade: Graded, key: str) -> Graded:
    """`grade` with its assignment recorded in `extra_data`, so a folder never mixes two assignments."""
    results = {**grade.results, "extra_data": {**grade.results.get("extra_data", {}), "assignment": key}}
    return replace(grade, results=results)


def _csv_row(values: list, quoting: int = csv.QUOTE_ALL) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="", quoting=quoting).writerow([_not_a_formula(v) for v in values])
    return buf.getvalue()


def _not_a_formula(value: Any) -> Any:
    """A text a spreadsheet would read as a formula gets a leading apostrophe; numbers stay numbers."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value


def _encodable_all(value: Any) -> Any:
    """`value` with every text in it (keys too) made encodable, however it is nested."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {_encodable_all(k): _encodable_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable_all(v) for v in value]
    return value


def _as_notebook_cells(errors: list[tuple[int, str]], cells: CodeCells | None) -> list[tuple[int, str]]:
    """Cell errors numbered as the notebook shows its cells; a number that names no code cell is dropped."""
    if cells is None:
        return list(errors)
    out = []
    for n, error in errors:
        at = cells.number(n)
        if at is not None:
            out.append((at, _CELL_NAME.sub(lambda m: f"<cell {cells.number(int(m.group(1))) or '?'}>", error)))
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _explain(status: str, timeout: float) -> str:
    if status == "timeout":
        return (f"The notebook did not finish within {timeout:g} s and was stopped; "
                "items evaluated before that keep their scores.")
    if status == "cpu time limit":
        return "The notebook used more CPU time than allowed and was stopped."
    if status == MEMORY_LIMIT:
        return ("The notebook used more memory than allowed and was stopped; "
                "items evaluated before that keep their scores.")
    if status.startswith("crashed"):
        return f"The notebook's process {status}; items evaluated before that keep their scores."
    if status == RESULT_LIMIT:
        return (f"The notebook sent the grader more than {MAX_RESULT_BYTES // 2**20} MB of results, or more than "
                "it could check in its time, and was stopped; items evaluated before that keep their scores.")
    if status.startswith("exited early"):
        return ("The notebook ended its own process (os._exit or similar) before all cells ran; "
                "items evaluated before that keep their scores.")
    return f"Grading did not complete normally: {status}."


def number(x: float) -> float | int:
    x = float(x)
    return int(x) if x.is_integer() else round(x, 6)
