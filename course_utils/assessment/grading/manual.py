"""Manually graded items: collect every answer into one Markdown file per item, merge the instructor's scores back.

    course-grade collect-manual DIR            DIR/manual/<item>.md per item and DIR/manual/scores.csv to fill in
    course-grade merge-manual DIR SCORES.csv   each score into its results.json, then grades.csv rebuilt

SCORES.csv has the columns `submission,item,score` and optionally `comment`; a row with an empty
score is skipped (not graded yet), and merging again replaces an earlier score.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

from ..items import Assignment, ManualItem
from ..verdict import MANUAL_ANSWER
from . import results

SCORES_HEADER = ("submission", "item", "score", "comment")
GRADED_BY_HAND = "✍ graded by your instructor:"


def manual_items(assignment: Assignment) -> list[ManualItem]:
    """The assignment's manually graded items, in notebook order."""
    return [item for item in assignment.items if isinstance(item, ManualItem)]


def answer_text(output: str) -> str | None:
    """The learner's text recorded in a manual item's feedback, or None when nothing was recorded."""
    head, mark, text = output.partition(f"\n{MANUAL_ANSWER}\n")
    return text if mark else None


def collect(folder: Path) -> list[Path]:
    """Write `folder/manual/<item>.md` (every submission's answer) and `folder/manual/scores.csv`; their paths."""
    grades, assignment = _graded(folder)
    out = folder / "manual"
    out.mkdir(exist_ok=True)
    written, rows = [], [",".join(SCORES_HEADER)]
    for item in manual_items(assignment):
        parts = [f"# {item.name} ({results.number(item.points)} points)\n\n{item.prompt}\n"]
        for g in grades:
            test = _test(g, item.name)
            text = answer_text(str(test.get("output", ""))) if test else None
            parts.append(f"## {results.shown(g.submission)}\n\n" + (_fenced(text) if text is not None else
                                                                    "(no answer recorded)\n"))
            rows.append(_csv_line([g.submission, item.name, "", ""]))
        path = out / f"{item.name}.md"
        path.write_text("\n".join(parts), encoding="utf-8")
        written.append(path)
    scores = out / "scores.csv"
    scores.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [*written, scores]


def merge(folder: Path, scores_csv: Path) -> int:
    """Merge the instructor's scores into the results in `folder` and rebuild grades.csv; the number merged."""
    grades, assignment = _graded(folder)
    by_name = {g.submission: g for g in grades}
    points = {item.name: float(item.points) for item in manual_items(assignment)}
    merged: dict[str, results.Graded] = {}
    for line, row in _score_rows(scores_csv):
        if not (row.get("score") or "").strip():
            continue
        name, item = (row.get("submission") or "").strip(), (row.get("item") or "").strip()
        if name not in by_name:
            raise ValueError(f"{scores_csv}, line {line}: no result for the submission {results.shown(name)!r}")
        if item not in points:
            raise ValueError(f"{scores_csv}, line {line}: {results.shown(item)!r} is not a manually graded item "
                             f"of {assignment.key} ({', '.join(points) or 'it has none'})")
        score = _score(row["score"], points[item], scores_csv, line)
        grade = merged.get(name, by_name[name])
        merged[name] = _with_score(grade, item, score, points[item], (row.get("comment") or "").strip())
    for name, grade in merged.items():
        results.write_result(folder / f"{name}.json", grade)
    _rebuild_class(folder)
    return len(merged)


def _with_score(grade: results.Graded, item: str, score: float, points: float, comment: str) -> results.Graded:
    """The grade with one manual item's score set, and its total and first feedback line recomputed."""
    tests = []
    for test in grade.results.get("tests", []):
        if test.get("name") == item:
            original = str(test.get("output", ""))
            if original.startswith(GRADED_BY_HAND):
                original = original.partition("\n")[2]
            line = f"{GRADED_BY_HAND} {results.number(score)} / {results.number(points)}." + (f" {comment}" if comment
                                                                                             else "")
            test = {**test, "score": results.number(score), "status": "passed" if score == points else "failed",
                    "output": f"{line}\n{original}"}
        tests.append(test)
    total = sum(float(t.get("score", 0)) for t in tests)
    data = {**grade.results, "tests": tests, "score": results.number(total)}
    output = str(data.get("output", ""))
    if output.startswith("Score:"):
        first, _, rest = output.partition("\n")
        data["output"] = f"Score: {results.number(total)} / {data.get('max_score')}." + (f"\n{rest}" if rest else "")
    return results.Graded(grade.submission, total, grade.max_score, grade.status, data, grade.flags)


def _rebuild_class(folder: Path) -> None:
    """grades.csv (and lms.csv with a kept roster) from every result in the folder."""
    saved = folder / results.ROSTER_FILE
    roster = results.read_roster(saved) if saved.is_file() else None
    everyone = results.load_results(folder)
    results.write_csv(folder / "grades.csv", everyone, roster)
    if roster is not None:
        results.write_lms(folder / "lms.csv", everyone, roster)


def _graded(folder: Path) -> tuple[list[results.Graded], Assignment]:
    """The results in `folder` and their assignment; ValueError when there are none or they name none."""
    from .. import assignments

    grades = results.load_results(folder)
    keys = {results.assignment_of(g) for g in grades} - {None}
    if not grades or len(keys) != 1:
        raise ValueError(f"{folder} holds no results of one assignment (found {len(grades)} results, "
                         f"assignments: {', '.join(sorted(keys)) or 'none named'})")
    return grades, assignments.load(keys.pop())


def _test(grade: results.Graded, name: str) -> dict | None:
    return next((t for t in grade.results.get("tests", []) if t.get("name") == name), None)


def _score_rows(path: Path) -> list[tuple[int, dict]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(enumerate(reader, start=2))
            columns = set(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the scores {path}: {exc}") from None
    if not {"submission", "item", "score"} <= columns:
        raise ValueError(f"the scores {path} need the columns submission, item and score (and optionally comment)")
    return rows


def _score(text: str, points: float, path: Path, line: int) -> float:
    try:
        score = float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: the score {text.strip()!r} is not a number") from None
    if not 0 <= score <= points:
        raise ValueError(f"{path}, line {line}: the score {score:g} is outside 0 … {points:g}")
    return score


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _fenced(text: str) -> str:
    """The text in a code fence longer than any run of backticks in it, so it shows exactly as written."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}\n"


COMMANDS = ("collect-manual", "merge-manual")


def main(argv: list[str]) -> int:
    """`course-grade collect-manual DIR` and `course-grade merge-manual DIR SCORES.csv`."""
    command, args = argv[0], argv[1:]
    try:
        if command == "collect-manual" and len(args) == 1:
            for path in collect(Path(args[0])):
                print(f"wrote {path}")
            return 0
        if command == "merge-manual" and len(args) == 2:
            count = merge(Path(args[0]), Path(args[1]))
            print(f"merged manual scores into {count} result(s); grades.csv rebuilt")
            return 0
        raise ValueError("usage: course-grade collect-manual DIR | course-grade merge-manual DIR SCORES.csv")
    except (ValueError, OSError) as exc:
        print(f"course-grade: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
