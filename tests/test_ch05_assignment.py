"""Chapter 05 grading: the references and other right answers pass; tests/test_mistakes.py runs the wrong ones."""


import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.assignments.key.ch05_transformer_training import _attention
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
    "name, wrong",
    [("ANSWER_STEP_ORDER", "CDABE"), ("ANSWER_STEP_ORDER", "CADEB"), ("ANSWER_PARALLEL_TRAINING", "A"),
     ("ANSWER_FALLING_LOSS", "A"), ("ANSWER_LONG_INPUTS", "C")],
)
def test_wrong_quiz_answers_fail_and_right_ones_pass(name, wrong):
    assert not evaluate(name, wrong).passed
    assert evaluate(name, A.item(name).expected).passed
