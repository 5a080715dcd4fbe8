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
    torch_generator,
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


def sample_policy(logits: ArrayLike, n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """`n_samples` independent answers y ∼ π = softmax(logits), as indices (int64)."""
    z = as_tensor(logits, "logits")
    n_samples = positive_int(n_samples, "n_samples")
    return torch.multinomial(torch.softmax(z, 0), n_samples, replacement=True, generator=torch_generator(generator))


def leave_one_out_baseline(rewards: ArrayLike) -> torch.Tensor:
    """b_n = (Σ_m R_m − R_n) / (N − 1): for each sample, the mean reward of the *other* samples.

    b_n does not depend on sample n, so subtracting it leaves the policy-gradient estimate unbiased.
    """
    r = as_tensor(rewards, "rewards")
    if len(r) < 2:
        raise ValueError("a leave-one-out baseline needs at least two samples")
    return (r.sum() - r) / (len(r) - 1)


def reinforce_from_samples(logits: ArrayLike, utilities: ArrayLike, samples: ArrayLike,
                           baseline: bool = True) -> torch.Tensor:
    """The REINFORCE estimate from given samples: mean_n (U(y_n) − b_n) ∇_z log π(y_n), ∇_z log π(y) = onehot(y) − π.

    With `baseline`, b_n is the leave-one-out baseline; without, b_n = 0.
    """
    z, u = _check_logits_utilities(logits, utilities)
    y = _check_samples(samples, len(z))
    reward = u[y]
    if baseline:
        reward = reward - leave_one_out_baseline(reward)
    score = torch.nn.functional.one_hot(y, len(z)).double() - torch.softmax(z, 0)  # ∇ log π(y) for each sample
    return (reward[:, None] * score).mean(0)


def reinforce_estimate(logits: ArrayLike, utilities: ArrayLike, n_samples: int,
                       generator: torch.Generator, baseline: bool = True) -> torch.Tensor:
    """A Monte-Carlo estimate of the policy gradient from `n_samples` fresh samples y ∼ π (REINFORCE).

    With `baseline` (the default), each sample's utility is compared with the leave-one-out baseline,
    which keeps the estimate unbiased and lowers its variance; without, b = 0.
    """
    int_at_least(n_samples, "n_samples", 2 if baseline else 1)  # the baseline leaves one out
    _check_logits_utilities(logits, utilities)
    return reinforce_from_samples(logits, utilities, sample_policy(logits, n_samples, generator), baseline)


def surrogate_objective(logits: torch.Tensor, samples: ArrayLike, advantages: ArrayLike) -> torch.Tensor:
    """The policy-gradient surrogate S = mean_n log π(y_n) · A_n, the samples and advantages held fixed.

    `logits` is one policy (K,) shared by every sample, or one row per sample (N, K); gradients flow into
    the logits only (the advantages are detached). ∇S is the REINFORCE estimate; S itself is *not* the
    expected utility, nor an estimate of it: only its gradient means anything.
    """
    z = _logit_rows(logits)
    y = _check_samples(samples, z.shape[-1])
    a = torch.as_tensor(advantages).detach().to(z.dtype)
    if a.shape != y.shape:
        raise ValueError(f"advantages must have one value per sample ({len(y)}), got shape {tuple(a.shape)}")
    if z.ndim == 2 and len(z) != len(y):
        raise ValueError(f"logits with one row per sample need {len(y)} rows, got {len(z)}")
    log_pi = torch.log_softmax(z, -1)
    picked = log_pi[y] if z.ndim == 1 else log_pi.gather(1, y[:, None]).squeeze(1)
    return (picked * a).mean()


def actor_loss(logits: torch.Tensor, actions: ArrayLike, returns: ArrayLike, values: torch.Tensor) -> torch.Tensor:
    """The advantage-weighted (actor) loss −mean_n log π(a_n | s_n) · (R_n − V(s_n)), one row of logits per state.

    The advantage R_n − V(s_n) is a constant for the actor: no gradient reaches the critic's `values`
    through this loss (the critic has its own, (R − V)²).
    """
    v = torch.as_tensor(values)
    r = torch.as_tensor(returns, dtype=v.dtype if v.is_floating_point() else torch.float64)
    if r.shape != v.shape:
        raise ValueError(f"returns and values must have the same shape, got {tuple(r.shape)} and {tuple(v.shape)}")
    return -surrogate_objective(logits, actions, r - v.detach())


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


def _check_samples(samples: ArrayLike, k: int) -> torch.Tensor:
    y = torch.as_tensor(samples)
    if y.ndim != 1 or len(y) == 0 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"samples must be a non-empty 1-D tensor of answer indices, got {y.dtype} {tuple(y.shape)}")
    if (y < 0).any() or (y >= k).any():
        raise ValueError(f"samples must be answer indices in 0..{k - 1}")
    return y.long()


def _logit_rows(logits: torch.Tensor) -> torch.Tensor:
    """Logits as given (autograd intact): a float tensor of shape (K,) or (N, K) with finite entries."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim not in (1, 2):
        raise ValueError("logits must be a float tensor of shape (K,) or (N, K)")
    if logits.numel() == 0 or not torch.isfinite(logits.detach()).all():
        raise ValueError("logits must be non-empty and finite")
    return logits


def _check_logits_utilities(logits: ArrayLike, utilities: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    z, u = as_tensor(logits, "logits"), as_tensor(utilities, "utilities")
    if z.shape != u.shape:
        raise ValueError(f"logits and utilities must have the same length, got {z.numel()} and {u.numel()}")
    return z, u
