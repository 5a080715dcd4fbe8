"""The instructor's round trip through the real command line: class CSVs, regrades, rosters, feedback, report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the grader refuses an environment its sandbox user cannot read: see tests/conftest.py
pytestmark = pytest.mark.usefixtures("readable_environment")

ROOT = Path(__file__).resolve().parent.parent
FIRST = ["submission", "score", "max_score", "status", "flags"]
INJECTED = "<img src=x onerror=alert(1)>"
EVIL = "x<b>y"  # a file name with markup in it


def course_grade(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "course_utils.assessment.grading", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


def with_cell(notebook: dict, source: str) -> dict:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    return {**notebook, "cells": [*notebook["cells"], cell]}


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Three submissions graded with a roster and HTML feedback; two of them regraded; the class report."""
    tmp = tmp_path_factory.mktemp("workflow")
    batch = tmp / "batch"
    batch.mkdir()
    solution = json.loads((ROOT / "solutions" / "01_mle_coin_flips.ipynb").read_text(encoding="utf-8"))
    (batch / "alice.ipynb").write_text(json.dumps(solution))
    (batch / "bob.ipynb").write_bytes((ROOT / "exercises" / "01_mle_coin_flips.ipynb").read_bytes())
    evil = with_cell(solution, f"def bernoulli_mle(flips):\n    raise ValueError({INJECTED!r})\nbernoulli_mle(1)")
    (batch / f"{EVIL}.ipynb").write_text(json.dumps(evil))
    for p in batch.iterdir():
        p.chmod(0o600)
    roster = tmp / "roster.csv"
    roster.write_text(f"file,student_id,email\nalice.ipynb,s1,alice@example.org\nbob,s2,bob@example.org\n"
                      f"carol.ipynb,s3,carol@example.org\n{EVIL}.ipynb,s4,=cmd@example.org\n")
    out = tmp / "out"
    first = course_grade("01", batch, "--out", out, "--roster", roster, "--feedback", "html", "--jobs", "2")
    before = {r["submission"]: r for r in rows(out / "grades.csv")}
    results_before = {p.stem: p.read_bytes() for p in out.glob("*.json")}
    regrade = course_grade("01", batch / "bob.ipynb", batch / f"{EVIL}.ipynb", "--out", out, "--feedback", "md")
    report = course_grade("report", out)
    return {"tmp": tmp, "out": out, "first": first, "before": before, "results_before": results_before,
            "regrade": regrade, "report": report, "solution": solution}


def test_grades_csv_has_item_columns_and_student_ids(graded):
    assert graded["first"].returncode == 0, graded["first"].stderr
    out = graded["out"]
    alice = json.loads((out / "alice.json").read_text(encoding="utf-8"))
    items = [t["name"] for t in alice["tests"]]
    header = (out / "grades.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == FIRST + items + ["student_id", "email"]
    by_name = graded["before"]
    assert sorted(by_name) == sorted(["alice", "bob", "carol", EVIL])
    for name in ("alice", "bob", EVIL):
        result = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert result["extra_data"]["assignment"] == "01_mle_coin_flips"
        assert {i: float(by_name[name][i]) for i in items} == {t["name"]: t["score"] for t in result["tests"]}
        assert float(by_name[name]["score"]) == result["score"] == sum(float(by_name[name][i]) for i in items)
    assert float(by_name["alice"]["score"]) == float(by_name["alice"]["max_score"]) == 13
    assert float(by_name["bob"]["score"]) == 0
    assert float(by_name[EVIL]["bernoulli_mle"]) == 0 and float(by_name[EVIL]["score"]) == 11
    assert (by_name["alice"]["student_id"], by_name["alice"]["email"]) == ("s1", "alice@example.org")
    assert by_name[EVIL]["email"] == "'=cmd@example.org"  # no formula reaches a spreadsheet
    text = (out / "grades.csv").read_text(encoding="utf-8")
    assert all(line.startswith('"') for line in text.splitlines()[1:])


def test_roster_student_without_a_submission_is_missing(graded):
    carol = graded["before"]["carol"]
    assert carol["status"] == "missing" and float(carol["score"]) == 0 and float(carol["max_score"]) == 13
    assert carol["student_id"] == "s3" and not (graded["out"] / "carol.json").exists()
    lms = rows(graded["out"] / "lms.csv")
    assert list(lms[0]) == ["student_id", "email", "score", "max_score", "status"]
    assert [(r["student_id"], float(r["score"]), r["status"]) for r in lms] == [
        ("s1", 13, "ok"), ("s2", 0, "ok"), ("s3", 0, "missing"), ("s4", 11, "ok")]


def test_regrade_of_some_students_keeps_the_class(graded):
    assert graded["regrade"].returncode == 0, graded["regrade"].stderr
    after = {r["submission"]: r for r in rows(graded["out"] / "grades.csv")}
    assert after == graded["before"]  # their rows rebuilt, the others kept, the saved roster still applied
    now = {p.stem: p.read_bytes() for p in graded["out"].glob("*.json")}
    assert now["alice"] == graded["results_before"]["alice"]
    assert now["bob"] != graded["results_before"]["bob"]  # graded again (its execution time differs)
    graded_now = sorted(line for line in graded["regrade"].stdout.splitlines() if ": " in line)
    assert graded_now == ["bob: 0/13 ok", f"{EVIL}: 11/13 ok"]


def test_html_feedback_shows_items_and_cells_and_escapes_student_text(graded):
    out = graded["out"]
    page = (out / f"{EVIL}.html").read_text(encoding="utf-8")
    assert INJECTED not in page and "<b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "x&lt;b&gt;y" in page
    assert "Score: 11 / 13" in page
    result = json.loads((out / f"{EVIL}.json").read_text(encoding="utf-8"))
    assert page.count("<tr><td>✅</td>") == sum(t["score"] == t["max_score"] for t in result["tests"]) == 7
    assert "<tr><td>❌</td><td><code>bernoulli_mle</code></td><td>0/2</td>" in page
    (cell, error), = result["extra_data"]["cell_errors"]
    assert cell == len(graded["solution"]["cells"]) + 1 and error.startswith("ValueError")
    assert f"<p>Cell {cell}:</p>" in page
    assert (out / "alice.html").exists() and not (out / "alice.md").exists()


def test_markdown_feedback_for_the_regraded_student(graded):
    text = (graded["out"] / "bob.md").read_text(encoding="utf-8")
    result = json.loads((graded["out"] / "bob.json").read_text(encoding="utf-8"))
    assert text.startswith("# Feedback: bob\n") and "**Score: 0 / 13**" in text
    for t in result["tests"]:
        assert f"- ❌ **{t['name']}** (0/{t['max_score']}): " in text
    assert "- ❌ **bernoulli_mle** (0/2): not implemented yet" in text
    for n, error in result["extra_data"]["cell_errors"]:
        assert f"Cell {n}:\n\n```text\n{error}\n```" in text
    assert result["extra_data"]["cell_errors"]


def test_markdown_feedback_lets_no_student_markup_through(graded):
    text = (graded["out"] / f"{EVIL}.md").read_text(encoding="utf-8")
    assert text.startswith("# Feedback: x&lt;b&gt;y\n")
    outside, inside = text.split("```text\n")
    assert "<" not in outside and "&lt;img src=x onerror=alert(1)&gt;" in outside  # in bernoulli_mle's feedback
    assert INJECTED in inside.split("\n```")[0]  # a code block shows it as text


def test_class_report(graded):
    report = graded["report"]
    assert report.returncode == 0, report.stderr
    out = graded["out"]
    text = (out / "report.md").read_text(encoding="utf-8")
    assert report.stdout.strip() == text.strip()
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 submissions; mean score 8 / 13, lowest 0, highest 13." in text
    results = [json.loads((out / f"{n}.json").read_text(encoding="utf-8")) for n in ("alice", "bob", EVIL)]
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    for t in results[0]["tests"]:
        scores = [next(u["score"] for u in r["tests"] if u["name"] == t["name"]) for r in results]
        full = sum(s == t["max_score"] for s in scores) / 3
        assert f"| {t['name']} | {t['max_score']} | " in lines[t["name"]]
        assert f" | {full:.0%} | " in lines[t["name"]]
    assert "| bernoulli_mle | 2 | 0.67 | 33% | " in lines["bernoulli_mle"]
    assert lines["bernoulli_mle"].endswith("(1×) |")  # two failures, each with its own message
    assert "| ANSWER_LOWER_LOSS | 1 | 0.67 | 67% | ❌ `ANSWER_LOWER_LOSS` is not defined." in lines["ANSWER_LOWER_LOSS"]


def test_merge_manual_rewrites_feedback_and_report_as_grading_wrote_them(graded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(graded["out"], out)
    made = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".md", ".html", ".csv")}
    scores = tmp_path / "scores.csv"
    scores.write_text("submission,item,score,comment\nalice,bernoulli_mle,,\n")  # nothing scored yet
    run = course_grade("merge-manual", out, scores)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ("merged manual scores into 0 result(s); rewrote grades.csv, 5 feedback file(s) "
                                  "and the class report")  # alice.html; bob and x<b>y: .html, then .md at the regrade
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith(f"# Class report: {out}\n") and "3 submissions; mean score 8 / 13" in report
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".md", ".html", ".csv")
            and p.name != "report.md"} == {n: b for n, b in made.items() if n != "report.md"}

    scores.write_text("submission,item,score\nalice,bernoulli_mle,1\n")
    run = course_grade("merge-manual", out, scores)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "'bernoulli_mle' is not a manually graded item of 01_mle_coin_flips (it has none)" in run.stderr


def test_another_assignment_is_refused_in_the_same_folder(graded):
    before = (graded["out"] / "grades.csv").read_bytes()
    run = course_grade("02", graded["tmp"] / "batch" / "bob.ipynb", "--out", graded["out"])
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "holds results of another assignment (01_mle_coin_flips" in run.stderr
    assert (graded["out"] / "grades.csv").read_bytes() == before


@pytest.mark.parametrize("content, problem", [
    ("name,id\nbob,s2\n", "needs the columns file and student_id"),
    ("file,student_id\nbob,s2\nbob.ipynb,s3\n", "line 3: the file bob is listed twice"),
    ("file,student_id\nbob,\n", "line 2: file and student_id must not be empty"),
])
def test_a_bad_roster_is_a_usage_error(tmp_path, content, problem):
    (tmp_path / "bob.ipynb").write_bytes((ROOT / "exercises" / "01_mle_coin_flips.ipynb").read_bytes())
    (tmp_path / "roster.csv").write_text(content)
    run = course_grade("01", tmp_path / "bob.ipynb", "--out", tmp_path / "out", "--roster", tmp_path / "roster.csv")
    assert run.returncode == 2 and problem in run.stderr and run.stderr.strip().count("\n") == 0


def test_report_of_a_folder_without_results_is_a_usage_error(tmp_path):
    run = course_grade("report", tmp_path)
    assert run.returncode == 2 and "no results" in run.stderr


def test_make_grade_writes_one_folder_per_assignment():
    run = subprocess.run(["make", "-n", "-o", ".venv/.installed", "grade", "A=02", "S=subs/"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "course-grade 02 subs/ --out grading-out/02" in run.stdout


def test_feedback_format_is_checked():
    run = course_grade("01", "x.ipynb", "--out", "unused", "--feedback", "pdf")
    assert run.returncode == 2 and "invalid choice: 'pdf'" in run.stderr
    assert run.stderr.count("\n") == 1
