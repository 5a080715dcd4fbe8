"""Chapter 02's graded items: the reference passes, and classic wrong answers fail a case."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.assignments.ch02_autoregressive import ASSIGNMENT, most_likely_sequence
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem, failing_cases


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


def _as_list(x):
    return [float(v) for v in (x.tolist() if isinstance(x, torch.Tensor) else x)]


WRONG = {
    "sequence_log_prob": {
        "multiplies log-probs": lambda p: math.prod(math.log(v) if v > 0 else -math.inf for v in _as_list(p)),
        "sums probabilities": lambda p: math.log(sum(_as_list(p))),
        "log of the product": lambda p: math.log(math.prod(_as_list(p))) if math.prod(_as_list(p)) > 0 else -math.inf,
        "forgets the first term": lambda p: sum(math.log(v) for v in _as_list(p)[1:]),
        "returns the product": lambda p: math.prod(_as_list(p)),
        "mean instead of sum": lambda p: sum(math.log(v) for v in _as_list(p)) / len(_as_list(p)),
    },
    "objective_two_sequences": {
        "forgets log Pr(y_0)": lambda a, b, c, d, e: math.log(a) + math.log(b) + math.log(d) + math.log(e),
        "forgets log Pr(x_0)": lambda a, b, c, d, e: math.log(b) + math.log(c) + math.log(d) + math.log(e),
        "multiplies the sequences": lambda a, b, c, d, e: (
            (math.log(a) + math.log(b)) * (math.log(c) + math.log(d) + math.log(e))),
        "sums probabilities": lambda a, b, c, d, e: math.log(a + b) + math.log(c + d + e),
        "forgets the last term": lambda a, b, c, d, e: math.log(a) + math.log(b) + math.log(c) + math.log(d),
    },
    "conditional_log_likelihood": {
        "multiplies log-probs": lambda lp: math.prod(_as_list(lp)),
        "sums probabilities": lambda lp: math.log(sum(math.exp(v) for v in _as_list(lp))),
        "forgets the first step": lambda lp: sum(_as_list(lp)[1:]),
        "mean instead of sum": lambda lp: sum(_as_list(lp)) / len(_as_list(lp)),
    },
    "most_likely_sequence": {
        "sums probabilities": lambda seqs: max(range(len(seqs)), key=lambda i: sum(seqs[i])),
        "multiplies log-probs": lambda seqs: max(range(len(seqs)), key=lambda i: math.prod(
            math.log(v) if v > 0 else -1e300 for v in seqs[i])),
        "lowest instead of highest": lambda seqs: min(range(len(seqs)), key=lambda i: sum(
            math.log(v) if v > 0 else -math.inf for v in seqs[i])),
    },
    "bigram_mle": {
        "normalises columns": lambda t, v: _counts(t, v) / _counts(t, v).sum(0, keepdim=True).clamp_min(1),
        "empty rows left at zero": lambda t, v: _counts(t, v) / _counts(t, v).sum(1, keepdim=True).clamp_min(1),
        "add-one smoothing": lambda t, v: (_counts(t, v) + 1) / (_counts(t, v) + 1).sum(1, keepdim=True),
        "wraps around the end": lambda t, v: _wrap(t, v),
    },
    "perplexity_from_log_probs": {
        "sum instead of mean": lambda lp: math.exp(-sum(_as_list(lp))),
        "base 2": lambda lp: 2 ** (-sum(_as_list(lp)) / len(_as_list(lp))),
        "forgets the minus sign": lambda lp: math.exp(sum(_as_list(lp)) / len(_as_list(lp))),
        "mean NLL, not its exp": lambda lp: -sum(_as_list(lp)) / len(_as_list(lp)),
    },
    "temperature_probs": {
        "multiplies by T": lambda p, t: _norm([v ** t for v in p]),
        "divides probabilities by T": lambda p, t: torch.softmax(
            torch.tensor(p, dtype=torch.float64) / max(t, 1e-9), 0),
        "ignores T": lambda p, t: torch.tensor(p, dtype=torch.float64),
    },
}


def _counts(tokens, v):
    t = torch.as_tensor(tokens).long()
    return torch.bincount(t[:-1] * v + t[1:], minlength=v * v).reshape(v, v).double()


def _wrap(tokens, v):
    t = torch.as_tensor(tokens).long()
    c = torch.bincount(t * v + torch.roll(t, -1), minlength=v * v).reshape(v, v).double()
    total = c.sum(1, keepdim=True)
    return torch.where(total > 0, c / total.clamp_min(1), torch.full_like(c, 1 / v))


def _norm(values):
    t = torch.tensor(values, dtype=torch.float64)
    return t / t.sum()


@pytest.mark.parametrize("name, label", [(n, k) for n, d in WRONG.items() for k in d])
def test_classic_wrong_answers_fail_at_least_one_case(name, label):
    assert _fails_somewhere(name, WRONG[name][label])


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
