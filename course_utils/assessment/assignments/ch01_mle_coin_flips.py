"""Chapter 01 assignment: maximum likelihood on coin flips."""

from __future__ import annotations

import math

import torch

from ...information import kl_divergence
from ...likelihood import bernoulli_log_likelihood, bernoulli_mle, gaussian_mle
from ...validate import as_flips, as_tensor, int_at_least, positive_float
from ..items import AnswerItem, Assignment, Case, FunctionItem, Mistake


def best_theta(thetas, losses) -> float:
    """The θ with the smallest loss: argmin_θ Σ L(x; θ) read off a table."""
    t, loss = as_tensor(thetas, "thetas"), as_tensor(losses, "losses")
    if t.shape != loss.shape:
        raise ValueError(f"thetas and losses must have the same length, got {t.numel()} and {loss.numel()}")
    return float(t[int(torch.argmin(loss))])


def gradient_ascent_theta(flips, steps: int, lr: float) -> float:
    """θ = sigmoid(w) after `steps` plain gradient steps of size `lr` on the logit w, from w = 0.

    Each step minimises the negative mean log-likelihood, whose derivative in w is sigmoid(w) − k/n.
    """
    x = as_flips(flips)
    steps, lr = int_at_least(steps, "steps", 1), positive_float(lr, "lr")
    w = torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        w = w - lr * (torch.sigmoid(w) - x.mean())
    return float(torch.sigmoid(w))


# ---------------------------------------------------------------- the mistakes each item must reject

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


def _flips(n: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g) < p).float()


def _normal(n: int, mu: float, sigma: float, seed: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (mu + sigma * torch.randn(n, generator=g, dtype=torch.float64)).tolist()


ASSIGNMENT = Assignment(
    key="01_mle_coin_flips",
    title="MLE on coin flips",
    items=(
        FunctionItem(
            name="log_likelihood", points=2, reference=bernoulli_log_likelihood,
            public=(Case((0.5, [1, 0, 1, 1])), Case((0.75, [1, 0, 1, 1])),
                    Case((0.9, torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]))),
                    Case(lambda: (0.5, _flips(2000, 0.5, 10)))),  # the product underflows to 0 here
            hidden=(Case(lambda: (0.3, _flips(5000, 0.3, 11))),  # and here
                    Case((1.0, [1, 1, 1])),  # 0 · log 0 counts as 0
                    Case((0.0, [1, 0])),  # a head under θ = 0 is impossible: -inf
                    Case(lambda: (0.62, _flips(40, 0.6, 12)))),
            rtol=1e-6, atol=1e-9,
            hint="sum log θ over heads and log(1 - θ) over tails; never take the log of a product.",
            non_finite_hint="your answer underflows: with 2000 flips the product of the probabilities is 0 "
                            "and its log is -inf. Sum the logs instead.",
            mistakes=(
                Mistake("log of the product of the probabilities", _log_of_product, pitfall=True),
                Mistake("forgets the tails' term", lambda theta, flips: float(
                    torch.special.xlogy(_x(flips), torch.tensor(float(theta), dtype=torch.float64)).sum())),
                Mistake("mean instead of sum", lambda theta, flips: float(_terms(theta, flips).mean())),
                Mistake("swaps θ and 1 - θ", lambda theta, flips: float(_terms(1 - float(theta), flips).sum())),
            ),
        ),
        FunctionItem(
            name="bernoulli_mle", points=2, reference=bernoulli_mle,
            public=(Case(([1, 0, 1, 1],)), Case(([0, 0, 0, 1],))),
            hidden=(Case(([1],)), Case(lambda: (_flips(1000, 0.37, 13),)), Case(([0, 1] * 7 + [1],))),
            hint="θ̂ = k / n: the number of heads divided by the number of flips.",
            mistakes=(
                Mistake("the fraction of tails", lambda flips: float(1 - _x(flips).mean())),
                Mistake("heads over tails, k / (n - k)", lambda flips: float(
                    _x(flips).sum() / (1 - _x(flips)).sum())),
                Mistake("divides by n - 1", lambda flips: float(_x(flips).sum() / (len(_x(flips)) - 1))),
            ),
        ),
        FunctionItem(
            name="fit_by_gradient_ascent", points=2, reference=gradient_ascent_theta,
            # few steps: the closed form k/n is not where gradient ascent has got to yet
            public=(Case(([1, 0, 1, 1], 10, 1.0)), Case(([0, 0, 0, 1, 0], 3, 0.5))),
            hidden=(Case(([1, 0, 1, 1], 1, 1.0)),  # one step: θ = sigmoid(lr · (k/n - 1/2))
                    Case(([1, 1, 0, 0, 0], 300, 2.0)),  # converged
                    Case(lambda: (_flips(200, 0.3, 14), 50, 1.5))),
            rtol=1e-5, atol=1e-6,
            hint="start from w = 0 with θ = sigmoid(w); make exactly `steps` torch.optim.SGD steps with "
                 "learning rate `lr` on the negative MEAN log-likelihood; return sigmoid(w) at the end.",
            mistakes=(
                Mistake("returns the closed form k / n", lambda flips, steps, lr: bernoulli_mle(flips), pitfall=True),
                Mistake("steps up the loss (wrong sign)", lambda flips, steps, lr: _descent(flips, steps, lr, -1.0)),
                Mistake("sums the log-likelihood instead of averaging", lambda flips, steps, lr: _descent(
                    flips, steps, lr, scale=len(_x(flips)))),
                Mistake("one step too many", lambda flips, steps, lr: _descent(flips, steps, lr, extra=1)),
            ),
        ),
        FunctionItem(
            name="best_theta", points=1, reference=best_theta,
            public=(Case(([1, 2, 3, 4], [0.8, 0.3, 0.1, 0.5])),),
            hidden=(Case(([0.1, 0.2, 0.3], [2.0, 1.0, 3.0])), Case(([5.0, 6.0], [0.2, 0.4]))),
            hint="the estimate is the θ whose loss is smallest (argmin), not the smallest loss itself.",
            mistakes=(
                Mistake("returns the smallest loss", lambda thetas, losses: float(min(losses)), pitfall=True),
                Mistake("returns the position of the smallest loss", lambda thetas, losses: float(
                    min(range(len(losses)), key=lambda j: losses[j]))),
                Mistake("the θ with the largest loss", lambda thetas, losses: float(
                    thetas[max(range(len(losses)), key=lambda j: losses[j])])),
            ),
        ),
        AnswerItem(
            name="ANSWER_LOWER_LOSS", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="a loss on the training data measures fit to that data only.",
            why_not=(("A", "the training loss is measured on the training data only; a lower one can "
                           "come with a higher loss on new text (overfitting)."),
                     ("C", "the loss says nothing about the number of parameters; if anything, larger models reach "
                           "lower training losses."),
                     ("D", "overfitting shows as a training loss far below the held-out loss; a higher training "
                           "loss is no sign of it.")),
        ),
        FunctionItem(
            name="kl_divergence", points=2, reference=kl_divergence,
            public=(Case(([0.5, 0.5], [0.5, 0.5])), Case(([0.75, 0.25], [0.5, 0.5])),
                    Case(([0.0, 1.0], [0.5, 0.5]))),  # 0 · log 0 counts as 0
            hidden=(Case(([0.2, 0.3, 0.5], [0.1, 0.6, 0.3])), Case(([0.0, 0.4, 0.6], [0.5, 0.25, 0.25])),
                    Case(([1.0, 0.0, 0.0], [1e-300, 0.5, 0.5]))),
            hint="KL(p ‖ q) = Σ p log(p / q), with terms where p = 0 counting as 0.",
            non_finite_hint="a term with p_j = 0 is 0 · log 0, which floating point makes NaN; it counts as 0 "
                            "(torch.special.xlogy(p, p) - torch.special.xlogy(p, q) does this).",
            mistakes=(
                Mistake("0 · log 0 left as NaN", lambda p, q: float(_kl_terms(p, q).sum()), pitfall=True),
                Mistake("KL(q ‖ p), the other way round", lambda p, q: float(torch.nan_to_num(_kl_terms(q, p)).sum())),
                Mistake("log base 2", lambda p, q: float(torch.nan_to_num(_kl_terms(p, q)).sum()) / math.log(2)),
                Mistake("wrong sign", lambda p, q: -float(torch.nan_to_num(_kl_terms(p, q)).sum())),
            ),
        ),
        FunctionItem(
            name="gaussian_mle", points=2, reference=gaussian_mle,
            public=(Case(([1.0, 2.0, 3.0, 4.0],)),),
            hidden=(Case(lambda: (_normal(50, 3.0, 2.0, 15),)), Case(([7.0],))),
            hint="return (mean, variance) with the variance divided by n, not n - 1.",
            mistakes=(
                Mistake("divides the variance by n - 1", lambda xs: (float(_x(xs).mean()), float(
                    ((_x(xs) - _x(xs).mean()) ** 2).sum() / (len(_x(xs)) - 1))),
                        pitfall=True),
                Mistake("returns the standard deviation", lambda xs: (float(_x(xs).mean()), float(
                    _x(xs).var(correction=0).sqrt()))),
                Mistake("(variance, mean) swapped", lambda xs: (float(_x(xs).var(correction=0)), float(_x(xs).mean()))),
            ),
        ),
        AnswerItem(
            name="ANSWER_SPREAD_RATIO", points=1, expected=0.5, atol=0.01,
            hint="the standard deviation of θ̂ is sqrt(θ(1 - θ) / n).",
        ),
    ),
)
