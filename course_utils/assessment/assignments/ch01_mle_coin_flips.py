"""Chapter 01 assignment: maximum likelihood on coin flips."""

from __future__ import annotations

import torch

from ...information import kl_divergence
from ...likelihood import bernoulli_log_likelihood, bernoulli_mle, gaussian_mle
from ...validate import as_flips, as_tensor, int_at_least, positive_float
from ..items import NUMBER, AnswerItem, Assignment, Case, FunctionItem


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


# ---------------------------------------------------------------- the cases' arguments

def _flips(n: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g) < p).float()


PUBLIC = Assignment(
    key="01_mle_coin_flips",
    title="MLE on coin flips",
    items=(
        FunctionItem(
            name="log_likelihood", points=2, reference=bernoulli_log_likelihood,
            public=(Case((0.5, [1, 0, 1, 1])), Case((0.75, [1, 0, 1, 1])),
                    Case((0.9, torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]))),
                    Case(lambda: (0.5, _flips(2000, 0.5, 10)))),  # the product underflows to 0 here
            rtol=1e-6, atol=1e-9,
            hint="sum log θ over heads and log(1 - θ) over tails; never take the log of a product.",
            non_finite_hint="your answer underflows: with 2000 flips the product of the probabilities is 0 "
                            "and its log is -inf. Sum the logs instead.",
        ),
        FunctionItem(
            name="bernoulli_mle", points=2, reference=bernoulli_mle,
            public=(Case(([1, 0, 1, 1],)), Case(([0, 0, 0, 1],))),
            hint="θ̂ = k / n: the number of heads divided by the number of flips.",
        ),
        FunctionItem(
            name="fit_by_gradient_ascent", points=2, reference=gradient_ascent_theta,
            # few steps: the closed form k/n is not where gradient ascent has got to yet
            public=(Case(([1, 0, 1, 1], 10, 1.0)), Case(([0, 0, 0, 1, 0], 3, 0.5))),
            rtol=1e-5, atol=1e-6,
            hint="start from w = 0 with θ = sigmoid(w); make exactly `steps` torch.optim.SGD steps with "
                 "learning rate `lr` on the negative MEAN log-likelihood; return sigmoid(w) at the end.",
        ),
        FunctionItem(
            name="best_theta", points=1, reference=best_theta,
            public=(Case(([1, 2, 3, 4], [0.8, 0.3, 0.1, 0.5])),),
            hint="the estimate is the θ whose loss is smallest (argmin), not the smallest loss itself.",
        ),
        AnswerItem(
            name="ANSWER_LOWER_LOSS", points=1, choices=("A", "B", "C", "D"),
            hint="a loss on the training data measures fit to that data only.",
        ),
        FunctionItem(
            name="kl_divergence", points=2, reference=kl_divergence,
            public=(Case(([0.5, 0.5], [0.5, 0.5])), Case(([0.75, 0.25], [0.5, 0.5])),
                    Case(([0.0, 1.0], [0.5, 0.5]))),  # 0 · log 0 counts as 0
            hint="KL(p ‖ q) = Σ p log(p / q), with terms where p = 0 counting as 0.",
            non_finite_hint="a term with p_j = 0 is 0 · log 0, which floating point makes NaN; it counts as 0 "
                            "(torch.special.xlogy(p, p) - torch.special.xlogy(p, q) does this).",
        ),
        FunctionItem(
            name="gaussian_mle", points=2, reference=gaussian_mle,
            public=(Case(([1.0, 2.0, 3.0, 4.0],)),),
            hint="return (mean, variance) with the variance divided by n, not n - 1.",
        ),
        AnswerItem(
            name="ANSWER_SPREAD_RATIO", points=1, form=NUMBER,
            hint="the standard deviation of θ̂ is sqrt(θ(1 - θ) / n).",
        ),
    ),
)
