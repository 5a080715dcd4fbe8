"""Instructor key for chapter 03: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ....mlm import (
    decisions_from_uniforms,
)
from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch03_masked_lm import _kinds_case, _logits, _padded_logits, _pll_case


def _uniforms(shape: tuple[int, ...], seed: int, rate: float, special_share: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    u_select = torch.rand(shape, generator=g, dtype=torch.float64)
    u_kind = torch.rand(shape, generator=g, dtype=torch.float64)
    special = torch.rand(shape, generator=g) < special_share
    return u_select, u_kind, rate, special


def _tokens_and_plan(shape: tuple[int, ...], seed: int, rate: float = 0.4):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 20, shape, generator=g)
    plan = decisions_from_uniforms(torch.rand(shape, generator=g, dtype=torch.float64),
                                   torch.rand(shape, generator=g, dtype=torch.float64), rate,
                                   torch.ones(shape, dtype=torch.bool))
    random_ids = torch.randint(3, 20, shape, generator=g)
    return tokens, plan, 0, random_ids


_NOTHING = (torch.zeros(2, 4, dtype=torch.float64), torch.tensor([-100, -100]))


def _decisions(u_s, u_k, rate, special, le=False, use_special=True, kept_is_random=False) -> torch.Tensor:
    selected = (u_s <= rate) if le else (u_s < rate)
    if use_special:
        selected = selected & ~special
    codes = torch.where(u_k < 0.8, 1, torch.where(u_k < 0.9, 2, 2 if kept_is_random else 3))
    return torch.where(selected, codes, 0).long()


def _corrupt(tokens, decisions, mask_id, random_ids, only_masked=False, from_inputs=False) -> tuple:
    inputs = tokens.clone()
    inputs[decisions == 1] = mask_id
    inputs[decisions == 2] = random_ids[decisions == 2]
    chosen = decisions == 1 if only_masked else decisions > 0
    return inputs, torch.where(chosen, inputs if from_inputs else tokens, torch.full_like(tokens, -100))


def _picked(logits, targets, ignore=-100, naive=False, everywhere=False, probs=False) -> torch.Tensor:
    """The target's log-probability (or probability) at the predicted positions, or at every position."""
    v = logits.shape[-1]
    lp = torch.log(torch.softmax(logits, -1)) if naive else torch.log_softmax(logits, -1)
    lp = lp.exp() if probs else lp
    flat, t = lp.reshape(-1, v), targets.reshape(-1)
    keep = torch.ones_like(t, dtype=torch.bool) if everywhere else t != ignore
    return flat[keep, t[keep].clamp(0, v - 1)]


def _by_kind(logits, inputs, targets, mask_id, swapped=False, one_mean=False, share=False, total=False) -> tuple:
    """Mean (or, wrongly, other) losses at the [MASK], random and kept positions."""
    nll = -torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    predicted = targets != -100
    shown = (inputs == targets) if not swapped else (inputs != targets)
    kinds = (predicted & (inputs == mask_id), predicted & (inputs != mask_id) & ~shown,
             predicted & (inputs != mask_id) & shown)
    if one_mean:
        return (float(nll[predicted].mean()),) * 3
    if share:
        return tuple(float(nll[k].sum() / predicted.sum()) for k in kinds)
    return tuple(float(nll[k].sum() if total else nll[k].mean()) for k in kinds)


def _pll(logits, tokens, row_zero=False, all_positions=False) -> float:
    n = len(tokens)
    idx = torch.arange(n)
    lp = torch.log_softmax(logits, -1)
    if all_positions:
        return float(lp[:, idx, tokens].sum())
    rows = torch.zeros(n, dtype=torch.long) if row_zero else idx
    return float(lp[rows, idx, tokens].sum())


KEY = {
    "ANSWER_BROWN_LOG_PROB": AnswerKey(
        expected=math.log(0.7),
        atol=1e-3,
    ),
    "ANSWER_BEST_MASK_PREDICTION": AnswerKey(
        expected="B",
        why_not=(("A", "A puts 0.40 on the original token 'jumps' (log 0.40 ≈ -0.92); its 0.50 on 'runs' "
                       "earns nothing."),
                 ("C", "C puts only 0.05 on the original token 'jumps' (log 0.05 ≈ -3.0); confidence in "
                       "another token earns nothing."),
                 ("D", "D spreads its probability evenly: log 0.34 ≈ -1.08 on the original token.")),
    ),
    "ANSWER_INNER_SUM": AnswerKey(
        expected="B",
        why_not=(("A", "the inner sum covers one sequence; the sum over the data set is the outer one (and "
                       "it is a log-likelihood, which is maximised, not a loss)."),
                 ("C", "only the masked positions i ∈ A(x) add a term, each conditioned on the masked x̄; "
                       "the other positions add nothing."),
                 ("D", "each term is a log-probability, not a count weighted by a probability.")),
    ),
    "masking_decisions": FunctionKey(
        hidden=(Case(lambda: _uniforms((6, 40), 31, 0.15)),
                Case(lambda: _uniforms((300,), 32, 0.5, special_share=0.0)),
                Case(lambda: _uniforms((3, 5), 33, 1.0, special_share=0.0))),
        mistakes=(
            Mistake("masks special tokens too", lambda *a: _decisions(*a, use_special=False), pitfall=True),
            Mistake("u_select <= rate selects the boundary", lambda *a: _decisions(*a, le=True)),
            Mistake("no kept share (random from 0.8 up)", lambda *a: _decisions(*a, kept_is_random=True)),
        ),
    ),
    "corrupt_tokens": FunctionKey(
        hidden=(Case(lambda: _tokens_and_plan((4, 30), 41)),
                Case((torch.tensor([4, 4, 4]), torch.zeros(3, dtype=torch.long), 1, torch.tensor([7, 7, 7]))),
                Case(lambda: _tokens_and_plan((50,), 42, rate=1.0))),
        mistakes=(
            Mistake("targets only at [MASK] positions", lambda *a: _corrupt(*a, only_masked=True), pitfall=True),
            Mistake("targets taken from the corrupted input", lambda *a: _corrupt(*a, from_inputs=True)),
        ),
    ),
    "masked_log_likelihood": FunctionKey(
        hidden=(Case(lambda: _logits((3, 8), 11, 52)), Case(_NOTHING),
                Case(lambda: _logits((2, 5), 7, 53, scale=30.0))),
        mistakes=(
            Mistake("log of softmax", lambda lg, t: float(_picked(lg, t, naive=True).sum()), pitfall=True),
            Mistake("mean instead of sum", lambda lg, t: float(_picked(lg, t).mean())),
            Mistake("counts the -100 positions too", lambda lg, t: float(_picked(lg, t, everywhere=True).sum())),
            Mistake("probabilities, not log-probabilities", lambda lg, t: float(_picked(lg, t, probs=True).sum())),
        ),
    ),
    "mlm_loss": FunctionKey(
        hidden=(Case(lambda: _padded_logits((3, 8), 11, 62, pad=3)),
                Case(lambda: _padded_logits((4, 16), 9, 63, pad=-1, masked_share=0.1)),
                Case(lambda: _logits((2, 6), 7, 64) + (-100,))),
        mistakes=(
            Mistake("uses PyTorch's default ignore_index (-100)", lambda lg, t, ii: float(F.cross_entropy(
                lg.reshape(-1, lg.shape[-1]), t.reshape(-1))), pitfall=True),
            Mistake("sum instead of mean", lambda lg, t, ii: float(F.cross_entropy(
                lg.reshape(-1, lg.shape[-1]), t.reshape(-1), ignore_index=ii, reduction="sum"))),
            Mistake("mean over every position", lambda lg, t, ii: -float(
                _picked(lg, t, ii, everywhere=True).mean())),
            Mistake("log of softmax", lambda lg, t, ii: -float(_picked(lg, t, ii, naive=True).mean())),
            Mistake("the objective, not the loss", lambda lg, t, ii: float(_picked(lg, t, ii).mean())),
        ),
    ),
    "loss_by_kind": FunctionKey(
        hidden=(Case(lambda: _kinds_case((6, 20), 11, 82)), Case(lambda: _kinds_case((40,), 5, 83, scale=30.0)),
                Case(lambda: _kinds_case((3, 8), 9, 84, copy=8.0))),
        mistakes=(
            Mistake("one mean over every predicted position", lambda *a: _by_kind(*a, one_mean=True), pitfall=True),
            Mistake("random and kept swapped", lambda *a: _by_kind(*a, swapped=True)),
            Mistake("each kind's sum divided by every predicted position", lambda *a: _by_kind(*a, share=True)),
            Mistake("sum per kind, not the mean", lambda *a: _by_kind(*a, total=True)),
        ),
    ),
    "ANSWER_WHY_80_10_10": AnswerKey(
        expected="B",
        why_not=(("A", "a larger loss is no aim in itself, and the random share is only 10 %; what matters is which "
                       "positions are ever targets: without random and kept ones, no target shows a real token."),
                 ("C", "copying alone is trivial and would be punished at the random positions; the kept share is "
                       "there so that the output at a visible token is trained at all, not to make copying the goal."),
                 ("D", "no masking scheme makes the MLM objective a sequence likelihood: it stays a sum of "
                       "conditionals given a corrupted input.")),
    ),
    "pll_from_masked_logits": FunctionKey(
        hidden=(Case(lambda: _pll_case(8, 12, 72)), Case(lambda: _pll_case(1, 3, 73)),
                Case(lambda: _pll_case(5, 6, 74, scale=40.0))),
        mistakes=(
            Mistake("every position of every copy", lambda lg, x: _pll(lg, x, all_positions=True), pitfall=True),
            Mistake("one copy for every position", lambda lg, x: _pll(lg, x, row_zero=True)),
            Mistake("mean instead of sum", lambda lg, x: _pll(lg, x) / len(x)),
        ),
    ),
    "ANSWER_PLL_NOT_LIKELIHOOD": AnswerKey(
        expected="C",
        why_not=(("A", "a causal term conditions on the prefix, a PLL term on every other token: different "
                       "conditionals, and their sums differ."),
                 ("B", "the PLL is not the log-probability of the sentence under any distribution, so it says "
                       "nothing about how much probability a model gives; nor is it always larger."),
                 ("D", "the PLL needs one forward pass per position: each copy masks a different position.")),
    ),
}
