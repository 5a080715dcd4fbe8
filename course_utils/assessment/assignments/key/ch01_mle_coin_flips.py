"""Instructor key for chapter 01: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import math

import torch

from ....likelihood import bernoulli_mle
from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch01_mle_coin_flips import _flips


def _x(flips) -> torch.Tensor:
    return torch.as_tensor(flips, dtype=torch.float64)


def _log_of_product(theta, flips) -> float:
    x = _x(flips)
    return float(torch.log(torch.prod(torch.where(x == 1, float(theta), 1 - float(theta)))))


def _terms(theta, flips) -> torch.Tensor:
    x, t = _x(flips), torch.tensor(float(theta), dtype=torch.float64)
    return torch.special.xlogy(x, t) + torch.special.xlogy(1 - x, 1 - t)


def _descent(flips, steps, lr, sign: float = 1.0, scale: float = 1.0, extra: int = 0) -> float:
    x = _x(flips)
    w = torch.zeros((), dtype=torch.float64)
    for _ in range(int(steps) + extra):
        w = w - sign * lr * scale * (torch.sigmoid(w) - x.mean())
    return float(torch.sigmoid(w))


def _kl_terms(p, q) -> torch.Tensor:
    return _x(p) * torch.log(_x(p) / _x(q))


def _normal(n: int, mu: float, sigma: float, seed: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (mu + sigma * torch.randn(n, generator=g, dtype=torch.float64)).tolist()


KEY = {
    "log_likelihood": FunctionKey(
        hidden=(Case(lambda: (0.3, _flips(5000, 0.3, 11))),  # the product underflows here too
                Case((1.0, [1, 1, 1])),  # 0 · log 0 counts as 0
                Case((0.0, [1, 0])),  # a head under θ = 0 is impossible: -inf
                Case(lambda: (0.62, _flips(40, 0.6, 12)))),
        mistakes=(
            Mistake("log of the product of the probabilities", _log_of_product, pitfall=True),
            Mistake("forgets the tails' term", lambda theta, flips: float(
                torch.special.xlogy(_x(flips), torch.tensor(float(theta), dtype=torch.float64)).sum())),
            Mistake("mean instead of sum", lambda theta, flips: float(_terms(theta, flips).mean())),
            Mistake("swaps θ and 1 - θ", lambda theta, flips: float(_terms(1 - float(theta), flips).sum())),
        ),
    ),
    "bernoulli_mle": FunctionKey(
        hidden=(Case(([1],)), Case(lambda: (_flips(1000, 0.37, 13),)), Case(([0, 1] * 7 + [1],))),
        mistakes=(
            Mistake("the fraction of tails", lambda flips: float(1 - _x(flips).mean())),
            Mistake("heads over tails, k / (n - k)", lambda flips: float(
                _x(flips).sum() / (1 - _x(flips)).sum())),
            Mistake("divides by n - 1", lambda flips: float(_x(flips).sum() / (len(_x(flips)) - 1))),
        ),
    ),
    "fit_by_gradient_ascent": FunctionKey(
        hidden=(Case(([1, 0, 1, 1], 1, 1.0)),  # one step: θ = sigmoid(lr · (k/n - 1/2))
                Case(([1, 1, 0, 0, 0], 300, 2.0)),  # converged
                Case(lambda: (_flips(200, 0.3, 14), 50, 1.5))),
        mistakes=(
            Mistake("returns the closed form k / n", lambda flips, steps, lr: bernoulli_mle(flips), pitfall=True),
            Mistake("steps up the loss (wrong sign)", lambda flips, steps, lr: _descent(flips, steps, lr, -1.0)),
            Mistake("sums the log-likelihood instead of averaging", lambda flips, steps, lr: _descent(
                flips, steps, lr, scale=len(_x(flips)))),
            Mistake("one step too many", lambda flips, steps, lr: _descent(flips, steps, lr, extra=1)),
        ),
    ),
    "best_theta": FunctionKey(
        hidden=(Case(([0.1, 0.2, 0.3], [2.0, 1.0, 3.0])), Case(([5.0, 6.0], [0.2, 0.4]))),
        mistakes=(
            Mistake("returns the smallest loss", lambda thetas, losses: float(min(losses)), pitfall=True),
            Mistake("returns the position of the smallest loss", lambda thetas, losses: float(
                min(range(len(losses)), key=lambda j: losses[j]))),
            Mistake("the θ with the largest loss", lambda thetas, losses: float(
                thetas[max(range(len(losses)), key=lambda j: losses[j])])),
        ),
    ),
    "ANSWER_LOWER_LOSS": AnswerKey(
        expected="B",
        why_not=(("A", "the training loss is measured on the training data only; a lower one can "
                       "come with a higher loss on new text (overfitting)."),
                 ("C", "the loss says nothing about the number of parameters; if anything, larger models reach "
                       "lower training losses."),
                 ("D", "overfitting shows as a training loss far below the held-out loss; a higher training "
                       "loss is no sign of it.")),
    ),
    "kl_divergence": FunctionKey(
        hidden=(Case(([0.2, 0.3, 0.5], [0.1, 0.6, 0.3])), Case(([0.0, 0.4, 0.6], [0.5, 0.25, 0.25])),
                Case(([1.0, 0.0, 0.0], [1e-300, 0.5, 0.5]))),
        mistakes=(
            Mistake("0 · log 0 left as NaN", lambda p, q: float(_kl_terms(p, q).sum()), pitfall=True),
            Mistake("KL(q ‖ p), the other way round", lambda p, q: float(torch.nan_to_num(_kl_terms(q, p)).sum())),
            Mistake("log base 2", lambda p, q: float(torch.nan_to_num(_kl_terms(p, q)).sum()) / math.log(2)),
            Mistake("wrong sign", lambda p, q: -float(torch.nan_to_num(_kl_terms(p, q)).sum())),
        ),
    ),
    "gaussian_mle": FunctionKey(
        hidden=(Case(lambda: (_normal(50, 3.0, 2.0, 15),)), Case(([7.0],))),
        mistakes=(
            Mistake("divides the variance by n - 1", lambda xs: (float(_x(xs).mean()), float(
                ((_x(xs) - _x(xs).mean()) ** 2).sum() / (len(_x(xs)) - 1))),
                    pitfall=True),
            Mistake("returns the standard deviation", lambda xs: (float(_x(xs).mean()), float(
                _x(xs).var(correction=0).sqrt()))),
            Mistake("(variance, mean) swapped", lambda xs: (float(_x(xs).var(correction=0)), float(_x(xs).mean()))),
        ),
    ),
    "ANSWER_SPREAD_RATIO": AnswerKey(
        expected=0.5,
        atol=0.01,
    ),
}
