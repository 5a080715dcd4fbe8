"""One verdict: the same answer gets the same verdict and the same words from `check()` and from the grader.

The grader's path is taken in this process, without the sandbox: the child's `Runner` evaluates the
value and writes its report, the report crosses `protocol` as a JSON line, and the trusted `Plan`
scores it. (tests/test_grading.py does the same through real sandboxed runs.)
"""

from __future__ import annotations

import functools
import math
import signal

import pytest
import torch

from course_utils import likelihood
from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.grading import child, protocol
from course_utils.assessment.grading.scoring import ItemResult, Plan
from course_utils.assessment.items import Outcome
from course_utils.assessment.verdict import (
    ExpectedCase,
    earned_points,
    expected_cases,
    failing_cases,
    item_verdict,
)

_MISSING = child._MISSING


@functools.cache
def _plan(key: str) -> Plan:
    return Plan(assignments.load(key))


def graded(name: str, value) -> ItemResult:
    """The grader's result for `value` as the item `name`: child report → protocol line → trusted scoring."""
    assignment, _ = assignments.find_item(name)
    plan = _plan(assignment.key)
    spec = next(s for s in plan.child_spec() if s.name == name)
    runner = child.Runner([spec], [], slice_s=60.0)
    sent: list[dict] = []
    runner._send = sent.append  # instead of writing to fd 3
    previous = signal.signal(signal.SIGALRM, child._on_alarm)
    try:
        runner._evaluate(spec, value, final=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    reports = {r.name: r for r in (protocol.decode_line(protocol.encode_line(m)) for m in sent)}
    return next(r for r in plan.score(reports) if r.name == name)


class LyingFloat(float):
    def __eq__(self, other):
        return True


def _raises(*args):
    raise ZeroDivisionError("oops")


def _placeholder(*args):
    raise NotImplementedError("Replace this line with your code.")


def _log_of_product(theta, flips):  # the lesson's pitfall: underflows on the public 2000 flips
    return math.log(likelihood.bernoulli_likelihood(theta, flips)) if theta not in (0, 1) else 0.0


def _clamped(theta, flips):  # passes the public cases; θ = 0 with a head gives -27.6, not -inf
    x = torch.as_tensor(flips, dtype=torch.float64)
    t = torch.tensor(float(theta), dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return float((x * torch.log(t) + (1 - x) * torch.log(1 - t)).sum())


# (item, wrong value, a fragment of the reason) — each fails on a public case, so check() sees it too
PUBLIC_MISTAKES = [
    ("bernoulli_mle", lambda flips: 0.5, "case 1, bernoulli_mle([1, 0, 1, 1]): expected 0.75, got 0.5."),
    ("bernoulli_mle", _raises, "case 1, bernoulli_mle([1, 0, 1, 1]): raised ZeroDivisionError: oops."),
    ("bernoulli_mle", _placeholder, "not implemented yet"),
    ("bernoulli_mle", lambda flips: LyingFloat(0.75), "returned an object of type LyingFloat."),
    ("bernoulli_mle", lambda flips: torch.tensor([0.75, 0.75]), "expected a single number, got an array"),
    ("bernoulli_mle", lambda flips: torch.zeros((), device="meta"), "a tensor that cannot be read"),
    ("bernoulli_mle", lambda flips: float("nan"), "got NaN"),
    ("bernoulli_mle", 42, "should be a function, but it is a value of type int"),
    ("bernoulli_mle", _MISSING, "`bernoulli_mle` is not defined"),
    ("kl_divergence", lambda p, q: 0.0, "case 2, kl_divergence([0.75, 0.25], [0.5, 0.5]): expected 0.1308, got 0"),
    ("gaussian_mle", lambda xs: (2.5, 5 / 3),
     "case 1, gaussian_mle([1, 2, 3, 4]): element 1: expected 1.25, got 1.667."),
    ("ANSWER_LOWER_LOSS", "A", "not quite: the training loss is measured on the training data only"),
    ("ANSWER_LOWER_LOSS", "E", "ANSWER_LOWER_LOSS must be one of 'A', 'B', 'C', 'D'; got 'E'."),
    ("ANSWER_LOWER_LOSS", _MISSING, "`ANSWER_LOWER_LOSS` is not defined"),
    ("ANSWER_SPREAD_RATIO", LyingFloat(0.5), "the answer could not be read: an object of type LyingFloat."),
    ("ANSWER_SPREAD_RATIO", 0.25, "not quite."),
]


@pytest.mark.parametrize(("name", "value", "fragment"), PUBLIC_MISTAKES)
def test_check_and_grader_give_the_same_verdict_in_the_same_words(name, value, fragment):
    feedback = evaluate(name) if value is _MISSING else evaluate(name, value)
    result = graded(name, value)
    assert not feedback.passed and result.score == 0.0
    assert fragment in feedback.message
    assert feedback.message == result.output.replace("❌ ", f"❌ {name}: ", 1)


@pytest.mark.parametrize("name", ["log_likelihood", "bernoulli_mle", "kl_divergence", "ANSWER_LOWER_LOSS"])
def test_the_reference_passes_both(name):
    _, item = assignments.find_item(name)
    value = item.expected if hasattr(item, "expected") else item.reference
    assert evaluate(name, value).passed
    result = graded(name, value)
    assert result.score == result.max_score == item.points


def test_success_lines_say_which_cases_were_run():
    n_public, n_all = 4, 8  # log_likelihood: 4 public and 4 hidden cases
    assert evaluate("log_likelihood", likelihood.bernoulli_log_likelihood).message == \
        f"✅ log_likelihood: all {n_public} public cases pass (the graded run also uses hidden cases)."
    assert graded("log_likelihood", likelihood.bernoulli_log_likelihood).output == f"✅ all {n_all} cases pass."
    assert evaluate("best_theta", lambda t, losses: t[2]).message.startswith("✅ best_theta: the public case passes")
    assert graded("ANSWER_LOWER_LOSS", "B").output == evaluate("ANSWER_LOWER_LOSS", "B").message.replace(
        "ANSWER_LOWER_LOSS: ", "") == "✅ correct."


def test_a_mistake_only_hidden_cases_catch_fails_only_in_the_grader():
    assert evaluate("log_likelihood", _clamped).passed
    result = graded("log_likelihood", _clamped)
    assert result.score == 0
    assert result.output.startswith("❌ hidden case 3 failed: wrong result (got -27.63). Hint: sum log θ")
    _, item = assignments.find_item("log_likelihood")
    assert failing_cases(item, _clamped) == [6]  # θ = 0 with a head: -inf, not log 1e-12
    assert earned_points(item, _clamped) == 0.0
    assert earned_points(item, likelihood.bernoulli_log_likelihood) == item.points


def test_the_lessons_pitfall_fails_publicly_with_the_hint_that_names_it():
    _, item = assignments.find_item("log_likelihood")
    feedback, result = evaluate("log_likelihood", _log_of_product), graded("log_likelihood", _log_of_product)
    assert not feedback.passed and result.score == 0
    assert feedback.message.startswith("❌ log_likelihood: case 4, log_likelihood(0.5, tensor of shape (2000,)): "
                                       "raised ValueError: math domain error.")
    assert feedback.message.endswith(f"Hint: {item.non_finite_hint}") and "underflows" in item.non_finite_hint
    assert feedback.message == result.output.replace("❌ ", "❌ log_likelihood: ", 1)
    assert failing_cases(item, _log_of_product) == [3, 4, 6]  # 2000 and 5000 flips; θ = 0 gives 0, not -inf


def test_a_wrong_value_that_is_finite_gets_the_items_own_hint():
    _, item = assignments.find_item("log_likelihood")
    message = evaluate("log_likelihood", lambda theta, flips: 0.0).message
    assert message.endswith(f"Hint: {item.hint}")


def test_every_valid_order_of_the_gradient_reset_is_accepted():
    for order in ("CADBE", "ECADB", "CEADB", "CAEDB", "cadbe"):
        assert evaluate("ANSWER_STEP_ORDER", order).passed, order
    wrong = evaluate("ANSWER_STEP_ORDER", "CADEB")
    assert not wrong.passed and "throws the gradients away" in wrong.message
    assert graded("ANSWER_STEP_ORDER", "CADEB").score == 0


def test_type_and_shape_reasons_stay_for_hidden_cases():
    _, item = assignments.find_item("kl_divergence")
    cases = expected_cases(item, hidden=True)
    outcomes = [Outcome(value=c.expected) for c in cases]
    outcomes[3] = Outcome(value="0.5")  # hidden case 1
    verdict = item_verdict(item, cases, outcomes)
    assert not verdict.passed and verdict.reason == "hidden case 1 failed: expected a single number, got '0.5'"
    outcomes[3] = Outcome(value=cases[3].expected + 1.0)
    assert item_verdict(item, cases, outcomes).reason == (
        f"hidden case 1 failed: wrong result (got {cases[3].expected + 1.0:.4g})")


def test_missing_outcomes_are_a_time_limit_or_no_result():
    _, item = assignments.find_item("kl_divergence")
    cases = expected_cases(item, hidden=True)
    outcomes = [Outcome(value=c.expected) for c in cases[:4]]  # 3 public cases and hidden case 1
    slow = item_verdict(item, cases, outcomes, timed_out=True)
    assert not slow.passed and slow.reason == (
        "hidden case 2 failed: took too long (each item's cases share a time limit)")
    assert "produced no result" in item_verdict(item, cases, outcomes).reason
    assert item_verdict(item, cases, [Outcome(value=c.expected) for c in cases]).passed


def test_a_failure_stops_at_the_first_case_so_check_calls_no_more():
    calls = []

    def wrong(p, q):
        calls.append(p)
        return 1.0

    assert not evaluate("kl_divergence", wrong).passed
    assert len(calls) == 1


def test_an_unreadable_comparison_is_never_a_pass():
    _, item = assignments.find_item("kl_divergence")
    bad = ExpectedCase((), object(), hidden=False, number=1)  # a reference value judge cannot read
    verdict = item_verdict(item, [bad], [Outcome(value=0.0)])
    assert not verdict.passed and "could not be compared (TypeError)" in verdict.reason

