"""Chapter 02's graded items: the reference passes; its listed mistakes are run by tests/test_mistakes.py."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.assignments import ch02_autoregressive as ch02
from course_utils.assessment.assignments.ch02_autoregressive import most_likely_sequence
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem
from course_utils.assessment.verdict import failing_cases
from course_utils.ngram import bigram_probabilities

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


# ---------------------------------------------------------------- the items added for practice

def _autograd_descent(tokens, v, steps, lr):
    """The learner's route: torch.optim.SGD through one_hot(previous) @ W."""
    t = torch.as_tensor(tokens).long()
    one_hot = torch.nn.functional.one_hot(t[:-1], v).double()
    w = torch.zeros(v, v, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=lr)
    for _ in range(steps):
        loss = -torch.log_softmax(one_hot @ w, 1)[torch.arange(len(t) - 1), t[1:]].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.softmax(w.detach(), 1)


def test_one_hot_times_w_is_a_row_lookup():
    w = torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    previous = torch.tensor([3, 0, 0, 4])
    assert torch.equal(torch.nn.functional.one_hot(previous, 5).double() @ w, w[previous])


@pytest.mark.parametrize("tokens, v, steps, lr", [([0, 1, 1, 2, 0, 1], 3, 5, 1.0), ([2, 2, 2, 0], 4, 7, 0.5),
                                                  ([0, 3, 1, 3, 3, 2, 0, 1, 1], 4, 40, 3.0)])
def test_the_closed_form_gradient_step_is_what_autograd_takes(tokens, v, steps, lr):
    reference = ch02.bigram_by_gradient(tokens, v, steps, lr)
    assert torch.allclose(reference, _autograd_descent(tokens, v, steps, lr), rtol=0, atol=1e-12)


def test_gradient_descent_moves_along_a_trajectory_that_ends_at_the_count_table():
    tokens = [0, 1, 1, 2, 0, 1]
    counted = bigram_probabilities(tokens, 3)
    gaps = [(ch02.bigram_by_gradient(tokens, 3, n, 2.0) - counted).abs().max().item() for n in (1, 10, 100, 3000)]
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)) and gaps[0] > 0.3 and gaps[-1] < 1e-3
    assert torch.equal(ch02.bigram_by_gradient(tokens, 3, 0, 1.0), torch.full((3, 3), 1 / 3, dtype=torch.float64))


def test_the_mle_fits_training_best_but_held_out_text_chooses_smoothing():
    train, held, ks = [0, 1, 0, 1, 0, 2, 0, 1], [0, 1, 0, 2, 2, 0, 1], [0.0, 0.01, 0.1, 1.0, 10.0]

    def score(k, tokens):
        t = torch.tensor(tokens)
        return torch.log(bigram_probabilities(train, 3, k)[t[:-1], t[1:]]).sum().item()

    train_scores = [score(k, train) for k in ks]
    assert train_scores == sorted(train_scores, reverse=True)  # k = 0, the MLE, fits the training pairs best
    assert score(0.0, held) == -math.inf  # 2 → 2 never occurs in training
    assert ch02.heldout_best_smoothing(train, held, 3, ks) == 0.1
    assert ch02.heldout_best_smoothing(train, held, 3, [1.0, 0.1, 0.1]) == 0.1  # the first of equals


def test_the_sampler_follows_its_table_and_its_seed():
    table = ch02._table()
    sample = ch02.sample_bigram(table, 1, 30_000, seed=4)
    assert sample[0] == 1 and len(sample) == 30_000 and sample == ch02.sample_bigram(table, 1, 30_000, seed=4)
    assert sample != ch02.sample_bigram(table, 1, 30_000, seed=5)
    assert (bigram_probabilities(sample, 3) - table).abs().max() < 0.02
    assert ch02.sample_bigram(table, 2, 1, seed=0) == [2]


@pytest.mark.parametrize("call, message", [
    (lambda: ch02.sample_bigram(torch.ones(2, 3) / 3, 0, 5, 0), "square"),
    (lambda: ch02.sample_bigram(ch02._table(), 3, 5, 0), "first must be a token id"),
    (lambda: ch02.sample_bigram(ch02._table(), 0, 0, 0), "n_tokens"),
    (lambda: ch02.bigram_by_gradient([1], 3, 5, 1.0), "at least 2 token ids"),
    (lambda: ch02.bigram_by_gradient([0, 1], 3, 5, 0.0), "lr"),
    (lambda: ch02.heldout_best_smoothing([0, 1], [0, 1], 2, [-1.0]), "each k in ks"),
])
def test_bad_input_to_the_new_references_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_new_items_answer_the_statements_examples():
    assert ASSIGNMENT.item("response_log_likelihood").reference([-1.2, -0.9, -0.7, -0.4], 2) == pytest.approx(-1.1)
    assert ASSIGNMENT.item("bits_from_log_probs").reference([math.log(0.25)] * 3) == pytest.approx(2.0)
