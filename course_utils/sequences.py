"""Chain-rule likelihood of sequences and datasets: log-probabilities, perplexity, bits, temperature (chapter 02)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .validate import ArrayLike, as_tensor, int_at_least, non_negative_float, probability_rows


def sequence_log_prob(conditionals: ArrayLike) -> float:
    """log Pr(x) = Σ_i log Pr(x_i | x_<i), from the conditional probabilities of one sequence.

    A zero conditional makes the sequence impossible: the result is -inf. Multiplying the
    probabilities first would underflow to 0 for long sequences; summing logs does not.
    """
    return float(torch.log(_probabilities(conditionals, "conditionals")).sum())


def sum_log_probs(log_probs: ArrayLike) -> float:
    """Σ_t log Pr(y_t | x, y_<t): a sequence's (conditional) log-likelihood from its per-step log-probs."""
    return float(_log_probabilities(log_probs, "log_probs").sum())


def response_log_prob(token_log_probs: ArrayLike, prompt_length: int) -> float:
    """log Pr(y | x): the sum of the terms after the first `prompt_length` (the prompt x's own terms are left out).

    `token_log_probs` lists log Pr(x_1), log Pr(x_2 | x_1), … for the prompt followed by the response;
    the joint log Pr(x, y) is the sum of all of them, and log Pr(x, y) = log Pr(x) + log Pr(y | x).
    """
    lp = _log_probabilities(token_log_probs, "token_log_probs")
    prompt_length = int_at_least(prompt_length, "prompt_length", 0)
    if prompt_length >= lp.numel():
        raise ValueError(f"prompt_length ({prompt_length}) must leave at least one response token "
                         f"among the {lp.numel()} terms")
    return float(lp[prompt_length:].sum())


def within_term_bound(total: float, log_probs: ArrayLike, tol: float = 1e-9) -> bool:
    """Whether a claimed total log-probability is at most every one of its terms, as every true total is.

    Each term log Pr(x_i | x_<i) is ≤ 0, so adding the others can only move the sum further from 0:
    Σ_i log Pr(x_i | x_<i) ≤ min_i log Pr(x_i | x_<i). A total closer to 0 than some term is wrong (a
    product of log-probabilities, the log of summed probabilities, a mean); passing proves nothing.
    """
    lp = _log_probabilities(log_probs, "log_probs")
    value = float(total)
    if math.isnan(value):
        raise ValueError("total is NaN")
    return value <= float(lp.min()) + non_negative_float(tol, "tol")


def two_sequence_objective(p_x0: float, p_x1: float, p_y0: float, p_y1: float, p_y2: float) -> float:
    """The objective for D = {(x_0, x_1), (y_0, y_1, y_2)}, written out term by term.

    log Pr(x_0) + log Pr(x_1 | x_0) + log Pr(y_0) + log Pr(y_1 | y_0) + log Pr(y_2 | y_0, y_1).
    """
    return sequence_log_prob([p_x0, p_x1]) + sequence_log_prob([p_y0, p_y1, p_y2])


def dataset_log_likelihood(sequences: Sequence[ArrayLike]) -> float:
    """Σ_{x∈D} Σ_i log Pr(x_i | x_<i), each sequence given as its conditional probabilities."""
    return sum(sequence_log_prob(s) for s in _sequences(sequences, "sequences"))


def perplexity(mean_nll: float) -> float:
    """exp(mean negative log-likelihood in nats): the effective number of equally likely choices."""
    value = non_negative_float(mean_nll, "mean_nll")
    return math.exp(value) if value < 709 else math.inf


def perplexity_from_log_probs(token_log_probs: ArrayLike) -> float:
    """exp(−mean log Pr(x_t | x_<t)) over the tokens of one or more sequences (concatenated)."""
    return perplexity(float(-_log_probabilities(token_log_probs, "token_log_probs").mean()))


def bits_per_token(mean_nll: float) -> float:
    """Mean negative log-likelihood converted from nats to bits (÷ ln 2)."""
    return non_negative_float(mean_nll, "mean_nll") / math.log(2)


def bits_from_log_probs(token_log_probs: ArrayLike) -> float:
    """Bits per token: −mean log Pr(x_t | x_<t) (natural logs) divided by ln 2."""
    return bits_per_token(float(-_log_probabilities(token_log_probs, "token_log_probs").mean()))


def perplexity_from_bits(bits: float) -> float:
    """2^bits: the same perplexity as exp(nats)."""
    return 2.0 ** non_negative_float(bits, "bits")


def temperature_distribution(probs: ArrayLike, temperature: float) -> torch.Tensor:
    """p_i^(1/T) / Σ_j p_j^(1/T) along the last axis (float64): sampling at temperature T; T = 0 is greedy.

    Computed as softmax((log p - max log p) / T), which stays finite for any T > 0. At T = 0 all
    mass goes to the most probable entry (the first, on a tie). For logits z, softmax(z / T)
    equals `temperature_distribution(softmax(z), T)`.
    """
    p = probability_rows(probs, "probs")
    t = non_negative_float(temperature, "temperature")
    if t == 0:
        return torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).double()
    log_p = torch.log(p)
    return torch.softmax((log_p - log_p.amax(-1, keepdim=True)) / t, -1)


# ---------------------------------------------------------------- guards

def _probabilities(values: ArrayLike, name: str) -> torch.Tensor:
    p = as_tensor(values, name)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"{name} must be probabilities in [0, 1]")
    return p


def _log_probabilities(values: ArrayLike, name: str) -> torch.Tensor:
    lp = as_tensor(values, name)
    if (lp > 0).any():
        raise ValueError(f"{name} must be log-probabilities <= 0 (a probability cannot exceed 1)")
    return lp


def _sequences(sequences: Sequence[ArrayLike], name: str) -> list[torch.Tensor]:
    if isinstance(sequences, (str, bytes, torch.Tensor)) or len(sequences) == 0:
        raise ValueError(f"{name} must be a non-empty list of sequences")
    return [as_tensor(s, f"{name}[{i}]") for i, s in enumerate(sequences)]
