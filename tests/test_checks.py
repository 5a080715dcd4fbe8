"""Learner feedback: `check` / `evaluate` give one clear line for every kind of wrong answer."""

import math

import numpy as np
import pytest
import torch

from course_utils import information, likelihood
from course_utils.assessment.checks import check, evaluate
from course_utils.assessment.items import Unsupported, judge, to_plain


def _one_line(feedback):
    assert "\n" not in feedback.message and "Traceback" not in feedback.message
    return feedback


def test_references_pass():
    assert evaluate("log_likelihood", likelihood.bernoulli_log_likelihood).passed
    assert evaluate("kl_divergence", information.kl_divergence).passed
    assert evaluate("ANSWER_LOWER_LOSS", "B").passed
    assert evaluate("ANSWER_LOWER_LOSS", " b ").passed


def _raises(*args):
    raise ZeroDivisionError("oops")


def _placeholder(*args):
    raise NotImplementedError("Replace this line with your code.")


class _EqualsAnything:
    def __eq__(self, other):
        return True

    def __float__(self):
        return 0.75


class _Float(float):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (_raises, "raised ZeroDivisionError: oops"),
        (_placeholder, "not implemented yet"),
        (lambda flips: "0.75", "expected a single number"),
        (lambda flips: [0.75, 0.25], "expected a single number"),
        (lambda flips: float("nan"), "got NaN"),
        (lambda flips: 0.5, "expected 0.75, got 0.5"),
        (lambda flips: _EqualsAnything(), "returned an object of type _EqualsAnything"),
        (lambda flips: _Float(0.75), "returned an object of type _Float"),
        (lambda flips: torch.tensor([0.75, 0.75]), "expected a single number"),
        (lambda flips: torch.zeros((), device="meta"), "a tensor that cannot be read"),
        (42, "should be a function"),
    ],
)
def test_wrong_answers_give_one_red_line(value, fragment):
    fb = _one_line(evaluate("bernoulli_mle", value))
    assert not fb.passed
    assert fb.message.startswith("❌ bernoulli_mle:")
    assert fragment in fb.message


def test_a_wrong_choice_says_why_that_choice_is_wrong():
    fb = evaluate("ANSWER_LOWER_LOSS", "D")
    assert fb.message.startswith("❌ ANSWER_LOWER_LOSS: not quite: overfitting shows as a training loss far below")
    assert fb.message.endswith("Hint: a loss on the training data measures fit to that data only.")


def test_a_non_finite_result_gets_the_hint_naming_the_pitfall():
    fb = evaluate("kl_divergence", lambda p, q: float(sum(a * math.log(a / b) if a else math.nan
                                                         for a, b in zip(p, q, strict=True))))
    assert not fb.passed and "case 3, kl_divergence([0, 1], [0.5, 0.5]): got NaN" in fb.message
    assert "Hint: a term with p_j = 0 is 0 · log 0" in fb.message


def test_hint_is_shown_for_a_wrong_value():
    fb = evaluate("bernoulli_mle", lambda flips: 0.5)
    assert "Hint: θ̂ = k / n" in fb.message


def test_tensor_results_are_accepted():
    fb = evaluate("bernoulli_mle", lambda flips: torch.tensor(flips, dtype=torch.float32).mean())
    assert fb.passed, fb.message


def test_answer_items():
    assert "must be one of" in evaluate("ANSWER_LOWER_LOSS", "E").message
    assert not evaluate("ANSWER_LOWER_LOSS", "A").passed
    assert "must be one of" in evaluate("ANSWER_LOWER_LOSS", 2).message
    assert evaluate("ANSWER_SPREAD_RATIO", 0.5).passed
    assert evaluate("ANSWER_SPREAD_RATIO", np.float64(0.505)).passed
    assert not evaluate("ANSWER_SPREAD_RATIO", 0.25).passed
    assert not evaluate("ANSWER_SPREAD_RATIO", True).passed


def test_unknown_and_undefined_names():
    assert "no graded item is called 'nope'" in evaluate("nope", 1).message
    assert "`bernoulli_mle` is not defined" in evaluate("bernoulli_mle").message


def test_check_finds_the_name_in_the_callers_namespace(capsys):
    bernoulli_mle = likelihood.bernoulli_mle  # noqa: F841 (looked up by name)
    check("bernoulli_mle")
    assert capsys.readouterr().out.startswith("✅ bernoulli_mle")


def test_learner_function_cannot_mutate_the_reference_inputs():
    def mutating(flips):
        result = sum(flips) / len(flips)
        flips.clear()
        return result

    assert evaluate("bernoulli_mle", mutating).passed


def test_judge_arrays_shapes_dtypes_and_nan():
    exp = to_plain(torch.tensor([1.0, 2.0]))
    assert judge(exp, to_plain(np.array([1.0, 2.0])), 1e-6, 0) is None
    assert "shape" in judge(exp, to_plain(torch.tensor([[1.0, 2.0]])), 1e-6, 0)
    assert "floating-point" in judge(exp, to_plain(torch.tensor([1, 2])), 1e-6, 0)
    assert "NaN" in judge(exp, to_plain(torch.tensor([1.0, math.nan])), 1e-6, 0)
    assert judge(to_plain(math.inf), math.inf, 0, 0) is None
    assert judge(to_plain(-math.inf), math.nan, 0, 0) == "got NaN"
    with pytest.raises(Unsupported):
        to_plain(np.array(["a"]))
    with pytest.raises(Unsupported):
        to_plain(np.zeros(2_000_000))


def test_earned_points_needs_the_hidden_cases_too():
    from course_utils.assessment.assignments import find_item
    from course_utils.assessment.verdict import earned_points

    _, item = find_item("log_likelihood")

    def clamped(theta, flips):  # passes the public cases; θ = 0 with a head gives log 1e-12, not -inf
        t = min(max(float(theta), 1e-12), 1 - 1e-12)
        return sum(math.log(t) if x else math.log(1 - t) for x in flips)

    assert evaluate("log_likelihood", clamped).passed
    assert earned_points(item, clamped) == 0.0
    assert earned_points(item, likelihood.bernoulli_log_likelihood) == item.points
    _, answer = find_item("ANSWER_LOWER_LOSS")
    assert earned_points(answer, "B") == 1.0 and earned_points(answer, "A") == 0.0


def test_without_the_key_check_records_an_answer_and_runs_the_public_cases(monkeypatch):
    """As in a student release: every choice gets the same words, a malformed answer is refused."""
    from course_utils.assessment import assignments

    monkeypatch.setattr(assignments, "load", assignments.public)
    lines = {c: evaluate("ANSWER_LOWER_LOSS", c) for c in "ABCD"}
    assert {fb.message.replace(f"'{c}'", "'?'") for c, fb in lines.items()} == {
        "📝 ANSWER_LOWER_LOSS: recorded: '?'; graded after submission."}
    assert all(fb.pending and not fb.passed for fb in lines.values())
    assert evaluate("ANSWER_STEP_ORDER", "EDCBA").pending
    assert "must use each of A, B, C, D, E once" in evaluate("ANSWER_STEP_ORDER", "ABCDD").message
    assert "must be a number" in evaluate("ANSWER_SPREAD_RATIO", "half").message
    from course_utils.likelihood import bernoulli_mle

    assert evaluate("bernoulli_mle", bernoulli_mle).message.endswith("(the graded run also uses hidden cases).")
