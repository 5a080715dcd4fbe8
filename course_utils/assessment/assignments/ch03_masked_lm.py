"""Chapter 03 assignment: masked language modelling objectives."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...mlm import (
    apply_plan,
    decisions_from_uniforms,
    masked_log_likelihood,
    mlm_loss,
    pll_from_masked_logits,
)
from ..items import AnswerItem, Assignment, Case, FunctionItem, Mistake


def masking_decisions(u_select, u_kind, rate, special) -> torch.Tensor:
    """Codes 0 (untouched), 1 ([MASK]), 2 (random), 3 (kept) from two uniform numbers per position."""
    u_s, u_k = torch.as_tensor(u_select), torch.as_tensor(u_kind)
    return decisions_from_uniforms(u_s, u_k, float(rate), ~torch.as_tensor(special).bool())


def corrupt_tokens(tokens, decisions, mask_id, random_ids) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted input, targets with -100 where nothing is predicted) from a plan of codes."""
    x = torch.as_tensor(tokens).long()
    masked = apply_plan(x, torch.as_tensor(decisions).long(), int(mask_id), torch.as_tensor(random_ids).long())
    return masked.inputs, masked.targets


def masked_log_likelihood_value(logits, targets) -> float:
    """Σ over masked positions of log Pr(original token | corrupted input), as a float."""
    return float(masked_log_likelihood(torch.as_tensor(logits), torch.as_tensor(targets)))


def mlm_loss_value(logits, targets, ignore_index) -> float:
    """Mean cross-entropy over the positions whose target is not `ignore_index`, as a float."""
    return float(mlm_loss(torch.as_tensor(logits), torch.as_tensor(targets), int(ignore_index)))


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


def _logits(shape: tuple[int, ...], vocab: int, seed: int, masked_share: float = 0.3, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(*shape, vocab, generator=g, dtype=torch.float64)
    targets = torch.randint(vocab, shape, generator=g)
    keep = torch.rand(shape, generator=g) < masked_share
    keep.view(-1)[0] = True  # at least one masked position
    return logits, targets.masked_fill(~keep, -100)


def _padded_logits(shape: tuple[int, ...], vocab: int, seed: int, pad: int, masked_share: float = 0.5):
    """(logits, targets, pad): targets hold `pad` where nothing is predicted, and other ids where something is."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(*shape, vocab, generator=g, dtype=torch.float64)
    targets = torch.randint(vocab, shape, generator=g)
    targets = torch.where(targets == pad, (targets + 1) % vocab, targets)
    keep = torch.rand(shape, generator=g) < masked_share
    keep.view(-1)[0] = True  # at least one predicted position
    return logits, targets.masked_fill(~keep, pad), pad


def _pll_case(n: int, vocab: int, seed: int, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, n, vocab, generator=g, dtype=torch.float64), torch.randint(vocab, (n,), generator=g))


_BROWN = (torch.log(torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)), torch.tensor([0]))
_HUGE = (torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([2, -100]))
_NOTHING = (torch.zeros(2, 4, dtype=torch.float64), torch.tensor([-100, -100]))


# ---------------------------------------------------------------- the mistakes each item must reject

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


def _pll(logits, tokens, row_zero=False, all_positions=False) -> float:
    n = len(tokens)
    idx = torch.arange(n)
    lp = torch.log_softmax(logits, -1)
    if all_positions:
        return float(lp[:, idx, tokens].sum())
    rows = torch.zeros(n, dtype=torch.long) if row_zero else idx
    return float(lp[rows, idx, tokens].sum())


ASSIGNMENT = Assignment(
    key="03_masked_lm",
    title="Masked language modelling objectives",
    items=(
        AnswerItem(
            name="ANSWER_BROWN_LOG_PROB", points=1, expected=math.log(0.7), atol=1e-3,
            hint="the masked token's contribution to the objective is log P(original token | masked input): "
                 "natural log, and negative.",
        ),
        AnswerItem(
            name="ANSWER_BEST_MASK_PREDICTION", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="only the probability of the original token at the masked position enters the objective.",
            why_not=(("A", "A puts 0.40 on the original token 'jumps' (log 0.40 ≈ -0.92); its 0.50 on 'runs' "
                           "earns nothing."),
                     ("C", "C puts only 0.05 on the original token 'jumps' (log 0.05 ≈ -3.0); confidence in "
                           "another token earns nothing."),
                     ("D", "D spreads its probability evenly: log 0.34 ≈ -1.08 on the original token.")),
        ),
        AnswerItem(
            name="ANSWER_INNER_SUM", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="the inner sum runs over the masked positions i ∈ A(x) of one sequence x.",
            why_not=(("A", "the inner sum covers one sequence; the sum over the data set is the outer one (and "
                           "it is a log-likelihood, which is maximised, not a loss)."),
                     ("C", "only the masked positions i ∈ A(x) add a term, each conditioned on the masked x̄; "
                           "the other positions add nothing."),
                     ("D", "each term is a log-probability, not a count weighted by a probability.")),
        ),
        FunctionItem(
            name="masking_decisions", points=2, reference=masking_decisions,
            public=(Case((torch.tensor([0.05, 0.05, 0.05, 0.60, 0.10]), torch.tensor([0.30, 0.85, 0.95, 0.10, 0.50]),
                          0.15, torch.tensor([False, False, False, False, True]))),
                    # boundaries: u_select == rate is not selected; u_kind == 0.8 is random, == 0.9 kept
                    Case((torch.tensor([0.15, 0.1, 0.1, 0.1]), torch.tensor([0.1, 0.8, 0.9, 0.0]), 0.15,
                          torch.zeros(4, dtype=torch.bool)))),
            hidden=(Case(lambda: _uniforms((6, 40), 31, 0.15)),
                    Case(lambda: _uniforms((300,), 32, 0.5, special_share=0.0)),
                    Case(lambda: _uniforms((3, 5), 33, 1.0, special_share=0.0))),
            hint="selected = (u_select < rate) and not special; then [MASK] if u_kind < 0.8, random if "
                 "u_kind < 0.9, else kept; code 0 where not selected.",
            mistakes=(
                Mistake("masks special tokens too", lambda *a: _decisions(*a, use_special=False), pitfall=True),
                Mistake("u_select <= rate selects the boundary", lambda *a: _decisions(*a, le=True)),
                Mistake("no kept share (random from 0.8 up)", lambda *a: _decisions(*a, kept_is_random=True)),
            ),
        ),
        FunctionItem(
            name="corrupt_tokens", points=2, reference=corrupt_tokens,
            public=(Case((torch.tensor([5, 6, 7, 8, 9]), torch.tensor([0, 1, 2, 3, 0]), 0,
                          torch.tensor([11, 12, 13, 14, 15]))),),
            hidden=(Case(lambda: _tokens_and_plan((4, 30), 41)),
                    Case((torch.tensor([4, 4, 4]), torch.zeros(3, dtype=torch.long), 1, torch.tensor([7, 7, 7]))),
                    Case(lambda: _tokens_and_plan((50,), 42, rate=1.0))),
            hint="targets hold the ORIGINAL token at every selected position (codes 1, 2 and 3, kept ones "
                 "too) and -100 elsewhere; do not change the tokens tensor you were given.",
            mistakes=(
                Mistake("targets only at [MASK] positions", lambda *a: _corrupt(*a, only_masked=True), pitfall=True),
                Mistake("targets taken from the corrupted input", lambda *a: _corrupt(*a, from_inputs=True)),
            ),
        ),
        FunctionItem(
            name="masked_log_likelihood", points=2, reference=masked_log_likelihood_value,
            public=(Case(_BROWN), Case(lambda: _logits((6,), 5, 51, masked_share=0.5)), Case(_HUGE)),
            hidden=(Case(lambda: _logits((3, 8), 11, 52)), Case(_NOTHING),
                    Case(lambda: _logits((2, 5), 7, 53, scale=30.0))),
            rtol=1e-5, atol=1e-6,
            hint="log-softmax over the last dimension, pick the target's entry at positions whose target is "
                 "not -100, and sum; torch.log_softmax stays finite where log(softmax(...)) does not.",
            non_finite_hint="log(softmax(...)) breaks down for logits 2000 apart: the softmax rounds the "
                            "unlikely token's probability to 0 and log 0 = -inf. Use torch.log_softmax.",
            mistakes=(
                Mistake("log of softmax", lambda lg, t: float(_picked(lg, t, naive=True).sum()), pitfall=True),
                Mistake("mean instead of sum", lambda lg, t: float(_picked(lg, t).mean())),
                Mistake("counts the -100 positions too", lambda lg, t: float(_picked(lg, t, everywhere=True).sum())),
                Mistake("probabilities, not log-probabilities", lambda lg, t: float(_picked(lg, t, probs=True).sum())),
            ),
        ),
        FunctionItem(
            name="mlm_loss", points=2, reference=mlm_loss_value,
            # the padding id is an ordinary token id in most cases, so PyTorch's default -100 does not skip it
            public=(Case(_BROWN + (-100,)), Case(lambda: _padded_logits((6,), 5, 61, pad=0)), Case(_HUGE + (-100,))),
            hidden=(Case(lambda: _padded_logits((3, 8), 11, 62, pad=3)),
                    Case(lambda: _padded_logits((4, 16), 9, 63, pad=-1, masked_share=0.1)),
                    Case(lambda: _logits((2, 6), 7, 64) + (-100,))),
            rtol=1e-5, atol=1e-6,
            hint="F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index) averages "
                 "over the predicted positions only; pass the ignore_index you are given (PyTorch's default is "
                 "-100).",
            non_finite_hint="log(softmax(...)) breaks down for logits 2000 apart: use F.cross_entropy, which "
                            "works from the logits with a stable log-softmax.",
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
        FunctionItem(
            name="pll_from_masked_logits", points=2, reference=pll_from_masked_logits,
            public=(Case(lambda: _pll_case(3, 4, 71)),),
            hidden=(Case(lambda: _pll_case(8, 12, 72)), Case(lambda: _pll_case(1, 3, 73)),
                    Case(lambda: _pll_case(5, 6, 74, scale=40.0))),
            rtol=1e-5, atol=1e-6,
            hint="from row i (the copy with position i masked) use only position i: "
                 "Σ_i log_softmax(logits[i, i])[tokens[i]].",
            mistakes=(
                Mistake("every position of every copy", lambda lg, x: _pll(lg, x, all_positions=True), pitfall=True),
                Mistake("one copy for every position", lambda lg, x: _pll(lg, x, row_zero=True)),
                Mistake("mean instead of sum", lambda lg, x: _pll(lg, x) / len(x)),
            ),
        ),
        AnswerItem(
            name="ANSWER_PLL_NOT_LIKELIHOOD", points=1, expected="C", choices=("A", "B", "C", "D"),
            hint="each term conditions on every other token, so the terms do not come from one "
                 "chain-rule factorisation of Pr(x).",
            why_not=(("A", "a causal term conditions on the prefix, a PLL term on every other token: different "
                           "conditionals, and their sums differ."),
                     ("B", "the PLL is not the log-probability of the sentence under any distribution, so it says "
                           "nothing about how much probability a model gives; nor is it always larger."),
                     ("D", "the PLL needs one forward pass per position: each copy masks a different position.")),
        ),
    ),
)
