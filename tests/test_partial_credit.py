"""Partial credit: an item may earn an equal share of its points per case; all-or-nothing stays the default.

The trusted scoring is exercised as the grader runs it: outcomes as the child reports them
(`protocol.ItemReport`), scored by `scoring.Plan`; `check()`'s verdict on the public cases alike.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from course_utils.assessment import assignments
from course_utils.assessment.grading import protocol
from course_utils.assessment.grading.scoring import PUBLIC_PART, Plan
from course_utils.assessment.items import Assignment, Case, FunctionItem, call_case
from course_utils.assessment.verdict import earned_points, expected_cases, value_verdict


def _square(x: float) -> float:
    return x * x


def _wrong_at_three(x: float) -> float:  # right on both public cases and on one of the two hidden ones
    return 0.0 if x == 3.0 else x * x


def _wrong_at_one(x: float) -> float:  # wrong on the first public case only
    return 5.0 if x == 1.0 else x * x


SQUARE = FunctionItem("square", points=4, reference=_square, public=(Case((1.0,)), Case((2.0,))),
                      hidden=(Case((3.0,)), Case((-1.5,))), keyed=True, partial=True)
ALL_OR_NOTHING = replace(SQUARE, partial=False)


def _scored(item: FunctionItem, fn, hidden_apart: bool = False) -> list:
    """The grader's item results for `fn` as `item`: one outcome per case, scored by the trusted plan."""
    plan = Plan(Assignment("99_test", "test", (item,)), hidden_apart=hidden_apart)
    outcomes = tuple(call_case(fn, c.args) for c in expected_cases(item, hidden=True))
    return plan.score({item.name: protocol.ItemReport(item.name, True, protocol.OK, outcomes)})


@pytest.mark.parametrize("fn, points", [(_square, 4.0), (_wrong_at_three, 3.0), (_wrong_at_one, 3.0),
                                        (lambda x: 0.0, 0.0)])
def test_each_case_earns_its_share(fn, points):
    (result,) = _scored(SQUARE, fn)
    assert result.score == pytest.approx(points, abs=1e-12) and result.max_score == 4.0
    assert earned_points(SQUARE, fn) == pytest.approx(points, abs=1e-12)


def test_all_or_nothing_is_the_default_and_unchanged():
    assert FunctionItem("f", 1, _square, (Case((1.0,)),)).partial is False
    (result,) = _scored(ALL_OR_NOTHING, _wrong_at_three)
    assert result.score == 0.0
    assert result.output == "❌ hidden case 1 failed: wrong result (got 0)."
    assert earned_points(ALL_OR_NOTHING, _wrong_at_three) == 0.0
    assert earned_points(ALL_OR_NOTHING, _square) == 4.0


def test_feedback_names_the_first_failure_and_counts_the_passes():
    (result,) = _scored(SQUARE, _wrong_at_three)
    assert result.output == "❌ hidden case 1 failed: wrong result (got 0); 3 of 4 cases pass."
    public = value_verdict(SQUARE, _wrong_at_one, hidden=False)
    assert public.line("square") == "❌ square: case 1, square(1): expected 1, got 5; 1 of 2 public cases pass."
    assert public.credit == pytest.approx(0.5, abs=1e-12)


def test_the_check_line_of_every_course_item_has_no_count():
    """The course's items are all-or-nothing: `check()` prints what it printed before partial credit existed."""
    for key in assignments.keys():
        for item in assignments.load(key).items:
            if isinstance(item, FunctionItem):
                assert not item.partial
                wrong = value_verdict(item, lambda *args: 0.123456789, hidden=False)
                assert wrong.credit is None and not wrong.reason.endswith("cases pass")


def test_placeholder_and_missing_outcomes_earn_nothing():
    def placeholder(x):
        raise NotImplementedError

    (result,) = _scored(SQUARE, placeholder)
    assert result.score == 0.0 and "not implemented yet" in result.output
    plan = Plan(Assignment("99_test", "test", (SQUARE,)))
    outcomes = tuple(call_case(_square, c.args) for c in expected_cases(SQUARE, hidden=True))[:3]
    (timed,) = plan.score({"square": protocol.ItemReport("square", True, protocol.TIMEOUT, outcomes)})
    assert timed.score == pytest.approx(3.0, abs=1e-12) and "hidden case 2 failed: took too long" in timed.output


def test_public_part_for_gradescope_reports_the_public_cases_only():
    public, graded = _scored(SQUARE, _wrong_at_three, hidden_apart=True)
    assert public.name == "square" + PUBLIC_PART and (public.score, public.max_score) == (0.0, 0.0)
    assert public.output.startswith("✅ all 2 public cases pass")
    assert graded.name == "square" and graded.score == pytest.approx(3.0, abs=1e-12)
    public, _ = _scored(SQUARE, _wrong_at_one, hidden_apart=True)
    assert public.output.startswith("❌ case 1, square(1): expected 1, got 5; 1 of 2 public cases pass.")
