"""Every listed mistake of every item: ❌ from the learner's `check()` on the public cases, 0 points from the grader.

The grader's side is taken in this process through the same child report → protocol → `scoring.Plan`
path as tests/test_verdict.py (tests/test_grading.py runs real sandboxed submissions).
"""

from __future__ import annotations

import pytest
from test_verdict import graded

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import CHOICE, AnswerItem, FunctionItem
from course_utils.assessment.verdict import earned_points

CHAPTERS = ["01", "02", "03", "04", "05", "06", "07"]


def _function_items(key: str) -> list[FunctionItem]:
    return [i for i in assignments.load(key).items if isinstance(i, FunctionItem)]


MISTAKES = [(item.name, m) for key in CHAPTERS for item in _function_items(key) for m in item.mistakes]


def test_every_chapter_is_covered():
    assert [k[:2] for k in assignments.keys()] == CHAPTERS


@pytest.mark.parametrize("key", CHAPTERS)
def test_every_function_item_lists_at_least_two_mistakes_and_the_chapter_its_pitfalls(key):
    items = _function_items(key)
    assert items
    for item in items:
        labels = [m.label for m in item.mistakes]
        assert len(labels) >= 2, f"{item.name} lists {len(labels)} mistakes"
        assert len(set(labels)) == len(labels), f"{item.name} repeats a label"
    assert any(m.pitfall for item in items for m in item.mistakes), f"chapter {key} marks no pitfall"


@pytest.mark.parametrize(("name", "mistake"), MISTAKES, ids=[f"{n}: {m.label}" for n, m in MISTAKES])
def test_check_says_no_on_the_public_cases_and_the_grader_gives_zero(name, mistake):
    feedback = evaluate(name, mistake.fn)
    assert not feedback.passed, f"check() accepts '{mistake.label}': {feedback.message}"
    assert "not implemented" not in feedback.message and "could not be compared" not in feedback.message
    result = graded(name, mistake.fn)
    assert result.score == 0.0, f"the grader gives '{mistake.label}' {result.score} points"
    _, item = assignments.find_item(name)
    assert earned_points(item, mistake.fn) == 0.0


@pytest.mark.parametrize("key", CHAPTERS)
def test_the_references_pass_every_case_in_check_and_in_the_grader(key):
    for item in assignments.load(key).items:
        value = item.expected if isinstance(item, AnswerItem) else item.reference
        assert evaluate(item.name, value).passed, item.name
        result = graded(item.name, value)
        assert result.score == result.max_score == item.points, (item.name, result.output)


PITFALL_HINTS = [(item.name, m) for key in CHAPTERS for item in _function_items(key) for m in item.mistakes
                 if m.pitfall and item.non_finite_hint]


@pytest.mark.parametrize(("name", "mistake"), PITFALL_HINTS, ids=[f"{n}: {m.label}" for n, m in PITFALL_HINTS])
def test_a_non_finite_pitfall_gets_the_hint_that_names_it(name, mistake):
    _, item = assignments.find_item(name)
    message = evaluate(name, mistake.fn).message
    if "NaN" in message or "inf" in message or "math domain error" in message:
        assert message.endswith(f"Hint: {item.non_finite_hint}")


@pytest.mark.parametrize("key", CHAPTERS)
def test_wrong_choices_say_why_that_choice_is_wrong(key):
    for item in assignments.load(key).items:
        if not isinstance(item, AnswerItem) or item.form != CHOICE:  # an order's wrong letters are countless
            continue
        right = {item.expected, *item.also_accepted}
        for choice in item.choices:
            if choice in right:
                assert not item.feedback_for(choice), f"{item.name}: feedback on the right answer {choice!r}"
                continue
            why = item.feedback_for(choice)
            assert why, f"{item.name}: no feedback for {choice!r}"
            message = evaluate(item.name, choice).message
            assert message.startswith(f"❌ {item.name}: not quite: ") and why in message
            assert graded(item.name, choice).output.startswith(f"❌ not quite: {why}")
