"""Instructor key for chapter 04: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch04_cross_entropy import _logits, _padded


def _naive_log_probs(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z)
    return torch.log(e / e.sum(dim=-1, keepdim=True))


def _log_of_softmax(z: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.softmax(z, dim=-1))


def _target(log_p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def _smoothed(z, y, eps, log_p=None, others=False, total=False) -> float:
    log_p = torch.log_softmax(z, -1) if log_p is None else log_p
    v = z.shape[-1]
    if others:  # 1 - ε on the target, ε / (V - 1) on every other token
        q = torch.full_like(z, eps / (v - 1)).scatter_(1, y[:, None], 1 - eps)
        return float(-(q * log_p).sum(-1).mean())
    spread = log_p.sum(-1) if total else log_p.mean(-1)
    return float(((1 - eps) * -_target(log_p, y) - eps * spread).mean())


def _per_token(z, y) -> torch.Tensor:
    return -_target(torch.log_softmax(z, -1), y)


def _pq(p, q) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)


def _floor_gap(p, q, naive=False, base=math.e, sign=1.0, floor_is_ce=False) -> tuple[float, float]:
    p, q = _pq(p, q)
    plogp = p * torch.log(p) if naive else torch.special.xlogy(p, p)
    h, ce = -plogp.sum(), -torch.special.xlogy(p, q).sum()
    kl = sign * (ce - h)
    return float((ce if floor_is_ce else h) / math.log(base)), float(kl / math.log(base))


KEY = {
    "stable_cross_entropy": FunctionKey(
        hidden=(Case(lambda: _logits(64, 10, 42, scale=30.0)),
                Case(lambda: _logits(1, 2, 43)),
                Case(lambda: (torch.full((3, 5), 7.0, dtype=torch.float64), torch.tensor([0, 4, 2])))),
        mistakes=(
            Mistake("exp(z) / Σ exp(z), then the log", lambda z, y: float(-_target(_naive_log_probs(z), y).mean()),
                    pitfall=True),
            Mistake("log of softmax", lambda z, y: float(-_target(_log_of_softmax(z), y).mean()), pitfall=True),
            Mistake("sum over the rows, not the mean", lambda z, y: float(_per_token(z, y).sum())),
            Mistake("drops the max it subtracted", lambda z, y: float((torch.log(torch.exp(
                z - z.max(-1, keepdim=True).values).sum(-1)) - _target(z, y)).mean())),
        ),
    ),
    "ANSWER_IDENTICAL_CURVES": AnswerKey(
        expected="C",
        why_not=(("A", "the two values are equal at every step, not only at the end: they are the same "
                       "function of the model's outputs."),
                 ("B", "with a one-hot target the cross-entropy is not a bound on the negative log-likelihood: "
                       "it is exactly that value."),
                 ("D", "optimizers change parameters; they do not rescale the values a loss reports.")),
    ),
    "ANSWER_LABEL_REPRESENTATION": AnswerKey(
        expected=False,
        why_not=((True, "with a smoothed target every token's -log p_j enters the loss, so it is no longer "
                        "the target's negative log-likelihood alone."),),
    ),
    "smoothed_cross_entropy": FunctionKey(
        hidden=(Case(lambda: _logits(8, 7, 45) + (0.0,)),  # no smoothing: plain cross-entropy
                Case(lambda: _logits(8, 3, 46) + (0.5,)),
                Case(lambda: _logits(4, 2, 47) + (0.9,))),
        mistakes=(
            Mistake("log of softmax", lambda z, y, e: _smoothed(z, y, e, _log_of_softmax(z)), pitfall=True),
            Mistake("ε / (V - 1) on the other tokens", lambda z, y, e: _smoothed(z, y, e, others=True)),
            Mistake("forgets the smoothing", lambda z, y, e: float(_per_token(z, y).mean())),
            Mistake("ε times the sum over tokens, not the mean", lambda z, y, e: _smoothed(z, y, e, total=True)),
        ),
    ),
    "cross_entropy_gradient": FunctionKey(
        hidden=(Case(lambda: _logits(10, 6, 49, scale=5.0)),
                Case((torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1, 3])))),
        mistakes=(
            Mistake("softmax without subtracting the max", lambda z, y: torch.exp(z) / torch.exp(z).sum(
                -1, keepdim=True) - F.one_hot(y, z.shape[-1]), pitfall=True),
            Mistake("gradient of the mean loss (divided by N)", lambda z, y: (
                torch.softmax(z, -1) - F.one_hot(y, z.shape[-1])) / len(y)),
            Mistake("wrong sign", lambda z, y: F.one_hot(y, z.shape[-1]) - torch.softmax(z, -1)),
        ),
    ),
    "token_mean_loss": FunctionKey(
        hidden=(Case(lambda: _padded([6, 6, 6], 4, 51)),  # no padding at all
                Case(lambda: _padded([9, 1, 2], 6, 52)),  # mean of per-sequence means differs here
                Case(lambda: _padded([3, 8], 3, 53))),
        mistakes=(
            Mistake("counts the padding", lambda z, y, m: float(_per_token(z, y).mean()), pitfall=True),
            Mistake("mean of the per-sequence means", lambda z, y, m: float(
                ((_per_token(z, y) * m).sum(1) / m.sum(1)).mean())),
            Mistake("divides by B·T", lambda z, y, m: float((_per_token(z, y) * m).sum() / m.numel())),
            Mistake("the sum over the real tokens, not the mean", lambda z, y, m: float((_per_token(z, y) * m).sum())),
        ),
    ),
    "sequence_losses": FunctionKey(
        hidden=(Case(lambda: _padded([7, 7], 6, 56)),  # no padding at all
                Case(lambda: _padded([1, 9, 4, 2], 8, 57)),
                Case(lambda: _padded([5], 3, 58))),
        mistakes=(
            Mistake("the mean per sequence, not the sum", lambda z, y, m: (_per_token(z, y) * m).sum(1) / m.sum(1),
                    pitfall=True),
            Mistake("counts the padding", lambda z, y, m: _per_token(z, y).sum(1)),
            Mistake("one total for the whole batch", lambda z, y, m: (_per_token(z, y) * m).sum()),
        ),
    ),
    "log_likelihood_from_losses": FunctionKey(
        hidden=(Case(([2.0, 0.5, 0.25], [True, False, True])),
                Case(([0.1] * 30, [False] * 10 + [True] * 20)),
                Case((torch.tensor([3.0, 1.5, 0.5], dtype=torch.float64), torch.tensor([False, True, True])))),
        mistakes=(
            Mistake("includes the prompt's tokens", lambda t, m: -float(sum(float(v) for v in t)), pitfall=True),
            Mistake("forgets the minus sign", lambda t, m: float(
                torch.as_tensor(t, dtype=torch.float64)[torch.as_tensor(m, dtype=torch.bool)].sum())),
            Mistake("mean instead of sum", lambda t, m: -float(
                torch.as_tensor(t, dtype=torch.float64)[torch.as_tensor(m, dtype=torch.bool)].mean())),
        ),
    ),
    "loss_floor_and_gap": FunctionKey(
        hidden=(Case(([0.7, 0.2, 0.1], [0.7, 0.2, 0.1])),  # the model is the data: no gap
                Case(([1.0, 0.0, 0.0, 0.0], [0.97, 0.01, 0.01, 0.01])),
                Case(([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]))),
        mistakes=(
            Mistake("0 · log 0 left as NaN", lambda p, q: _floor_gap(p, q, naive=True), pitfall=True),
            Mistake("the floor is the cross-entropy", lambda p, q: _floor_gap(p, q, floor_is_ce=True)),
            Mistake("the gap as H - CE (wrong sign)", lambda p, q: _floor_gap(p, q, sign=-1.0)),
            Mistake("bits instead of nats", lambda p, q: _floor_gap(p, q, base=2.0)),
        ),
    ),
}
