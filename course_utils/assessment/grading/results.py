"""Grading results: one Gradescope-style results.json per submission, and grades.csv for a batch."""

from __future__ import annotations

import csv
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from .parent import RunResult
from .scoring import ItemResult

CSV_HEADER = ("submission", "score", "max_score", "status")
_MAX_CELL_ERRORS_SHOWN = 10


@dataclass(frozen=True)
class Graded:
    """One submission's grade: a row of grades.csv and the content of its results.json."""

    submission: str
    score: float
    max_score: float
    status: str
    results: dict


def status_of(run: RunResult) -> str:
    """`ok`, or a short reason: timeout, crashed (SIGSEGV), exited early (code 3), …"""
    exit_ = run.exit
    if exit_ is not None and exit_.timed_out:
        return "timeout"
    if exit_ is None or exit_.worker_died:
        return "grader worker died"
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


def graded(submission: str, items: list[ItemResult], run: RunResult, timeout: float) -> Graded:
    """Combine the item scores and the run's status into results.json content."""
    status = status_of(run)
    score = sum(i.score for i in items)
    max_score = sum(i.max_score for i in items)
    lines = [f"Score: {number(score)} / {number(max_score)}."]
    if status != "ok":
        lines.append(_explain(status, timeout))
    if run.cell_errors:
        lines.append("Cells that raised an error (each costs only the items that depend on it):")
        lines += [f"  cell {n}: {err}" for n, err in run.cell_errors[:_MAX_CELL_ERRORS_SHOWN]]
        if len(run.cell_errors) > _MAX_CELL_ERRORS_SHOWN:
            lines.append(f"  … and {len(run.cell_errors) - _MAX_CELL_ERRORS_SHOWN} more")
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
        "extra_data": {"status": status, "submission": submission},
    }
    return Graded(submission, score, max_score, status, results)


def unreadable(submission: str, reason: str, items: list[tuple[str, float]]) -> Graded:
    """The grade of a file that is not a readable notebook: zero, with the reason."""
    status = "unreadable notebook"
    max_score = sum(p for _, p in items)
    results = {
        "score": 0,
        "max_score": number(max_score),
        "execution_time": 0.0,
        "output": f"Score: 0 / {number(max_score)}. The submission could not be read as a notebook: {reason}.",
        "tests": [{"name": name, "score": 0, "max_score": number(p), "status": "failed",
                   "output": "❌ the notebook could not be read.", "visibility": "visible"} for name, p in items],
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"status": status, "submission": submission},
    }
    return Graded(submission, 0.0, max_score, status, results)


def write_result(path: Path, grade: Graded) -> None:
    """Write results.json atomically (a reader never sees half a file)."""
    _atomic_write(path, json.dumps(grade.results, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, grades: list[Graded]) -> None:
    """grades.csv: one row per submission, in the order they were given."""
    rows = [",".join(CSV_HEADER)]
    for g in grades:
        rows.append(_csv_row([g.submission, number(g.score), number(g.max_score), g.status]))
    _atomic_write(path, "\n".join(rows) + "\n")


def _csv_row(values: list) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _explain(status: str, timeout: float) -> str:
    if status == "timeout":
        return (f"The notebook did not finish within {timeout:g} s and was stopped; "
                "items evaluated before that keep their scores.")
    if status == "cpu time limit":
        return "The notebook used more CPU time than allowed and was stopped."
    if status.startswith("crashed"):
        return f"The notebook's process {status}; items evaluated before that keep their scores."
    if status.startswith("exited early"):
        return ("The notebook ended its own process (os._exit or similar) before all cells ran; "
                "items evaluated before that keep their scores.")
    return f"Grading did not complete normally: {status}."


def number(x: float) -> float | int:
    x = float(x)
    return int(x) if x.is_integer() else round(x, 6)
