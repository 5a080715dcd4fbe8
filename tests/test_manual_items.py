"""Manually graded items: the grader records each text answer, `collect-manual` gathers them per item,
`merge-manual` brings the instructor's scores back into the results and grades.csv.

The submissions are graded by the real grader (sandboxed runs) for a small assignment defined here;
collect and merge go through the command's entry point with that assignment as the one the results name.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_grading import notebook

from course_utils.assessment import assignments
from course_utils.assessment.grading import cli, protocol
from course_utils.assessment.grading.manual import GRADED_BY_HAND, answer_text
from course_utils.assessment.grading.scoring import Plan
from course_utils.assessment.items import Assignment, Case, FunctionItem, ManualItem, Outcome
from course_utils.assessment.verdict import value_verdict

pytestmark = pytest.mark.usefixtures("readable_environment")


def _double(x: float) -> float:
    return 2 * x


EXPLAIN = ManualItem("EXPLAIN_SMOOTHING", points=3, prompt="Why does add-one smoothing help?", keyed=True)
DOUBLE = FunctionItem("double", points=1, reference=_double, public=(Case((1.5,)),), keyed=True)
MANUAL = Assignment("90_manual", "A manual item", (DOUBLE, EXPLAIN))
ALICE = "Unseen bigrams get a non-zero probability, so ```the``` test log-likelihood stays finite."


def _score(value) -> str:
    plan = Plan(MANUAL)
    report = protocol.ItemReport(EXPLAIN.name, True, protocol.OK, (Outcome(value=value),))
    return next(r for r in plan.score({EXPLAIN.name: report}) if r.name == EXPLAIN.name)


def test_a_text_is_recorded_for_the_instructor_worth_nothing_yet():
    result = _score(ALICE)
    assert (result.score, result.max_score) == (0.0, 3.0)
    assert result.output.startswith(f"📝 recorded ({len(ALICE)} characters); graded by hand.")
    assert answer_text(result.output) == ALICE
    assert value_verdict(EXPLAIN, ALICE, hidden=False).pending  # check(): 📝, not ❌


@pytest.mark.parametrize("value, why", [(42, "should be a text"), ("   ", "is empty")])
def test_not_a_text_or_an_empty_one_is_said_at_once(value, why):
    result = _score(value)
    assert result.output.startswith("❌") and why in result.output and answer_text(result.output) is None


@pytest.fixture
def graded_folder(tmp_path, monkeypatch) -> Path:
    """Three submissions of MANUAL graded into `out` by the real grader; MANUAL loads under its key."""
    sources = {"alice": f"def double(x):\n    return 2 * x\nEXPLAIN_SMOOTHING = {ALICE!r}",
               "bob": "def double(x):\n    return x\nEXPLAIN_SMOOTHING = 'It avoids zeros.'",
               "carol": "def double(x):\n    return 2 * x"}
    files = []
    for name, source in sources.items():
        path = tmp_path / "in" / f"{name}.ipynb"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(notebook([source])))
        files.append(path)
    out = tmp_path / "out"
    assert cli.grade(MANUAL, files, out, jobs=1, timeout=30) == 0
    real_load = assignments.load
    monkeypatch.setattr(assignments, "load", lambda key: MANUAL if key == MANUAL.key else real_load(key))
    return out


def test_collect_then_merge_round_trip(graded_folder, capsys):
    out = graded_folder
    assert cli.main(["collect-manual", str(out)]) == 0
    page = (out / "manual" / "EXPLAIN_SMOOTHING.md").read_text(encoding="utf-8")
    assert page.startswith("# EXPLAIN_SMOOTHING (3 points)\n\nWhy does add-one smoothing help?")
    assert f"## alice\n\n````text\n{ALICE}\n````" in page  # a fence longer than the answer's backticks
    assert "## bob\n\n```text\nIt avoids zeros.\n```" in page and "## carol\n\n(no answer recorded)" in page
    with open(out / "manual" / "scores.csv", newline="") as f:
        template = list(csv.DictReader(f))
    assert [(r["submission"], r["item"], r["score"]) for r in template] == [
        ("alice", "EXPLAIN_SMOOTHING", ""), ("bob", "EXPLAIN_SMOOTHING", ""), ("carol", "EXPLAIN_SMOOTHING", "")]

    scores = out / "manual" / "scores.csv"
    scores.write_text("submission,item,score,comment\nalice,EXPLAIN_SMOOTHING,3,Clear.\n"
                      "bob,EXPLAIN_SMOOTHING,1.5,Why zeros matter?\ncarol,EXPLAIN_SMOOTHING,,\n")
    assert cli.main(["merge-manual", str(out), str(scores)]) == 0
    alice, bob = (json.loads((out / f"{n}.json").read_text(encoding="utf-8")) for n in ("alice", "bob"))
    assert (alice["score"], alice["max_score"]) == (4, 4) and alice["output"].startswith("Score: 4 / 4.")
    test = next(t for t in bob["tests"] if t["name"] == "EXPLAIN_SMOOTHING")
    assert (bob["score"], test["score"], test["status"]) == (1.5, 1.5, "failed")
    assert test["output"].startswith(f"{GRADED_BY_HAND} 1.5 / 3. Why zeros matter?\n📝 recorded")
    with open(out / "grades.csv", newline="") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    assert (rows["alice"]["score"], rows["bob"]["score"], rows["carol"]["score"]) == ("4", "1.5", "1")
    assert rows["bob"]["EXPLAIN_SMOOTHING"] == "1.5"

    scores.write_text("submission,item,score\nbob,EXPLAIN_SMOOTHING,2\n")  # merging again replaces the score
    assert cli.main(["merge-manual", str(out), str(scores)]) == 0
    bob = json.loads((out / "bob.json").read_text(encoding="utf-8"))
    test = next(t for t in bob["tests"] if t["name"] == "EXPLAIN_SMOOTHING")
    assert bob["score"] == 2 and test["output"].count(GRADED_BY_HAND) == 1


@pytest.mark.parametrize("row, why", [("dave,EXPLAIN_SMOOTHING,1", "no result for the submission"),
                                      ("bob,double,1", "not a manually graded item"),
                                      ("bob,EXPLAIN_SMOOTHING,4", "outside 0 … 3"),
                                      ("bob,EXPLAIN_SMOOTHING,lots", "is not a number")])
def test_merge_refuses_a_bad_row_and_changes_nothing(graded_folder, capsys, row, why):
    out = graded_folder
    before = (out / "bob.json").read_bytes()
    scores = out / "scores.csv"
    scores.write_text(f"submission,item,score\n{row}\n")
    assert cli.main(["merge-manual", str(out), str(scores)]) == 2
    err = capsys.readouterr().err
    assert why in err and "line 2" in err
    assert (out / "bob.json").read_bytes() == before
