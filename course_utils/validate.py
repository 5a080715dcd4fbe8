"""Input validation shared by the package: one-line guards whose `ValueError`s name the argument and the problem."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

ArrayLike = Sequence[float] | np.ndarray | torch.Tensor
T = TypeVar("T")


# ---------------------------------------------------------------- numbers

def positive_int(value: int, name: str) -> int:
    """`value` as an int >= 1 (a bool is not a count)."""
    return int_at_least(value, name, 1)


def int_at_least(value: int, name: str, minimum: int) -> int:
    """`value` as an int >= `minimum`; bools, floats, strings and tensors are rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def index(value: int, size: int, name: str, what: str = "an index") -> int:
    """`value` as an int in 0..size-1 (`what` names the kind of index in the message)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not 0 <= value < size:
        raise ValueError(f"{name} must be {what} in 0..{size - 1}, got {value!r}")
    return int(value)


def token_id(value: int, vocab_size: int, name: str) -> int:
    """`value` as an int in 0..vocab_size-1."""
    return index(value, vocab_size, name, "a token id")


def finite_float(value: float, name: str) -> float:
    """`value` as a finite Python float (a number, or a one-element tensor; not a bool or a string)."""
    number = _number(value, name)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def non_negative_float(value: float, name: str) -> float:
    """`value` as a finite float >= 0."""
    number = _number(value, name)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def positive_float(value: float, name: str) -> float:
    """`value` as a finite float > 0."""
    number = _number(value, name)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def number_in(value: float, name: str, low: float, high: float, *,
              include_low: bool = True, include_high: bool = True) -> float:
    """`value` as a float in the interval from `low` to `high` (each end included or not)."""
    number = _number(value, name)
    above = number >= low if include_low else number > low
    below = number <= high if include_high else number < high
    if not (above and below):
        interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return number


def probability(value: float, name: str = "theta") -> float:
    """A probability in [0, 1] as a Python float."""
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {number}")
    return number


def _number(value: float, name: str) -> float:
    """A Python float from a real number or a one-element tensor; NaN and inf pass (callers decide)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        if value.dtype == torch.bool or value.is_complex():
            raise ValueError(f"{name} must be a real number, got a tensor of dtype {value.dtype}")
        return float(value.item())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------- choices, shapes, generators

def one_of(value: T, choices: Sequence[T], name: str) -> T:
    """`value` itself if it is one of `choices`."""
    if not any(type(value) is type(c) and value == c for c in choices):
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    """Nothing if `a` and `b` have one shape; otherwise an error naming both shapes."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")


def torch_generator(value: torch.Generator, name: str = "generator") -> torch.Generator:
    """`value` itself if it is a `torch.Generator` (every random draw in the course names its own)."""
    if not isinstance(value, torch.Generator):
        raise ValueError(f"{name} must be a torch.Generator, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- tensors

def token_ids(tokens: torch.Tensor, vocab_size: int, name: str = "tokens", *,
              ignore_index: int | None = None) -> torch.Tensor:
    """An integer tensor of ids in 0..vocab_size-1 (or equal to `ignore_index`) as int64."""
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of integer token ids, got {type(tokens).__name__}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    ids = tokens.long()
    used = ids if ignore_index is None else ids[ids != ignore_index]
    outside = used[(used < 0) | (used >= vocab_size)]
    if outside.numel():
        unless = "" if ignore_index is None else f" (and is not ignore_index={ignore_index})"
        raise ValueError(f"{name} has id {int(outside[0])} outside 0..{vocab_size - 1}{unless}")
    return ids


def as_tensor(values: ArrayLike, name: str, ndim: int | None = 1, *, finite: bool = True) -> torch.Tensor:
    """`values` as a float64 tensor, rejecting empty, non-numeric, mis-shaped and (if `finite`) NaN/±inf input."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be numbers, got a string {values!r}")
    try:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64) if not isinstance(values, torch.Tensor)
                            else values.detach().to("cpu", torch.float64))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers ({exc})") from None
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: at least one value is needed")
    if finite and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def probability_vector(p: ArrayLike, name: str) -> torch.Tensor:
    """A probability vector as float64: non-negative entries summing to 1 (to 1e-6)."""
    return _rows_of_probabilities(as_tensor(p, name), name)


def probability_rows(p: ArrayLike, name: str) -> torch.Tensor:
    """A float64 tensor of shape (..., V) whose every row along the last axis is a probability vector."""
    t = as_tensor(p, name, ndim=None)
    if t.ndim == 0:
        raise ValueError(f"{name} must have shape (..., V), got a single number")
    return _rows_of_probabilities(t, name)


def _rows_of_probabilities(t: torch.Tensor, name: str) -> torch.Tensor:
    if (t < 0).any():
        raise ValueError(f"{name} has negative entries; probabilities must be >= 0")
    totals = t.sum(-1).reshape(-1)
    worst = float(totals[(totals - 1.0).abs().argmax()])
    if abs(worst - 1.0) > 1e-6:
        each = "" if t.ndim == 1 else " along its last axis"
        raise ValueError(f"{name} must sum to 1{each}, but sums to {worst:.6g}")
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
