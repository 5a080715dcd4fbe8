"""Instructor key for chapter 02: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import math

import torch

from ....synthetic import SyntheticLanguage
from ...items import AnswerKey, Case, FunctionKey, Mistake


def _as_list(x) -> list[float]:
    return [float(v) for v in (x.tolist() if isinstance(x, torch.Tensor) else x)]


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def _counts(tokens, v: int) -> torch.Tensor:
    t = torch.as_tensor(tokens).long()
    return torch.bincount(t[:-1] * v + t[1:], minlength=v * v).reshape(v, v).double()


def _wrapped(tokens, v: int) -> torch.Tensor:
    t = torch.as_tensor(tokens).long()
    c = torch.bincount(t * v + torch.roll(t, -1), minlength=v * v).reshape(v, v).double()
    total = c.sum(1, keepdim=True)
    return torch.where(total > 0, c / total.clamp_min(1), torch.full_like(c, 1 / v))


def _normalised(values: list[float]) -> torch.Tensor:
    t = torch.tensor(values, dtype=torch.float64)
    return t / t.sum()


def _tokens(vocab_size: int, n: int, seed: int) -> list[int]:
    lang = SyntheticLanguage.random(vocab_size, 1, 3, seed=seed)
    return lang.sample(n, torch.Generator().manual_seed(seed)).tolist()


def _probs(n: int, seed: int, low: float = 0.05) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (low + (1 - low) * torch.rand(n, generator=g, dtype=torch.float64)).tolist()


KEY = {
    "sequence_log_prob": FunctionKey(
        hidden=(Case(([0.3],)),  # one token: a loop that skips the first term returns 0
                Case(([0.9, 0.0, 0.9],)),  # an impossible token: -inf
                Case(lambda: (_probs(40, 21),)),
                Case(([0.2, 0.5, 0.1, 0.9],))),
        mistakes=(
            Mistake("log of the product", lambda p: _log(math.prod(_as_list(p))), pitfall=True),
            Mistake("multiplies the log-probabilities", lambda p: math.prod(_log(v) for v in _as_list(p))),
            Mistake("sums the probabilities", lambda p: _log(sum(_as_list(p)))),
            Mistake("forgets the first term", lambda p: sum(_log(v) for v in _as_list(p)[1:])),
            Mistake("returns the product", lambda p: math.prod(_as_list(p))),
            Mistake("mean instead of sum", lambda p: sum(_log(v) for v in _as_list(p)) / len(_as_list(p))),
        ),
    ),
    "objective_two_sequences": FunctionKey(
        hidden=(Case((0.1, 0.2, 0.3, 0.4, 0.5)), Case((0.9, 0.9, 0.01, 0.9, 0.9)),
                Case((0.02, 0.9, 0.9, 0.9, 0.9)), Case((0.9, 0.9, 0.9, 0.9, 0.03)),
                Case((0.6, 0.0, 0.5, 0.5, 0.5))),
        mistakes=(
            Mistake("multiplies the two sequences' log-probabilities", lambda a, b, c, d, e: (
                (_log(a) + _log(b)) * (_log(c) + _log(d) + _log(e))), pitfall=True),
            Mistake("forgets log Pr(y_0)", lambda a, b, c, d, e: _log(a) + _log(b) + _log(d) + _log(e)),
            Mistake("forgets log Pr(x_0)", lambda a, b, c, d, e: _log(b) + _log(c) + _log(d) + _log(e)),
            Mistake("sums the probabilities", lambda a, b, c, d, e: _log(a + b) + _log(c + d + e)),
            Mistake("forgets the last term", lambda a, b, c, d, e: _log(a) + _log(b) + _log(c) + _log(d)),
        ),
    ),
    "ANSWER_OBJECTIVE_CHANGE": AnswerKey(
        expected=2.5,
        atol=1e-9,
    ),
    "ANSWER_LONG_SEQUENCES": AnswerKey(
        expected="C",
        why_not=(("A", "a long sequence has LOWER probability: every extra token multiplies in a factor below 1."),
                 ("B", "the logarithm is applied to each probability alike; it favours no length."),
                 ("D", "the objective is a fixed sum over the data set; how often an optimizer visits a "
                       "sequence does not change which terms the sum contains.")),
    ),
    "ANSWER_CHAIN_RULE": AnswerKey(
        expected="B",
        why_not=(("A", "Bayes' theorem turns Pr(a | b) into Pr(b | a); it does not factorise a sequence into "
                       "next-token conditionals."),
                 ("C", "the logarithm turns a product into a sum, not a sum into a product."),
                 ("D", "the tokens of a text are not independent; the conditionals Pr(x_i | x_<i) keep the "
                       "dependence on earlier tokens, and the decomposition needs no independence.")),
    ),
    "ANSWER_LOG_CLAIM": AnswerKey(
        expected=False,
        why_not=((True, "the logarithm turns a product into a sum; the equivalence comes from the chain rule, "
                        "which writes Pr(x) as a product of conditionals."),),
    ),
    "conditional_log_likelihood": FunctionKey(
        hidden=(Case(([-2.0, -0.5, -0.5],)), Case(([-0.7],)), Case(([-0.1] * 50,)),
                Case((torch.tensor([-1.5, -0.2, -3.0], dtype=torch.float64),))),
        mistakes=(
            Mistake("multiplies the log-probabilities", lambda lp: math.prod(_as_list(lp)), pitfall=True),
            Mistake("sums the probabilities", lambda lp: _log(sum(math.exp(v) for v in _as_list(lp)))),
            Mistake("forgets the first step", lambda lp: sum(_as_list(lp)[1:])),
            Mistake("mean instead of sum", lambda lp: sum(_as_list(lp)) / len(_as_list(lp))),
        ),
    ),
    "ANSWER_FLAWED_CALCULATION": AnswerKey(
        expected="D",
        why_not=(("A", "log(e^-0.7 + e^-0.4) = log(1.167) ≈ 0.154, not 0.28."),
                 ("B", "forgetting the first token leaves -0.4, not 0.28."),
                 ("C", "the mean of -0.7 and -0.4 is -0.55, not 0.28.")),
    ),
    "most_likely_sequence": FunctionKey(
        hidden=(Case(([[0.9, 0.0], [0.1, 0.1]],)),  # an impossible token loses
                Case(([[0.2], [0.9, 0.9, 0.3], [0.5, 0.5]],)),
                Case(([[0.1, 0.1], [0.4, 0.01], [0.05, 0.3]],))),
        mistakes=(
            Mistake("ranks by the summed probabilities", lambda seqs: max(
                range(len(seqs)), key=lambda i: sum(seqs[i])), pitfall=True),
            Mistake("multiplies the log-probabilities", lambda seqs: max(range(len(seqs)), key=lambda i: math.prod(
                math.log(v) if v > 0 else -1e300 for v in seqs[i]))),
            Mistake("lowest instead of highest", lambda seqs: min(
                range(len(seqs)), key=lambda i: sum(_log(v) for v in seqs[i]))),
        ),
    ),
    "bigram_mle": FunctionKey(
        hidden=(Case(lambda: (_tokens(6, 400, 22), 6)),
                Case(lambda: (torch.tensor(_tokens(4, 50, 23)), 4)),
                Case(([2, 2, 2, 2], 4))),
        mistakes=(
            Mistake("NaN rows for unseen contexts", lambda t, v: _counts(t, v) / _counts(t, v).sum(1, keepdim=True),
                    pitfall=True),
            Mistake("unseen contexts left at zero", lambda t, v: _counts(t, v) / _counts(t, v).sum(
                1, keepdim=True).clamp_min(1)),
            Mistake("normalises the columns", lambda t, v: _counts(t, v) / _counts(t, v).sum(
                0, keepdim=True).clamp_min(1)),
            Mistake("add-one smoothing", lambda t, v: (_counts(t, v) + 1) / (_counts(t, v) + 1).sum(
                1, keepdim=True)),
            Mistake("wraps around the end", _wrapped),
        ),
    ),
    "perplexity_from_log_probs": FunctionKey(
        hidden=(Case(([math.log(0.5), math.log(0.125)],)), Case(([-0.1, -2.3, -0.7, -1.2],)),
                Case(([0.0, 0.0],)), Case((torch.tensor([-1.0, -3.0], dtype=torch.float64),))),
        mistakes=(
            Mistake("sum instead of mean", lambda lp: math.exp(-sum(_as_list(lp))), pitfall=True),
            Mistake("base 2 with natural logs", lambda lp: 2 ** (-sum(_as_list(lp)) / len(_as_list(lp)))),
            Mistake("forgets the minus sign", lambda lp: math.exp(sum(_as_list(lp)) / len(_as_list(lp)))),
            Mistake("the mean NLL, not its exp", lambda lp: -sum(_as_list(lp)) / len(_as_list(lp))),
        ),
    ),
    "temperature_probs": FunctionKey(
        hidden=(Case(([0.5, 0.3, 0.2], 2.0)), Case(([0.1, 0.6, 0.3], 0.0)),
                Case(([0.25, 0.25, 0.25, 0.25], 0.3)), Case(([0.7, 0.2, 0.1], 10.0))),
        mistakes=(
            Mistake("divides the probabilities by T", lambda p, t: torch.softmax(
                torch.tensor(_as_list(p), dtype=torch.float64) / max(t, 1e-9), 0), pitfall=True),
            Mistake("raises to the power T, not 1/T", lambda p, t: _normalised([v ** t for v in _as_list(p)])),
            Mistake("ignores T", lambda p, t: torch.tensor(_as_list(p), dtype=torch.float64)),
        ),
    ),
}
