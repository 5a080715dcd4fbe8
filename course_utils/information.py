"""Entropy, cross-entropy and KL divergence between discrete distributions given as probability vectors (nats)."""

from __future__ import annotations

import torch

from .validate import ArrayLike, probability_vector, same_shape


def entropy(p: ArrayLike) -> float:
    """H(p) = -Σ p log p, with 0 log 0 = 0."""
    pt = probability_vector(p, "p")
    return float(-torch.special.xlogy(pt, pt).sum())


def cross_entropy_between(p: ArrayLike, q: ArrayLike) -> float:
    """CE(p, q) = -Σ p log q; infinite when q is 0 where p is not.

    (`losses.cross_entropy` is the training loss: logits and target ids in, a tensor out.)
    """
    pt, qt = _pair(p, q)
    return float(-torch.special.xlogy(pt, qt).sum())


def kl_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """KL(p ‖ q) = Σ p log(p / q) = CE(p, q) - H(p) >= 0."""
    pt, qt = _pair(p, q)
    return float((torch.special.xlogy(pt, pt) - torch.special.xlogy(pt, qt)).sum())


def _pair(p: ArrayLike, q: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    pt, qt = probability_vector(p, "p"), probability_vector(q, "q")
    same_shape(pt, qt, ("p", "q"))
    return pt, qt
