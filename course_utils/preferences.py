"""Rewards from preferences by MLE (Bradley–Terry), and the loss as negative expected utility (policy gradient)."""

from __future__ import annotations

import torch

from .validate import (
    ArrayLike,
    as_tensor,
    index,
    int_at_least,
    non_negative_float,
    one_of,
    positive_float,
    positive_int,
)

# ---------------------------------------------------------------- Bradley–Terry

def preference_probability(r_a: float, r_b: float) -> float:
    """Pr(a is preferred to b) = σ(r_a − r_b) under the Bradley–Terry model."""
    return float(torch.sigmoid(torch.tensor(float(r_a) - float(r_b), dtype=torch.float64)))


def bradley_terry_log_likelihood(rewards: ArrayLike, winners: ArrayLike, losers: ArrayLike) -> float:
    """Σ_k log σ(r[winners[k]] − r[losers[k]]): the log-likelihood of the observed preferences."""
    r = as_tensor(rewards, "rewards")
    w, lo = _check_comparisons(winners, losers, len(r))
    return float(torch.nn.functional.logsigmoid(r[w] - r[lo]).sum())


def sample_comparisons(rewards: ArrayLike, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` comparisons of random distinct pairs, each won by a with probability σ(r_a − r_b)."""
    r = as_tensor(rewards, "rewards")
    n = positive_int(n, "n")
    if len(r) < 2:
        raise ValueError("comparisons need at least two items")
    a = torch.randint(len(r), (n,), generator=generator)
    b = (a + torch.randint(1, len(r), (n,), generator=generator)) % len(r)  # uniform over b != a
    a_wins = torch.rand(n, generator=generator, dtype=torch.float64) < torch.sigmoid(r[a] - r[b])
    return torch.where(a_wins, a, b), torch.where(a_wins, b, a)


def centre(rewards: ArrayLike) -> torch.Tensor:
    """Rewards shifted to mean zero: the representative of each class the likelihood cannot tell apart."""
    r = as_tensor(rewards, "rewards")
    return r - r.mean()


def fit_bradley_terry(n_items: int, winners: ArrayLike, losers: ArrayLike, steps: int = 100,
                      l2: float = 0.0) -> tuple[torch.Tensor, list[float]]:
    """Maximum-likelihood rewards (centred, float64) by L-BFGS, and the mean NLL at the start of each step.

    The likelihood only sees differences r_a − r_b, so it is flat along r + c: the fit is
    reported with mean zero. An item that wins (or loses) every comparison has no finite
    MLE; `l2 > 0` adds a penalty l2 · Σ r² that keeps such fits finite.
    """
    n_items, steps = int_at_least(n_items, "n_items", 2), positive_int(steps, "steps")
    l2 = non_negative_float(l2, "l2")
    w, lo = _check_comparisons(winners, losers, n_items)
    seen = torch.zeros(n_items, dtype=torch.bool)
    seen[w] = seen[lo] = True
    if not seen.all():
        missing = (~seen).nonzero().squeeze(1).tolist()
        raise ValueError(f"items {missing[:5]} appear in no comparison: their rewards are not determined")
    r = torch.zeros(n_items, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([r], lr=1.0, max_iter=20, line_search_fn="strong_wolfe")
    history: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = -torch.nn.functional.logsigmoid(r[w] - r[lo]).mean() + l2 * (r**2).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        history.append(float(opt.step(closure).detach()))
        if len(history) > 1 and abs(history[-2] - history[-1]) < 1e-15:
            break
    return centre(r.detach()), history


def bradley_terry_standard_errors(rewards: ArrayLike, winners: ArrayLike, losers: ArrayLike) -> torch.Tensor:
    """Asymptotic standard errors of the centred MLE, from the inverse Fisher information.

    The information Σ_k p_k (1 − p_k) (e_a − e_b)(e_a − e_b)ᵀ is singular along the shift
    direction; its pseudo-inverse is the covariance of the centred estimate.
    """
    r = as_tensor(rewards, "rewards")
    w, lo = _check_comparisons(winners, losers, len(r))
    p = torch.sigmoid(r[w] - r[lo])
    d = torch.zeros(len(w), len(r), dtype=torch.float64)
    d[torch.arange(len(w)), w] = 1.0
    d[torch.arange(len(w)), lo] = -1.0
    info = d.T @ (d * (p * (1 - p))[:, None])
    shift = torch.full_like(info, 1.0 / len(r))  # the projection onto the shift direction
    cov = torch.linalg.inv(info + shift) - shift  # = pseudo-inverse of info, exactly
    return cov.diagonal().clamp_min(0).sqrt()


# ---------------------------------------------------------------- policy gradient on a toy policy

def policy_gradient(logits: ArrayLike, utilities: ArrayLike) -> torch.Tensor:
    """The exact gradient of E_{y∼π}[U(y)] with respect to the logits: π ⊙ (U − E_π[U])."""
    z, u = _check_logits_utilities(logits, utilities)
    pi = torch.softmax(z, 0)
    return pi * (u - pi @ u)


def mle_gradient(logits: ArrayLike, target: int) -> torch.Tensor:
    """The gradient of log π(target) with respect to the logits: onehot(target) − π."""
    z = as_tensor(logits, "logits")
    target = index(target, len(z), "target")
    return torch.nn.functional.one_hot(torch.tensor(target), len(z)).double() - torch.softmax(z, 0)


def reinforce_estimate(logits: ArrayLike, utilities: ArrayLike, n_samples: int,
                       generator: torch.Generator, baseline: bool = True) -> torch.Tensor:
    """A Monte-Carlo estimate of the policy gradient from samples y ∼ π: mean of (U(y) − b) ∇ log π(y).

    With `baseline`, b is the mean utility of the *other* samples (leave-one-out), which keeps the
    estimate unbiased and lowers its variance; without, b = 0.
    """
    z, u = _check_logits_utilities(logits, utilities)
    n_samples = int_at_least(n_samples, "n_samples", 2 if baseline else 1)  # the baseline leaves one out
    pi = torch.softmax(z, 0)
    y = torch.multinomial(pi, n_samples, replacement=True, generator=generator)
    reward = u[y]
    if baseline:
        reward = reward - (reward.sum() - reward) / (n_samples - 1)
    score = torch.nn.functional.one_hot(y, len(z)).double() - pi  # ∇ log π(y) for each sample
    return (reward[:, None] * score).mean(0)


def train_toy_policy(logits: ArrayLike, utilities: ArrayLike, steps: int, lr: float,
                     generator: torch.Generator, method: str, n_samples: int = 8) -> torch.Tensor:
    """Gradient ascent on a toy policy; returns π after each step, shape (steps + 1, K).

    method 'mle': ascend log π(y*) for the demonstrated best output y* = argmax U (fine-tuning on
    demonstrations); 'pg': ascend a REINFORCE estimate of E_π[U] from `n_samples` of the policy's
    own samples; 'pg-exact': ascend the exact policy gradient.
    """
    z, u = _check_logits_utilities(logits, utilities)
    one_of(method, ("mle", "pg", "pg-exact"), "method")
    steps, lr = positive_int(steps, "steps"), positive_float(lr, "lr")
    best = int(u.argmax())
    history = [torch.softmax(z, 0)]
    for _ in range(steps):
        if method == "mle":
            g = mle_gradient(z, best)
        elif method == "pg":
            g = reinforce_estimate(z, u, n_samples, generator)
        else:
            g = policy_gradient(z, u)
        z = z + lr * g
        history.append(torch.softmax(z, 0))
    return torch.stack(history)


# ---------------------------------------------------------------- guards

def _check_comparisons(winners: ArrayLike, losers: ArrayLike, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    w, lo = as_tensor(winners, "winners"), as_tensor(losers, "losers")
    if w.shape != lo.shape:
        raise ValueError(f"winners and losers must have the same length, got {w.numel()} and {lo.numel()}")
    for name, t in (("winners", w), ("losers", lo)):
        if (t != t.round()).any() or (t < 0).any() or (t >= n_items).any():
            raise ValueError(f"{name} must be item indices in 0..{n_items - 1}")
    w, lo = w.long(), lo.long()
    if (w == lo).any():
        raise ValueError("an item cannot be compared with itself (winner == loser)")
    return w, lo


def _check_logits_utilities(logits: ArrayLike, utilities: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    z, u = as_tensor(logits, "logits"), as_tensor(utilities, "utilities")
    if z.shape != u.shape:
        raise ValueError(f"logits and utilities must have the same length, got {z.numel()} and {u.numel()}")
    return z, u
