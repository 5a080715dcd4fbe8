"""Input validation shared by the reference maths: clear `ValueError`s that name the problem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = Sequence[float] | np.ndarray | torch.Tensor


def as_tensor(values: ArrayLike, name: str, ndim: int | None = 1) -> torch.Tensor:
    """`values` as a float64 tensor, rejecting empty, non-numeric, non-finite or mis-shaped input."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be numbers, got a string {values!r}")
    try:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64) if not isinstance(values, torch.Tensor)
                            else values.detach().to("cpu", torch.float64))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers ({exc})") from None
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: at least one value is needed")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def as_flips(flips: ArrayLike) -> torch.Tensor:
    """Coin flips (1 = heads, 0 = tails, or the letters 'H'/'T') as a float64 tensor of 0s and 1s."""
    if isinstance(flips, str):
        letters = flips.replace(",", "").replace(" ", "").upper()
        if set(letters) - {"H", "T"}:
            raise ValueError(f"flips written as text may use only H and T, got {flips!r}")
        flips = [1.0 if c == "H" else 0.0 for c in letters]
    t = as_tensor(flips, "flips")
    if not ((t == 0) | (t == 1)).all():
        raise ValueError("flips must contain only 0 (tails) and 1 (heads)")
    return t


def as_probability(theta: float, name: str = "theta") -> float:
    """A probability in [0, 1] as a Python float."""
    if isinstance(theta, torch.Tensor):
        if theta.numel() != 1:
            raise ValueError(f"{name} must be a single number, got shape {tuple(theta.shape)}")
        theta = theta.item()
    try:
        value = float(theta)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {theta!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def as_distribution(p: ArrayLike, name: str) -> torch.Tensor:
    """A probability vector: non-negative entries summing to 1 (to 1e-6)."""
    t = as_tensor(p, name)
    if (t < 0).any():
        raise ValueError(f"{name} has negative entries; probabilities must be >= 0")
    total = float(t.sum())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, but sums to {total:.6g}")
    return t
