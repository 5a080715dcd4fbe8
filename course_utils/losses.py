"""Cross-entropy from logits by a stable log-sum-exp: label smoothing, padding masks, the gradient.

Every function works on logits `z` of shape (..., V), the last axis being the vocabulary, and
computes in the logits' own dtype: the stable forms stay finite in float16 and bfloat16 (with
their few significant digits) where `log(softmax(z))` gives -inf or NaN.
"""

from __future__ import annotations

import torch

from .validate import number_in, one_of, positive_int, token_ids

IGNORE_INDEX = -100
"""The target value of positions that are not predicted (PyTorch's default `ignore_index`); the course's only one."""

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- the stable core

def logsumexp(logits: torch.Tensor) -> torch.Tensor:
    """log Σ_j exp(z_j) over the last axis, as m + log Σ_j exp(z_j - m) with m = max_j z_j.

    Every exponent z_j - m is at most 0, so nothing overflows, and the largest term is exactly 1,
    so the sum is at least 1 and its log never underflows to -inf.
    """
    z = _check_logits(logits)
    m = z.amax(dim=-1, keepdim=True)
    return (m + torch.log(torch.exp(z - m).sum(dim=-1, keepdim=True))).squeeze(-1)


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log softmax(z)_j = z_j - logsumexp(z), over the last axis."""
    return _log_softmax(_check_logits(logits))


def _log_softmax(z: torch.Tensor) -> torch.Tensor:
    """`log_softmax` for logits already checked (the same two lines as `logsumexp`)."""
    m = z.amax(dim=-1, keepdim=True)
    return z - (m + torch.log(torch.exp(z - m).sum(dim=-1, keepdim=True)))


def naive_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token -log(exp(z_y) / Σ_j exp(z_j)) computed literally: the UNSTABLE form, for comparison.

    exp overflows to inf for large logits (inf / inf = NaN) and the probability of an unlikely
    target underflows to 0 (log 0 = -inf); use `cross_entropy` for real work.
    """
    z = _check_logits(logits)
    y = _check_targets(targets, z.shape, IGNORE_INDEX)
    e = torch.exp(z)
    p = e / e.sum(dim=-1, keepdim=True)
    return -torch.log(p.gather(-1, y.unsqueeze(-1)).squeeze(-1))


# ---------------------------------------------------------------- cross-entropy

def smoothed_targets(targets: torch.Tensor, vocab_size: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """The target distribution q = (1 - ε) onehot(y) + ε / V, shape targets.shape + (V,), float64."""
    vocab_size = positive_int(vocab_size, "vocab_size")
    eps = _check_smoothing(label_smoothing)
    y = _check_targets(targets, tuple(targets.shape) + (vocab_size,), IGNORE_INDEX)
    if (y == IGNORE_INDEX).any():
        raise ValueError("targets contain ignore_index: a padded position has no target distribution")
    onehot = torch.nn.functional.one_hot(y, vocab_size).double()
    return (1.0 - eps) * onehot + eps / vocab_size


def token_losses(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-token loss: -log p_y, or with smoothing ε the CE to q = (1 - ε) onehot(y) + ε/V.

    Smoothed: CE(q, p) = (1 - ε)(-log p_y) + ε · mean_j(-log p_j). Positions whose target is
    `IGNORE_INDEX` get loss 0.
    """
    z = _check_logits(logits)
    return _token_losses(z, _check_targets(targets, z.shape, IGNORE_INDEX), _check_smoothing(label_smoothing))


def _token_losses(z: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    keep = y != IGNORE_INDEX
    logp = _log_softmax(z)
    nll = -logp.gather(-1, torch.where(keep, y, 0).unsqueeze(-1)).squeeze(-1)
    loss = nll if eps == 0.0 else (1.0 - eps) * nll + eps * (-logp.mean(dim=-1))
    return torch.where(keep, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0,
                  reduction: str = "mean", mask: torch.Tensor | None = None,
                  ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy of integer targets under softmax(logits), as `F.cross_entropy` defines it.

    logits (..., V), targets (...) of ids in 0..V-1. A position counts when its target is not
    `ignore_index` and `mask` (same shape as targets; True or 1 = a real token) allows it.
    reduction: "none" (per token, 0 where not counted), "sum" (over counted tokens) or "mean"
    (the sum divided by the number of counted tokens: the mean negative log-likelihood).
    A mean over no counted token raises ValueError (PyTorch returns NaN there).
    """
    one_of(reduction, REDUCTIONS, "reduction")
    z = _check_logits(logits)
    y = _check_targets(targets, z.shape, ignore_index)
    keep = _check_mask(mask, y) & (y != ignore_index)
    loss = _token_losses(z, torch.where(keep, y, IGNORE_INDEX), _check_smoothing(label_smoothing))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    count = int(keep.sum())
    if count == 0:
        raise ValueError("no position counts (all padding or ignore_index): the mean loss is undefined")
    return loss.sum() / count


def sequence_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                 ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-sequence summed loss -log Pr(x) over counted tokens: logits (B, T, V), targets (B, T) → (B,)."""
    z = _check_logits(logits)
    if z.ndim != 3:
        raise ValueError(f"logits must have shape (batch, time, V), got {tuple(z.shape)}")
    return cross_entropy(z, targets, reduction="none", mask=mask, ignore_index=ignore_index).sum(dim=-1)


def cross_entropy_grad(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """∂(per-token loss)/∂z = softmax(z) - q, with q the (smoothed) one-hot target; shape of logits."""
    z = _check_logits(logits)
    q = smoothed_targets(targets, z.shape[-1], label_smoothing).to(z.dtype)
    return torch.exp(_log_softmax(z)) - q


# ---------------------------------------------------------------- guards

def _check_logits(logits: torch.Tensor, name: str = "logits") -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (..., V), got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {logits.dtype}")
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if torch.isnan(logits).any() or (logits == float("inf")).any():
        raise ValueError(f"{name} contain NaN or +inf; only -inf (a token ruled out) is allowed")
    if logits.numel() and (logits == float("-inf")).all(dim=-1).any():
        raise ValueError(f"a row of {name} is -inf everywhere: no token has any probability")
    return logits


def _check_targets(targets: torch.Tensor, logits_shape: tuple[int, ...], ignore_index: int) -> torch.Tensor:
    """Target ids for logits of `logits_shape`: the logits' shape without the vocabulary axis."""
    y = token_ids(targets, logits_shape[-1], "targets", ignore_index=ignore_index)
    if tuple(y.shape) != tuple(logits_shape[:-1]):
        raise ValueError(f"targets must have shape {tuple(logits_shape[:-1])} (logits without the "
                         f"vocabulary axis), got {tuple(y.shape)}")
    return y


def _check_mask(mask: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones(targets.shape, dtype=torch.bool, device=targets.device)
    m = torch.as_tensor(mask, device=targets.device)
    if tuple(m.shape) != tuple(targets.shape):
        raise ValueError(f"mask must have the targets' shape {tuple(targets.shape)}, got {tuple(m.shape)}")
    if m.dtype != torch.bool:
        if m.is_complex() or not ((m == 0) | (m == 1)).all():
            raise ValueError("mask must be boolean, or contain only 0 (padding) and 1 (a real token)")
        m = m == 1
    return m


def _check_smoothing(label_smoothing: float) -> float:
    return number_in(label_smoothing, "label_smoothing", 0.0, 1.0, include_high=False)
