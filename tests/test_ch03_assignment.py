"""Chapter 03's graded items: the reference passes every case, and classic wrong answers fail one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.assessment import assignments
from course_utils.assessment.assignments.ch03_masked_lm import ASSIGNMENT
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem, failing_cases


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


def _decisions(u_s, u_k, rate, special, le=False, use_special=True, kept_is_random=False):
    selected = (u_s <= rate) if le else (u_s < rate)
    if use_special:
        selected = selected & ~special
    codes = torch.where(u_k < 0.8, 1, torch.where(u_k < 0.9, 2, 2 if kept_is_random else 3))
    return torch.where(selected, codes, 0).long()


def _corrupt(tokens, decisions, mask_id, random_ids, targets_only_masked=False, targets_from_inputs=False):
    inputs = tokens.clone()
    inputs[decisions == 1] = mask_id
    inputs[decisions == 2] = random_ids[decisions == 2]
    chosen = decisions == 1 if targets_only_masked else decisions > 0
    source = inputs if targets_from_inputs else tokens
    return inputs, torch.where(chosen, source, torch.full_like(tokens, -100))


def _log_softmax_naive(logits):
    return torch.log(torch.softmax(logits, -1))


def _mll(logits, targets, naive=False, include_ignored=False, mean=False):
    lp = (_log_softmax_naive(logits) if naive else torch.log_softmax(logits, -1)).reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = torch.ones_like(t, dtype=torch.bool) if include_ignored else t != -100
    vals = lp[keep, t[keep].clamp(min=0)]
    return float(vals.mean() if mean else vals.sum())


def _pll(logits, tokens, row_zero=False, all_positions=False):
    n = len(tokens)
    idx = torch.arange(n)
    lp = torch.log_softmax(logits, -1)
    if all_positions:
        return float(lp[:, idx, tokens].sum())
    rows = torch.zeros(n, dtype=torch.long) if row_zero else idx
    return float(lp[rows, idx, tokens].sum())


WRONG = {
    "masking_decisions": {
        "u_select <= rate": lambda *a: _decisions(*a, le=True),
        "masks special tokens": lambda *a: _decisions(*a, use_special=False),
        "no kept share": lambda *a: _decisions(*a, kept_is_random=True),
    },
    "corrupt_tokens": {
        "targets only at [MASK]": lambda *a: _corrupt(*a, targets_only_masked=True),
        "targets from the corrupted input": lambda *a: _corrupt(*a, targets_from_inputs=True),
    },
    "masked_log_likelihood": {
        "log of softmax": lambda lg, t: _mll(lg, t, naive=True),
        "mean instead of sum": lambda lg, t: _mll(lg, t, mean=True),
        "forgets -100": lambda lg, t: _mll(lg, t, include_ignored=True),
        "probabilities, not logs": lambda lg, t: float(
            torch.softmax(lg, -1).reshape(-1, lg.shape[-1])[
                t.reshape(-1) != -100, t.reshape(-1)[t.reshape(-1) != -100]].sum()),
    },
    "mlm_loss": {
        "sum instead of mean": lambda lg, t: float(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), t.reshape(-1),
                                                                   reduction="sum")),
        "mean over every position": lambda lg, t: -_mll(lg, t, include_ignored=True, mean=True),
        "log of softmax": lambda lg, t: -_mll(lg, t, naive=True, mean=True),
        "the objective, not the loss": lambda lg, t: _mll(lg, t, mean=True),
    },
    "pll_from_masked_logits": {
        "one copy for every position": lambda lg, x: _pll(lg, x, row_zero=True),
        "every position of every copy": lambda lg, x: _pll(lg, x, all_positions=True),
        "mean instead of sum": lambda lg, x: _pll(lg, x) / len(x),
    },
}


@pytest.mark.parametrize(("name", "label"), [(n, w) for n, ws in WRONG.items() for w in ws])
def test_classic_mistakes_fail_a_case(name, label):
    assert _fails_somewhere(name, WRONG[name][label]), f"{name}: '{label}' passes every case"


def test_every_function_item_has_mistakes_listed():
    functions = {i.name for i in ASSIGNMENT.items if isinstance(i, FunctionItem)}
    assert functions == set(WRONG)


def test_placeholder_reads_as_not_implemented():
    def placeholder(*args):
        raise NotImplementedError("Replace this line with your code.")

    for item in ASSIGNMENT.items:
        if isinstance(item, FunctionItem):
            fb = evaluate(item.name, placeholder)
            assert not fb.passed and "not implemented yet" in fb.message
