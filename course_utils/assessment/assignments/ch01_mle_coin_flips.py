"""Chapter 01 assignment: maximum likelihood on coin flips."""

from __future__ import annotations

import torch

from ...information import kl_divergence
from ...likelihood import bernoulli_log_likelihood, bernoulli_mle, gaussian_mle
from ...validate import as_tensor
from ..items import AnswerItem, Assignment, Case, FunctionItem


def best_theta(thetas, losses) -> float:
    """The θ with the smallest loss: argmin_θ Σ L(x; θ) read off a table."""
    t, loss = as_tensor(thetas, "thetas"), as_tensor(losses, "losses")
    if t.shape != loss.shape:
        raise ValueError(f"thetas and losses must have the same length, got {t.numel()} and {loss.numel()}")
    return float(t[int(torch.argmin(loss))])


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
                    Case((0.9, torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])))),
            hidden=(Case(lambda: (0.3, _flips(5000, 0.3, 11))),  # the product underflows here
                    Case((1.0, [1, 1, 1])),  # 0 · log 0 counts as 0
                    Case((0.0, [1, 0])),  # a head under θ = 0 is impossible: -inf
                    Case(lambda: (0.62, _flips(40, 0.6, 12)))),
            rtol=1e-6, atol=1e-9,
            hint="sum log θ over heads and log(1 - θ) over tails; never take the log of a product.",
        ),
        FunctionItem(
            name="bernoulli_mle", points=2, reference=bernoulli_mle,
            public=(Case(([1, 0, 1, 1],)), Case(([0, 0, 0, 1],))),
            hidden=(Case(([1],)), Case(lambda: (_flips(1000, 0.37, 13),)), Case(([0, 1] * 7 + [1],))),
            hint="θ̂ = k / n: the number of heads divided by the number of flips.",
        ),
        FunctionItem(
            name="fit_by_gradient_ascent", points=2, reference=bernoulli_mle,
            public=(Case(([1, 0, 1, 1],)),),
            hidden=(Case(([1, 1, 0, 0, 0],)), Case(lambda: (_flips(200, 0.3, 14),))),
            rtol=0.0, atol=1e-3,
            hint="optimise the logit w with θ = sigmoid(w), minimise the negative mean log-likelihood, "
                 "and take enough steps (a few hundred with lr around 1).",
        ),
        FunctionItem(
            name="best_theta", points=1, reference=best_theta,
            public=(Case(([1, 2, 3, 4], [0.8, 0.3, 0.1, 0.5])),),
            hidden=(Case(([0.1, 0.2, 0.3], [2.0, 1.0, 3.0])), Case(([5.0, 6.0], [0.2, 0.4]))),
            hint="the estimate is the θ whose loss is smallest (argmin), not the smallest loss itself.",
        ),
        AnswerItem(
            name="ANSWER_LOWER_LOSS", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="a loss on the training data measures fit to that data only.",
        ),
        FunctionItem(
            name="kl_divergence", points=2, reference=kl_divergence,
            public=(Case(([0.5, 0.5], [0.5, 0.5])), Case(([0.75, 0.25], [0.5, 0.5]))),
            hidden=(Case(([0.0, 1.0], [0.5, 0.5])), Case(([0.2, 0.3, 0.5], [0.1, 0.6, 0.3]))),
            hint="KL(p ‖ q) = Σ p log(p / q), with terms where p = 0 counting as 0.",
        ),
        FunctionItem(
            name="gaussian_mle", points=2, reference=gaussian_mle,
            public=(Case(([1.0, 2.0, 3.0, 4.0],)),),
            hidden=(Case(lambda: (_normal(50, 3.0, 2.0, 15),)), Case(([7.0],))),
            hint="return (mean, variance) with the variance divided by n, not n - 1.",
        ),
        AnswerItem(
            name="ANSWER_SPREAD_RATIO", points=1, expected=0.5, atol=0.01,
            hint="the standard deviation of θ̂ is sqrt(θ(1 - θ) / n).",
        ),
    ),
)
