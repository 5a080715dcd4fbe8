"""Sequence likelihood by the chain rule: log-probabilities of sequences and datasets, perplexity, bits, temperature (chapter 02)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .validate import ArrayLike, as_tensor


def sequence_log_prob(conditionals: ArrayLike) -> float:
    """log Pr(x) = Σ_i log Pr(x_i | x_<i), from the conditional probabilities of one sequence.

    A zero conditional makes the sequence impossible: the result is -inf. Multiplying the
    probabilities first would underflow to 0 for long sequences; summing logs does not.
    """
    p = as_tensor(conditionals, "conditionals")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("conditionals must be probabilities in [0, 1]")
    return float(torch.log(p).sum())


def sum_log_probs(log_probs: ArrayLike) -> float:
    """Σ_t log Pr(y_t | x, y_<t): a sequence's (conditional) log-likelihood from its per-step log-probs."""
    lp = as_tensor(log_probs, "log_probs")
    if (lp > 0).any():
        raise ValueError("log-probabilities must be <= 0 (a probability cannot exceed 1)")
    return float(lp.sum())


def two_sequence_objective(p_x0: float, p_x1: float, p_y0: float, p_y1: float, p_y2: float) -> float:
    """The objective for D = {(x_0, x_1), (y_0, y_1, y_2)}, written out term by term.

    log Pr(x_0) + log Pr(x_1 | x_0) + log Pr(y_0) + log Pr(y_1 | y_0) + log Pr(y_2 | y_0, y_1).
    """
    return sequence_log_prob([p_x0, p_x1]) + sequence_log_prob([p_y0, p_y1, p_y2])


def _sequences(sequences: Sequence[ArrayLike], name: str) -> list[torch.Tensor]:
    if isinstance(sequences, (str, bytes, torch.Tensor)) or len(sequences) == 0:
        raise ValueError(f"{name} must be a non-empty list of sequences")
    return [as_tensor(s, f"{name}[{i}]") for i, s in enumerate(sequences)]


def dataset_log_likelihood(sequences: Sequence[ArrayLike]) -> float:
    """Σ_{x∈D} Σ_i log Pr(x_i | x_<i), each sequence given as its conditional probabilities."""
    return sum(sequence_log_prob(s) for s in _sequences(sequences, "sequences"))


def mean_token_log_likelihood(sequences: Sequence[ArrayLike]) -> float:
    """The dataset objective divided by the number of tokens: every token weighs the same."""
    seqs = _sequences(sequences, "sequences")
    return dataset_log_likelihood(seqs) / sum(s.numel() for s in seqs)


def perplexity(mean_nll: float) -> float:
    """exp(mean negative log-likelihood in nats): the effective number of equally likely choices."""
    value = _nonnegative(mean_nll, "mean_nll")
    return math.exp(value) if value < 709 else math.inf


def perplexity_from_log_probs(token_log_probs: ArrayLike) -> float:
    """exp(−mean log Pr(x_t | x_<t)) over the tokens of one or more sequences (concatenated)."""
    lp = as_tensor(token_log_probs, "token_log_probs")
    if (lp > 0).any():
        raise ValueError("log-probabilities must be <= 0 (a probability cannot exceed 1)")
    return perplexity(float(-lp.mean()))


def bits_per_token(mean_nll: float) -> float:
    """Mean negative log-likelihood converted from nats to bits (÷ ln 2)."""
    return _nonnegative(mean_nll, "mean_nll") / math.log(2)


def nats_per_token(bits: float) -> float:
    """Bits per token converted to nats (× ln 2)."""
    return _nonnegative(bits, "bits") * math.log(2)


def perplexity_from_bits(bits: float) -> float:
    """2^bits: the same perplexity as exp(nats)."""
    return 2.0 ** _nonnegative(bits, "bits")


def temperature_distribution(probs: ArrayLike, temperature: float) -> torch.Tensor:
    """p_i^(1/T) / Σ_j p_j^(1/T): sampling probabilities at temperature T (T → 0 is greedy)."""
    from .validate import probability_vector

    p = probability_vector(probs, "probs")
    t = _nonnegative(temperature, "temperature")
    if t == 0:
        return torch.nn.functional.one_hot(p.argmax(), p.numel()).double()
    return torch.softmax(torch.log(p) / t, 0)


def _nonnegative(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not v >= 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v
