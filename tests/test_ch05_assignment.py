"""Chapter 05 grading: hidden cases catch a wrong mask, a missing scale or shift, and stale gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import call_case, expected_outcome, judge

A = assignments.load("05")


def _failures(name, fn, hidden=True):
    """Indices of the cases (public first, then hidden) where `fn` disagrees with the reference."""
    item = A.item(name)
    bad = []
    for i, case in enumerate(item.cases(hidden)):
        args = case.build()
        out = call_case(fn, args)
        if out.error or judge(expected_outcome(item, args), out.value, item.rtol, item.atol):
            bad.append(i)
    return bad


def _attention(q, k, v, mask_fn=torch.tril, scale=True):
    t = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    allowed = mask_fn(torch.ones(t, t, dtype=torch.bool))
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


def test_every_reference_passes_its_own_cases():
    for item in A.items:
        if hasattr(item, "reference"):
            assert _failures(item.name, item.reference) == []


def test_the_assignment_has_the_seed_quiz_items_and_three_implementations():
    names = [item.name for item in A.items]
    for quiz in ("ANSWER_STEP_ORDER", "ANSWER_PARALLEL_TRAINING", "ANSWER_FALLING_LOSS", "ANSWER_LONG_INPUTS"):
        assert quiz in names
    for impl in ("causal_mask", "causal_attention", "next_token_loss", "training_steps"):
        assert impl in names
    assert len(names) >= 6


def test_a_hand_written_causal_attention_passes():
    assert _failures("causal_attention", _attention) == []


@pytest.mark.parametrize(
    "wrong",
    [
        lambda q, k, v: _attention(q, k, v, mask_fn=torch.triu),  # attends to the future
        lambda q, k, v: _attention(q, k, v, mask_fn=lambda m: m),  # no mask at all
        lambda q, k, v: _attention(q, k, v, scale=False),  # forgets 1/√d
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v),  # library call without is_causal
    ],
)
def test_wrong_attention_fails(wrong):
    assert _failures("causal_attention", wrong)
    assert not evaluate("causal_attention", wrong).passed


def test_wrong_masks_fail():
    assert _failures("causal_mask", lambda t: torch.ones(t, t, dtype=torch.bool).triu())
    assert _failures("causal_mask", lambda t: torch.ones(t, t).tril())  # floats, not booleans
    assert _failures("causal_mask", lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1))  # not itself


@pytest.mark.parametrize(
    "wrong",
    [
        lambda z, y: float(F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))),  # no shift
        lambda z, y: float(F.cross_entropy(z[:, 1:].reshape(-1, z.shape[-1]), y[:, :-1].reshape(-1))),  # backwards
        lambda z, y: float(F.cross_entropy(z[:, :-1].reshape(-1, z.shape[-1]), y[:, 1:].reshape(-1),
                                           reduction="sum")),  # sum, not mean
        lambda z, y: float(F.cross_entropy(z[:, :-1].transpose(0, 1).reshape(-1, z.shape[-1]),
                                           y[:, 1:].reshape(-1))),  # rows and targets misaligned
    ],
)
def test_wrong_next_token_losses_fail(wrong):
    assert _failures("next_token_loss", wrong)


def _steps_without_zero_grad(model, batches, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for x, y in batches:
        loss = model.loss(x, y)
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def _steps_zeroing_between_backward_and_step(model, batches, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for x, y in batches:
        loss = model.loss(x, y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        out.append(loss.item())
    return out


def _steps_with_a_new_loss_after_the_update(model, batches, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for x, y in batches:
        model.loss(x, y).backward()
        optimizer.step()
        optimizer.zero_grad()
        out.append(model.loss(x, y).item())  # the loss after the update, not the one trained on
    return out


def test_a_correct_loop_with_zeroing_first_passes():
    def zero_first(model, batches, lr):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        out = []
        for x, y in batches:
            optimizer.zero_grad()
            loss = model.loss(x, y)
            loss.backward()
            optimizer.step()
            out.append(loss.item())
        return out

    assert _failures("training_steps", zero_first) == []


@pytest.mark.parametrize(
    "wrong", [_steps_without_zero_grad, _steps_zeroing_between_backward_and_step,
              _steps_with_a_new_loss_after_the_update],
)
def test_wrong_training_loops_fail(wrong):
    assert _failures("training_steps", wrong)


def test_stale_gradients_already_fail_the_public_case():
    # Its three steps make a missing zero_grad visible at the third loss, so the learner sees it.
    assert 0 in _failures("training_steps", _steps_without_zero_grad, hidden=False)


@pytest.mark.parametrize(
    "name, wrong",
    [("ANSWER_STEP_ORDER", "CDABE"), ("ANSWER_STEP_ORDER", "ECADB"), ("ANSWER_PARALLEL_TRAINING", "A"),
     ("ANSWER_FALLING_LOSS", "A"), ("ANSWER_LONG_INPUTS", "C")],
)
def test_wrong_quiz_answers_fail_and_right_ones_pass(name, wrong):
    assert not evaluate(name, wrong).passed
    assert evaluate(name, A.item(name).expected).passed
