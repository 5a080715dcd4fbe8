"""Maximum likelihood for coins, Gaussians and Markov chains: the estimators and their log-likelihoods (chapter 01)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .validate import (
    ArrayLike,
    as_flips,
    as_tensor,
    finite_float,
    positive_float,
    positive_int,
    probability,
)


def bernoulli_likelihood(theta: float, flips: ArrayLike) -> float:
    """L(θ) = Π θ^x (1-θ)^(1-x): the product form, which underflows to 0 for long data."""
    x, th = as_flips(flips), probability(theta)
    probs = torch.where(x == 1, torch.tensor(th, dtype=torch.float64), torch.tensor(1 - th, dtype=torch.float64))
    return float(torch.prod(probs))


def bernoulli_log_likelihood(theta: float, flips: ArrayLike) -> float:
    """ℓ(θ) = Σ [x log θ + (1-x) log(1-θ)]: the sum form, finite where the product underflows."""
    x, th = as_flips(flips), probability(theta)
    th_t = torch.tensor(th, dtype=torch.float64)
    return float((torch.special.xlogy(x, th_t) + torch.special.xlogy(1 - x, 1 - th_t)).sum())


def bernoulli_mle(flips: ArrayLike) -> float:
    """θ̂ = k / n, the fraction of heads."""
    x = as_flips(flips)
    return float(x.mean())


def fit_bernoulli_by_gradient(
    flips: ArrayLike, steps: int = 200, lr: float = 2.0
) -> tuple[float, list[float]]:
    """Maximise the mean log-likelihood by gradient ascent on the logit w (θ = sigmoid(w)).

    Returns the final θ and its value after every step. The logit keeps θ inside (0, 1), so
    all-heads or all-tails data only approach their boundary MLE of 1 or 0.
    """
    x, steps, lr = as_flips(flips), positive_int(steps, "steps"), positive_float(lr, "lr")
    w = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    history = []
    for _ in range(steps):
        theta = torch.sigmoid(w)
        mean_ll = (x * torch.log(theta) + (1 - x) * torch.log1p(-theta)).mean()
        opt.zero_grad()
        (-mean_ll).backward()  # optimizers minimise: ascend ℓ by descending -ℓ
        opt.step()
        history.append(torch.sigmoid(w.detach()).item())
    return history[-1], history


def simulate_mle(
    theta: float, ns: Sequence[int], reps: int, generator: torch.Generator
) -> torch.Tensor:
    """θ̂ = k/n from `reps` fresh data sets of each size in `ns`: a tensor of shape (len(ns), reps)."""
    th, sizes, reps = probability(theta), _sample_sizes(ns), positive_int(reps, "reps")
    return torch.stack([_count_heads(n, th, reps, generator) / n for n in sizes])


def _count_heads(n: int, theta: float, reps: int, generator: torch.Generator) -> torch.Tensor:
    """Heads in n flips, `reps` times, drawn with `generator` (in blocks to bound memory)."""
    k = torch.zeros(reps, dtype=torch.float64)
    for start in range(0, n, 4096):
        u = torch.rand((reps, min(4096, n - start)), generator=generator, dtype=torch.float64)
        k += (u < theta).sum(dim=1)
    return k


def gaussian_mle(x: ArrayLike) -> tuple[float, float]:
    """(μ̂, σ̂²) for i.i.d. Gaussian data: the sample mean and the 1/n (not 1/(n-1)) variance."""
    t = as_tensor(x, "x")
    mu = t.mean()
    return float(mu), float(((t - mu) ** 2).mean())


# Stays although no lesson calls it: the objective that tests check `gaussian_mle` maximises.
def gaussian_log_likelihood(x: ArrayLike, mu: float, var: float) -> float:
    """Σ log N(x_i; μ, σ²)."""
    t, mu, var = as_tensor(x, "x"), finite_float(mu, "mu"), positive_float(var, "var")
    n = t.numel()
    return float(-0.5 * n * math.log(2 * math.pi * var) - ((t - mu) ** 2).sum() / (2 * var))


def markov_mle(flips: ArrayLike) -> tuple[float, float]:
    """Two-state Markov chain MLE: (P(H | previous T), P(H | previous H)) by counting transitions."""
    x = _chain(flips)
    prev, nxt = x[:-1], x[1:]
    out = []
    for state in (0.0, 1.0):
        after = nxt[prev == state]
        if after.numel() == 0:
            raise ValueError(f"no transition out of {'heads' if state else 'tails'}: its probability is undefined")
        out.append(float(after.mean()))
    return out[0], out[1]


def markov_log_likelihood(flips: ArrayLike, p_h_after_t: float, p_h_after_h: float) -> float:
    """log Pr(x_2..x_n | x_1) under the two-state chain (the first flip is conditioned on)."""
    x = _chain(flips)
    a, b = probability(p_h_after_t, "p_h_after_t"), probability(p_h_after_h, "p_h_after_h")
    p_heads = torch.where(x[:-1] == 1, torch.tensor(b, dtype=torch.float64), torch.tensor(a, dtype=torch.float64))
    nxt = x[1:]
    return float((torch.special.xlogy(nxt, p_heads) + torch.special.xlogy(1 - nxt, 1 - p_heads)).sum())


# ---------------------------------------------------------------- guards

def _sample_sizes(ns: Sequence[int]) -> list[int]:
    if isinstance(ns, (str, bytes)) or len(ns) == 0:
        raise ValueError(f"ns must be a non-empty list of positive sample sizes, got {ns!r}")
    return [positive_int(n, "each sample size in ns") for n in ns]


def _chain(flips: ArrayLike) -> torch.Tensor:
    x = as_flips(flips)
    if x.numel() < 2:
        raise ValueError("a Markov chain needs at least 2 flips to count a transition")
    return x
