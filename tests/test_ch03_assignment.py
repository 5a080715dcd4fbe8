"""Chapter 03's graded items: the reference passes every case; tests/test_mistakes.py runs their mistakes."""

from __future__ import annotations

import math

import pytest
import torch.nn.functional as F

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem
from course_utils.assessment.verdict import failing_cases

ASSIGNMENT = assignments.load("03")  # the public part with the instructor key attached


def _fails_somewhere(name, fn) -> bool:
    return bool(failing_cases(ASSIGNMENT.item(name), fn))


def test_loaded_by_number_with_enough_items():
    assert assignments.load("03") is ASSIGNMENT and len(ASSIGNMENT.items) >= 6


@pytest.mark.parametrize("item", [i for i in ASSIGNMENT.items if isinstance(i, FunctionItem)],
                         ids=lambda i: i.name)
def test_reference_passes_every_case(item):
    assert not _fails_somewhere(item.name, item.reference)
    assert evaluate(item.name, item.reference).passed


@pytest.mark.parametrize("item", [i for i in ASSIGNMENT.items if isinstance(i, AnswerItem)],
                         ids=lambda i: i.name)
def test_answer_items_accept_only_the_expected_answer(item):
    assert evaluate(item.name, item.expected).passed
    wrong = [c for c in item.choices if c != item.expected] or [-item.expected, math.log10(0.7), 0.7]
    for w in wrong:
        assert not evaluate(item.name, w).passed, w


def test_worked_example_accepts_the_rounded_value():
    assert evaluate("ANSWER_BROWN_LOG_PROB", -0.357).passed
    assert not evaluate("ANSWER_BROWN_LOG_PROB", 0.357).passed  # the loss, not the contribution


def test_mlm_loss_skips_the_padding_id_it_is_given():
    def default_ignore(logits, targets, ignore_index):
        return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)))

    fb = evaluate("mlm_loss", default_ignore)
    assert not fb.passed and fb.message.startswith("❌ mlm_loss: case 2, mlm_loss(tensor of shape (6, 5), tensor")
    assert _fails_somewhere("mlm_loss", default_ignore)
    case = ASSIGNMENT.item("mlm_loss").public[1].build()
    assert case[2] == 0 and (case[1] == 0).any() and (case[1] != 0).any()  # padding id 0, some targets


def test_placeholder_reads_as_not_implemented():
    def placeholder(*args):
        raise NotImplementedError("Replace this line with your code.")

    for item in ASSIGNMENT.items:
        if isinstance(item, FunctionItem):
            fb = evaluate(item.name, placeholder)
            assert not fb.passed and "not implemented yet" in fb.message


def test_loss_by_kind_matches_the_lesson_tool_and_rejects_one_mean_for_all_kinds():
    import torch

    from course_utils import mlm
    from course_utils.assessment.assignments.ch03_masked_lm import loss_by_kind_values

    x = torch.randint(1, 9, (20, 40), generator=torch.Generator().manual_seed(0))
    inputs, targets = mlm.mask_tokens(x, 0, 9, torch.Generator().manual_seed(1), rate=0.5)
    logits = torch.randn(20, 40, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    parts = mlm.loss_by_kind(logits, inputs, targets, 0)
    assert all(p.count > 10 for p in parts.values())
    assert loss_by_kind_values(logits, inputs, targets, 0) == tuple(p.loss for p in parts.values())
    assert loss_by_kind_values(*ASSIGNMENT.item("loss_by_kind").public[0].build()) == pytest.approx(
        (-math.log(0.5), -math.log(0.2), -math.log(0.6)), rel=1e-12)

    def one_mean(logits, inputs, targets, mask_id):
        return (float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))),) * 3

    fb = evaluate("loss_by_kind", one_mean)
    assert not fb.passed and fb.message.startswith("❌ loss_by_kind: case 1")
