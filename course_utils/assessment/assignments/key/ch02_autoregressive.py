"""Instructor key for chapter 02: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import math

import torch

from ....ngram import bigram_probabilities
from ....synthetic import SyntheticLanguage
from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch02_autoregressive import _table, bigram_by_gradient


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


def _descent(tokens, v: int, steps: int, lr: float, scale: float = 1.0, dim: int = 1, extra: int = 0):
    """Gradient descent on the bigram logits with one thing changed: a scaled step, the softmax's axis, more steps."""
    t = torch.as_tensor(tokens).long()
    w = torch.zeros(v, v, dtype=torch.float64, requires_grad=True)
    x, n = torch.nn.functional.one_hot(t[:-1], v).double(), len(t) - 1
    for _ in range(int(steps) + extra):
        loss = -scale * torch.log_softmax(x @ w, dim=1 if dim == 1 else 0)[torch.arange(n), t[1:]].mean()
        (grad,) = torch.autograd.grad(loss, w)
        w = (w - lr * grad).detach().requires_grad_(True)
    return torch.softmax(w.detach(), dim)


def _heldout_score(train, heldout, v: int, k: float, denominator_k: float | None = None) -> float:
    t = torch.as_tensor(heldout).long()
    if denominator_k is None:
        table = bigram_probabilities(train, v, k)
    else:  # (C + k) / (row total + denominator_k): a table whose rows need not sum to 1
        c = _counts(train, v)
        table = (c + k) / (c.sum(1, keepdim=True) + denominator_k).clamp_min(1e-300)
    return float(torch.log(table[t[:-1], t[1:]]).sum())


def _train_score(train, heldout, v: int, k: float) -> float:
    return _heldout_score(train, train, v, k)


def _pick(ks, score, best=max):
    values = [score(float(k)) for k in ks]
    return float(ks[best(range(len(values)), key=lambda i: values[i])])


def _sample(transition, first, n_tokens, seed, row=True, feed_back=True, greedy=False, fresh=False, extra=0):
    """The sampler with one thing changed: column, no feedback, argmax, a fresh generator per draw, one more."""
    table = torch.as_tensor(transition, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    out = [int(first)]
    for _ in range(int(n_tokens) - 1 + extra):
        prev = out[-1] if feed_back else out[0]
        weights = table[prev] if row else table[:, prev]
        if greedy:
            out.append(int(weights.argmax()))
            continue
        gen = torch.Generator().manual_seed(seed) if fresh else g
        out.append(int(torch.multinomial(weights, 1, generator=gen)))
    return out


def _random_table(v: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = -torch.log(torch.rand(v, v, generator=g, dtype=torch.float64))
    return w / w.sum(1, keepdim=True)


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
    "response_log_likelihood": FunctionKey(
        hidden=(Case(([-0.3, -0.7], 1)), Case(([-1.5, -0.2, -3.0, -0.1, -0.6], 3)),
                Case(([-0.4, -0.9, -0.2], 0)),  # no prompt: the conditional is the joint
                Case((torch.tensor([-2.0, -1.0, -0.5, -0.25], dtype=torch.float64), 2))),
        mistakes=(
            Mistake("the joint log Pr(x, y): the prompt's terms included", lambda lp, m: sum(_as_list(lp)),
                    pitfall=True),
            Mistake("drops the first response token", lambda lp, m: sum(_as_list(lp)[m + 1:])),
            Mistake("includes the last prompt token", lambda lp, m: sum(_as_list(lp)[max(m - 1, 0):])),
            Mistake("returns log Pr(x), the prompt's part", lambda lp, m: sum(_as_list(lp)[:m])),
            Mistake("mean over the response instead of sum", lambda lp, m: sum(_as_list(lp)[m:]) / len(
                _as_list(lp)[m:])),
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
    "fit_bigram_by_gradient": FunctionKey(
        hidden=(Case(([0, 1, 1, 2, 0, 1], 3, 1, 1.0)),  # one step
                Case(lambda: (_tokens(6, 200, 24), 6, 50, 5.0)),
                Case(lambda: (torch.tensor(_tokens(4, 60, 25)), 4, 300, 10.0)),  # close to the count table
                Case(([2, 2, 2, 0], 4, 7, 0.5))),  # rows 1 and 3 never seen: uniform
        mistakes=(
            Mistake("returns the count table (where descent is heading)", lambda t, v, steps, lr: bigram_probabilities(
                t, v), pitfall=True),
            Mistake("sums the loss over the pairs instead of averaging", lambda t, v, steps, lr: _descent(
                t, v, steps, lr, scale=len(t) - 1)),
            Mistake("steps up the loss (wrong sign)", lambda t, v, steps, lr: _descent(t, v, steps, -lr)),
            Mistake("softmax over the columns", lambda t, v, steps, lr: _descent(t, v, steps, lr, dim=0)),
            Mistake("one step too many", lambda t, v, steps, lr: bigram_by_gradient(t, v, steps + 1, lr)),
        ),
    ),
    "choose_smoothing": FunctionKey(
        hidden=(Case(lambda: (_tokens(12, 60, 0), _tokens(12, 2000, 1), 12, [0.0, 0.01, 0.1, 1.0, 10.0])),
                Case(([0, 1, 2, 0, 1, 2, 0], [0, 1, 2, 0, 1], 3, [0.5, 0.0, 2.0])),  # no unseen pair: k = 0 wins
                Case(([0, 1, 0, 1], [1, 0, 0, 1], 2, [3.0, 1.0, 0.3]))),
        mistakes=(
            Mistake("chooses k by the training log-likelihood", lambda tr, ho, v, ks: _pick(
                ks, lambda k: _train_score(tr, ho, v, k)), pitfall=True),
            Mistake("returns the best held-out log-likelihood instead of k", lambda tr, ho, v, ks: max(
                _heldout_score(tr, ho, v, float(k)) for k in ks)),
            Mistake("the k with the lowest held-out log-likelihood", lambda tr, ho, v, ks: _pick(
                ks, lambda k: _heldout_score(tr, ho, v, k), best=min)),
            Mistake("adds k, not k·V, to the row total", lambda tr, ho, v, ks: _pick(
                ks, lambda k: _heldout_score(tr, ho, v, k, denominator_k=k))),
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
    "bits_from_log_probs": FunctionKey(
        hidden=(Case(([math.log(0.5), math.log(0.125)],)), Case(([0.0, 0.0],)),
                Case((torch.tensor([-1.0, -3.0], dtype=torch.float64),)), Case(([-0.05] * 40,))),
        mistakes=(
            Mistake("nats, not bits (no division by ln 2)", lambda lp: -sum(_as_list(lp)) / len(_as_list(lp)),
                    pitfall=True),
            Mistake("sum instead of mean", lambda lp: -sum(_as_list(lp)) / math.log(2)),
            Mistake("divides by ln 10", lambda lp: -sum(_as_list(lp)) / len(_as_list(lp)) / math.log(10)),
            Mistake("multiplies by ln 2", lambda lp: -sum(_as_list(lp)) / len(_as_list(lp)) * math.log(2)),
            Mistake("forgets the minus sign", lambda lp: sum(_as_list(lp)) / len(_as_list(lp)) / math.log(2)),
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
    "sample_bigram": FunctionKey(
        hidden=(Case(lambda: (_table(), 1, 1, 3)),  # one token: just `first`
                Case(lambda: (_random_table(5, 31), 4, 60, 7)),
                Case(lambda: (_random_table(8, 32), 0, 200, 123))),
        mistakes=(
            Mistake("always conditions on the first token", lambda p, f, n, s: _sample(p, f, n, s, feed_back=False),
                    pitfall=True),
            Mistake("draws from the column, not the row", lambda p, f, n, s: _sample(p, f, n, s, row=False)),
            Mistake("greedy: the most probable next token", lambda p, f, n, s: _sample(p, f, n, s, greedy=True)),
            Mistake("a fresh generator for every draw", lambda p, f, n, s: _sample(p, f, n, s, fresh=True)),
            Mistake("n_tokens drawn after `first` (one too many)", lambda p, f, n, s: _sample(p, f, n, s, extra=1)),
        ),
    ),
}
