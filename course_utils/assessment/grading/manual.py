"""Manually graded items: collect every answer (a text or a figure) per item, merge the instructor's scores back.

    course-grade collect-manual DIR
        DIR/manual/<item>.md and <item>.html per item (a figure answer's PNG in DIR/manual/<item>/,
        linked from the Markdown and embedded in the HTML) and DIR/manual/scores.csv to fill in
    course-grade merge-manual DIR SCORES.csv [--feedback md|html]
        each score into its results.json; grades.csv (and lms.csv), the feedback files already in DIR
        (or, with --feedback, one per result) and the class report (when DIR has one) rewritten

SCORES.csv has the columns `submission,item,score` and optionally `comment`; a row with an empty
score is skipped (not graded yet), and merging again replaces an earlier score. Collecting again
keeps the scores and comments already filled in.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..items import FIGURE, Assignment, ManualItem, read_png
from ..verdict import MANUAL_ANSWER
from . import feedback, report, results

SCORES_HEADER = ("submission", "item", "score", "comment")
GRADED_BY_HAND = "✍ graded by your instructor:"
NO_ANSWER = "(no answer recorded)"
USAGE = ("usage: course-grade collect-manual DIR | "
         "course-grade merge-manual DIR SCORES.csv [--feedback md|html]")
_STYLE = "body{font-family:sans-serif;max-width:60em;margin:2em auto}img{max-width:100%;border:1px solid #ccc}"


def manual_items(assignment: Assignment) -> list[ManualItem]:
    """The assignment's manually graded items, in notebook order."""
    return [item for item in assignment.items if isinstance(item, ManualItem)]


def answer_text(output: str) -> str | None:
    """The learner's text recorded in a manual item's feedback, or None when nothing was recorded."""
    head, mark, text = output.partition(f"\n{MANUAL_ANSWER}\n")
    return text if mark else None


@dataclass(frozen=True)
class Answer:
    """One submission's answer to one manual item: its text, its checked PNG, or why there is none."""

    submission: str
    text: str | None = None
    png: bytes | None = None
    missing: str = ""  # the item's feedback line when nothing was recorded


def answers(grades: list[results.Graded], item: ManualItem) -> list[Answer]:
    """Every submission's answer to `item`; a figure is checked again, as the results folder may have been edited."""
    out = []
    for g in grades:
        test = _test(g, item.name) or {}
        why = next((line for line in str(test.get("output", "")).split("\n") if not line.startswith(GRADED_BY_HAND)),
                   "")
        if item.answer == FIGURE:
            png = _checked_png(results.recorded_figure(g, item.name))
            out.append(Answer(g.submission, png=png, missing="" if png else why))
        else:
            text = answer_text(str(test.get("output", "")))
            out.append(Answer(g.submission, text=text, missing="" if text is not None else why))
    return out


def collect(folder: Path) -> list[Path]:
    """Write each manual item's answers (Markdown, HTML, a figure's PNGs) and `manual/scores.csv`; their paths."""
    grades, assignment = _graded(folder)
    out = folder / "manual"
    out.mkdir(exist_ok=True)
    scores = out / "scores.csv"
    kept = _kept_scores(scores)
    written, rows = [], [",".join(SCORES_HEADER)]
    for item in manual_items(assignment):
        given = answers(grades, item)
        if item.answer == FIGURE:
            written += _write_figures(out / item.name, given)
        for suffix, text in (("md", item_markdown(item, given)), ("html", item_page(item, given))):
            path = out / f"{item.name}.{suffix}"
            path.write_text(text, encoding="utf-8", errors="backslashreplace")
            written.append(path)
        rows += [_csv_line([a.submission, item.name, *kept.get((a.submission, item.name), ("", ""))])
                 for a in given]
    scores.write_text("\n".join(rows) + "\n", encoding="utf-8", errors="backslashreplace")
    return [*written, scores]


def item_markdown(item: ManualItem, given: list[Answer]) -> str:
    """One item's answers as Markdown: a text in a fence, a figure linked to its PNG in the folder `<item>/`."""
    parts = [f"# {item.name} ({results.number(item.points)} points)\n\n{item.prompt}\n"]
    for a in given:
        if a.png is not None:
            link = f"{quote(item.name)}/{quote(a.submission, errors='surrogateescape')}.png"
            body = f"![figure of {_md(a.submission)}]({link})\n"
        elif a.text is not None:
            body = feedback.fenced(a.text)
        else:
            body = f"{NO_ANSWER}\n\n{_md(a.missing)}\n" if a.missing else f"{NO_ANSWER}\n"
        parts.append(f"## {_md(a.submission)}\n\n{body}")
    return "\n".join(parts)


def item_page(item: ManualItem, given: list[Answer]) -> str:
    """One item's answers as one self-contained HTML page (figures embedded); every text in it is escaped."""
    title = html.escape(f"{item.name} ({results.number(item.points)} points)")
    body = [f"<h1>{title}</h1>", f"<p>{html.escape(item.prompt)}</p>"]
    for a in given:
        body.append(f"<h2>{html.escape(results.shown(a.submission))}</h2>")
        if a.png is not None:
            data = base64.b64encode(a.png).decode("ascii")
            body.append(f'<img alt="figure of {html.escape(results.shown(a.submission))}" '
                        f'src="data:image/png;base64,{data}">')
        elif a.text is not None:
            body.append(f"<pre>{html.escape(a.text)}</pre>")
        else:
            body.append(f"<p>{NO_ANSWER}</p>" + (f"\n<p>{html.escape(a.missing)}</p>" if a.missing else ""))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


@dataclass(frozen=True)
class Merged:
    """What a merge changed: results updated, feedback files rewritten, and whether the class report was."""

    results: int
    feedback: int
    report: bool


def merge(folder: Path, scores_csv: Path, feedback_format: str | None = None) -> Merged:
    """Merge the instructor's scores into the results in `folder`, then rewrite everything made from them.

    Every row is checked before anything is written: an unknown submission or item, a score that is
    not a number or is outside 0 … the item's points, or an item scored twice is a ValueError.
    """
    if feedback_format is not None and feedback_format not in feedback.FORMATS:
        raise ValueError(f"--feedback is md or html, got {feedback_format!r}")
    grades, assignment = _graded(folder)
    merged = scored(grades, assignment, scores_csv)
    for name, grade in merged.items():
        results.write_result(folder / f"{name}.json", grade)
    try:
        return Merged(len(merged), *_refresh(folder, feedback_format))
    except (OSError, ValueError) as exc:
        raise ValueError(f"the scores are merged into {len(merged)} result(s), but what is made from them could not "
                         f"all be rewritten ({exc}); run merge-manual again once that is fixed") from None


def scored(grades: list[results.Graded], assignment: Assignment, scores_csv: Path) -> dict[str, results.Graded]:
    """Each submission the scores change, with its new grade; ValueError naming the line of a bad row."""
    by_name = {g.submission: g for g in grades}
    points = {item.name: float(item.points) for item in manual_items(assignment)}
    merged: dict[str, results.Graded] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in _score_rows(scores_csv):
        if not (row.get("score") or "").strip():
            continue
        name, item = (row.get("submission") or "").strip(), (row.get("item") or "").strip()
        where = f"{scores_csv}, line {line}"
        if name not in by_name:
            raise ValueError(f"{where}: no result for the submission {results.shown(name)!r}")
        if item not in points:
            raise ValueError(f"{where}: {results.shown(item)!r} is not a manually graded item "
                             f"of {assignment.key} ({', '.join(points) or 'it has none'})")
        if (name, item) in seen:
            raise ValueError(f"{where}: {results.shown(name)} is scored on {item} again (first on line "
                             f"{seen[name, item]})")
        seen[name, item] = line
        if _test(by_name[name], item) is None:
            raise ValueError(f"{where}: the result of {results.shown(name)} has no item {item}; grade it again first")
        score = _score(row["score"], points[item], where)
        grade = merged.get(name, by_name[name])
        comment = " ".join((row.get("comment") or "").split())
        merged[name] = _with_score(grade, item, score, points[item], comment)
    return merged


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


def _refresh(folder: Path, feedback_format: str | None) -> tuple[int, bool]:
    """grades.csv and lms.csv, the feedback files and the class report, rebuilt from every result in `folder`.

    A feedback file is rewritten where one is already there (and, with `feedback_format`, written for every
    result); report.md is rewritten when the folder has one. Returns how many feedback files were written
    and whether the report was.
    """
    everyone = results.load_results(folder)
    saved = folder / results.ROSTER_FILE
    roster = results.read_roster(saved) if saved.is_file() else None
    results.write_csv(folder / "grades.csv", everyone, roster)
    if roster is not None:
        results.write_lms(folder / "lms.csv", everyone, roster)
    written = 0
    for grade in everyone:
        for kind in feedback.FORMATS:
            path = folder / f"{grade.submission}.{kind}"
            if kind == feedback_format or feedback.is_feedback(path):
                feedback.write_feedback(path, grade.results)
                written += 1
    rewrite = report.is_report(folder / report.REPORT_MD)
    if rewrite:
        report.write_report(folder)
    return written, rewrite


def _graded(folder: Path) -> tuple[list[results.Graded], Assignment]:
    """The results in `folder` and their assignment; ValueError when there are none or they name none."""
    from .. import assignments

    if not folder.is_dir():
        raise ValueError(f"no such directory: {folder}")
    grades = results.load_results(folder)
    keys = {results.assignment_of(g) for g in grades} - {None}
    if not grades or len(keys) != 1:
        raise ValueError(f"{folder} holds no results of one assignment (found {len(grades)} results, "
                         f"assignments: {', '.join(sorted(map(str, keys))) or 'none named'})")
    return grades, assignments.load(str(keys.pop()))


def _write_figures(folder: Path, given: list[Answer]) -> list[Path]:
    """Each recorded figure as `folder/<submission>.png`; the PNGs of an earlier collect there are removed first."""
    if folder.is_symlink() or folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is in the way of the figures' folder: move it away")
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        if old.is_file() or old.is_symlink():
            old.unlink()
    written = []
    for a in given:
        if a.png is not None:
            path = folder / f"{a.submission}.png"
            path.write_bytes(a.png)
            written.append(path)
    return written


def _checked_png(data: bytes | None) -> bytes | None:
    """The PNG rewritten by `read_png` (only the chunks that draw it), or None when there is none or it is not one."""
    try:
        return read_png(data).data if data is not None else None
    except ValueError:
        return None


def _kept_scores(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """The scores and comments already filled in an earlier scores.csv, so collecting again loses none."""
    if not path.exists():
        return {}
    try:
        rows = _score_rows(path)
    except ValueError as exc:
        raise ValueError(f"{exc}; it was not replaced (move it away to start a new one)") from None
    return {((r.get("submission") or "").strip(), (r.get("item") or "").strip()):
            ((r.get("score") or "").strip(), (r.get("comment") or "").strip())
            for _, r in rows if (r.get("score") or "").strip() or (r.get("comment") or "").strip()}


def _test(grade: results.Graded, name: str) -> dict | None:
    return next((t for t in grade.results.get("tests", []) if type(t) is dict and t.get("name") == name), None)


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


def _score(text: str, points: float, where: str) -> float:
    try:
        score = float(text)
    except ValueError:
        raise ValueError(f"{where}: the score {text.strip()!r} is not a number") from None
    if not math.isfinite(score):
        raise ValueError(f"{where}: the score {text.strip()!r} is not a number")
    if not 0 <= score <= points:
        raise ValueError(f"{where}: the score {score:g} is outside 0 … {points:g}")
    return score


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _md(text: str) -> str:
    """A name or a line for Markdown: one line, escaped, no raw HTML, no link or image syntax."""
    return html.escape(" ".join(results.shown(text).split()), quote=False).replace("[", "&#91;").replace("]", "&#93;")


COMMANDS = ("collect-manual", "merge-manual")


def main(argv: list[str]) -> int:
    """`course-grade collect-manual DIR` and `course-grade merge-manual DIR SCORES.csv [--feedback md|html]`."""
    command, args = argv[0], argv[1:]
    try:
        if command == "collect-manual" and len(args) == 1:
            for path in collect(Path(args[0])):
                print(f"wrote {results.shown(str(path))}")
            return 0
        if command == "merge-manual" and len(args) in (2, 4) and (len(args) == 2 or args[2] == "--feedback"):
            done = merge(Path(args[0]), Path(args[1]), args[3] if len(args) == 4 else None)
            print(f"merged manual scores into {done.results} result(s); rewrote grades.csv, "
                  f"{done.feedback} feedback file(s)" + (" and the class report" if done.report else ""))
            return 0
        raise ValueError(USAGE)
    except (ValueError, OSError) as exc:
        print(f"course-grade: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
