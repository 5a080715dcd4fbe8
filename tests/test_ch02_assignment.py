"""Chapter 02's graded items: the reference passes; its listed mistakes are run by tests/test_mistakes.py."""

from __future__ import annotations

import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.assignments.ch02_autoregressive import most_likely_sequence
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem
from course_utils.assessment.verdict import failing_cases

ASSIGNMENT = assignments.load("02")  # the public part with the instructor key attached


def _fails_somewhere(name, fn) -> bool:
    return bool(failing_cases(ASSIGNMENT.item(name), fn))


def test_at_least_six_items_and_names_unique_across_the_course():
    assert len(ASSIGNMENT.items) >= 6
    names = [item.name for key in assignments.keys() for item in assignments.load(key).items]
    assert len(names) == len(set(names))
    assert assignments.load("02") is ASSIGNMENT


@pytest.mark.parametrize("item", [i for i in ASSIGNMENT.items if isinstance(i, FunctionItem)],
                         ids=lambda i: i.name)
def test_reference_passes_every_case(item):
    assert not _fails_somewhere(item.name, item.reference)
    assert evaluate(item.name, item.reference).passed


@pytest.mark.parametrize("item", [i for i in ASSIGNMENT.items if isinstance(i, AnswerItem)],
                         ids=lambda i: i.name)
def test_answer_items_accept_only_the_expected_answer(item):
    assert evaluate(item.name, item.expected).passed
    wrong = [c for c in item.choices if c != item.expected] or [item.expected + 1.0]
    for w in wrong:
        assert not evaluate(item.name, w).passed


def test_unseen_contexts_fail_publicly_with_the_hint_that_names_them():
    def nan_rows(tokens, v):
        t = torch.as_tensor(tokens).long()
        counts = torch.bincount(t[:-1] * v + t[1:], minlength=v * v).reshape(v, v).double()
        return counts / counts.sum(1, keepdim=True)

    fb = evaluate("bigram_mle", nan_rows)
    assert not fb.passed and "case 2, bigram_mle([0, 0, 1], 3): the result contains NaN" in fb.message
    assert fb.message.endswith(f"Hint: {ASSIGNMENT.item('bigram_mle').non_finite_hint}")


def test_returning_a_list_where_a_tensor_is_asked_is_reported():
    fb = evaluate("bigram_mle", lambda t, v: [[0.0] * v for _ in range(v)])
    assert not fb.passed and "array" in fb.message


def test_the_seed_examples():
    assert ASSIGNMENT.item("conditional_log_likelihood").reference([-0.7, -0.4]) == pytest.approx(-1.1)
    assert ASSIGNMENT.item("ANSWER_OBJECTIVE_CHANGE").expected == 2.5
    assert ASSIGNMENT.item("ANSWER_LOG_CLAIM").expected is False
    assert most_likely_sequence([[0.9] * 8, [0.5]]) == 1  # fewer factors can win
    with pytest.raises(ValueError, match="empty"):
        most_likely_sequence([])
