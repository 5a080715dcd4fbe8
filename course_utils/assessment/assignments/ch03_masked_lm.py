"""Chapter 03 assignment: masked language modelling objectives."""

from __future__ import annotations

import torch

from ...mlm import (
    apply_plan,
    decisions_from_uniforms,
    loss_by_kind,
    masked_log_likelihood,
    mlm_loss,
    pll_from_masked_logits,
)
from ..items import NUMBER, AnswerItem, Assignment, Case, FunctionItem


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


def loss_by_kind_values(logits, inputs, targets, mask_id) -> tuple[float, float, float]:
    """Mean loss at the [MASK], random and kept positions (what the input shows there), as three floats."""
    parts = loss_by_kind(torch.as_tensor(logits), torch.as_tensor(inputs).long(), torch.as_tensor(targets).long(),
                         int(mask_id))
    return tuple(part.loss for part in parts.values())


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


def _kinds_case(shape: tuple[int, ...], vocab: int, seed: int, scale: float = 2.0, copy: float = 0.0):
    """(logits, inputs, targets, mask_id = 0) with every kind present; `copy` adds a pull towards the visible token."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, shape, generator=g)
    plan = torch.randint(0, 4, shape, generator=g)  # 0 untouched, 1 [MASK], 2 random, 3 kept
    plan.view(-1)[:4] = torch.arange(4)
    random_ids = (tokens + torch.randint(1, vocab - 1, shape, generator=g) - 1) % (vocab - 1) + 1  # never the original
    masked = apply_plan(tokens, plan, 0, random_ids)
    logits = scale * torch.randn(*shape, vocab, generator=g, dtype=torch.float64)
    logits = logits + copy * torch.nn.functional.one_hot(masked.inputs, vocab).double()
    return logits, masked.inputs, masked.targets, 0


# position 0 not predicted; 1 [MASK] (target 2); 2 random (shows 5, target 3); 3 kept (shows its target 2)
_SMALL_KINDS = (torch.log(torch.tensor([[0.1, 0.6, 0.1, 0.1, 0.05, 0.05], [0.1, 0.2, 0.5, 0.1, 0.05, 0.05],
                                        [0.05, 0.05, 0.1, 0.2, 0.1, 0.5], [0.1, 0.1, 0.6, 0.1, 0.05, 0.05]],
                                       dtype=torch.float64)),
                torch.tensor([4, 0, 5, 2]), torch.tensor([-100, 2, 3, 2]), 0)


_BROWN = (torch.log(torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)), torch.tensor([0]))
_HUGE = (torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([2, -100]))


PUBLIC = Assignment(
    key="03_masked_lm",
    title="Masked language modelling objectives",
    items=(
        AnswerItem(
            name="ANSWER_BROWN_LOG_PROB", points=1, form=NUMBER,
            hint="the masked token's contribution to the objective is log P(original token | masked input): "
                 "natural log, and negative.",
        ),
        AnswerItem(
            name="ANSWER_BEST_MASK_PREDICTION", points=1, choices=("A", "B", "C", "D"),
            hint="only the probability of the original token at the masked position enters the objective.",
        ),
        AnswerItem(
            name="ANSWER_INNER_SUM", points=1, choices=("A", "B", "C", "D"),
            hint="the inner sum runs over the masked positions i ∈ A(x) of one sequence x.",
        ),
        FunctionItem(
            name="masking_decisions", points=2, reference=masking_decisions,
            public=(Case((torch.tensor([0.05, 0.05, 0.05, 0.60, 0.10]), torch.tensor([0.30, 0.85, 0.95, 0.10, 0.50]),
                          0.15, torch.tensor([False, False, False, False, True]))),
                    # boundaries: u_select == rate is not selected; u_kind == 0.8 is random, == 0.9 kept
                    Case((torch.tensor([0.15, 0.1, 0.1, 0.1]), torch.tensor([0.1, 0.8, 0.9, 0.0]), 0.15,
                          torch.zeros(4, dtype=torch.bool)))),
            hint="selected = (u_select < rate) and not special; then [MASK] if u_kind < 0.8, random if "
                 "u_kind < 0.9, else kept; code 0 where not selected.",
        ),
        FunctionItem(
            name="corrupt_tokens", points=2, reference=corrupt_tokens,
            public=(Case((torch.tensor([5, 6, 7, 8, 9]), torch.tensor([0, 1, 2, 3, 0]), 0,
                          torch.tensor([11, 12, 13, 14, 15]))),),
            hint="targets hold the ORIGINAL token at every selected position (codes 1, 2 and 3, kept ones "
                 "too) and -100 elsewhere; do not change the tokens tensor you were given.",
        ),
        FunctionItem(
            name="masked_log_likelihood", points=2, reference=masked_log_likelihood_value,
            public=(Case(_BROWN), Case(lambda: _logits((6,), 5, 51, masked_share=0.5)), Case(_HUGE)),
            rtol=1e-5, atol=1e-6,
            hint="log-softmax over the last dimension, pick the target's entry at positions whose target is "
                 "not -100, and sum; torch.log_softmax stays finite where log(softmax(...)) does not.",
            non_finite_hint="log(softmax(...)) breaks down for logits 2000 apart: the softmax rounds the "
                            "unlikely token's probability to 0 and log 0 = -inf. Use torch.log_softmax.",
        ),
        FunctionItem(
            name="mlm_loss", points=2, reference=mlm_loss_value,
            # the padding id is an ordinary token id in most cases, so PyTorch's default -100 does not skip it
            public=(Case(_BROWN + (-100,)), Case(lambda: _padded_logits((6,), 5, 61, pad=0)), Case(_HUGE + (-100,))),
            rtol=1e-5, atol=1e-6,
            hint="F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index) averages "
                 "over the predicted positions only; pass the ignore_index you are given (PyTorch's default is "
                 "-100).",
            non_finite_hint="log(softmax(...)) breaks down for logits 2000 apart: use F.cross_entropy, which "
                            "works from the logits with a stable log-softmax.",
        ),
        FunctionItem(
            name="loss_by_kind", points=2, reference=loss_by_kind_values,
            public=(Case(_SMALL_KINDS), Case(lambda: _kinds_case((4, 10), 7, 81, copy=4.0))),
            rtol=1e-5, atol=1e-6,
            hint="a predicted position (target != -100) is [MASK] where the input is mask_id, kept where the input "
                 "equals the target, random otherwise; return the MEAN loss -log softmax(logits)[target] over each "
                 "kind's positions separately: ([MASK], random, kept).",
            non_finite_hint="log(softmax(...)) breaks down for large logits: use torch.log_softmax.",
        ),
        AnswerItem(
            name="ANSWER_WHY_80_10_10", points=1, choices=("A", "B", "C", "D"),
            hint="think of what a model trained only on [MASK] positions has never been asked to do, and what "
                 "its input looks like once it is used on real text.",
        ),
        FunctionItem(
            name="pll_from_masked_logits", points=2, reference=pll_from_masked_logits,
            public=(Case(lambda: _pll_case(3, 4, 71)),),
            rtol=1e-5, atol=1e-6,
            hint="from row i (the copy with position i masked) use only position i: "
                 "Σ_i log_softmax(logits[i, i])[tokens[i]].",
        ),
        AnswerItem(
            name="ANSWER_PLL_NOT_LIKELIHOOD", points=1, choices=("A", "B", "C", "D"),
            hint="each term conditions on every other token, so the terms do not come from one "
                 "chain-rule factorisation of Pr(x).",
        ),
    ),
)
