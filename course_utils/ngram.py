"""Bigram language models: fitted by counting (the MLE) or by gradient descent, scored and sampled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .sequences import temperature_distribution
from .validate import non_negative_float, one_of, positive_float, positive_int, token_id, token_ids

TokenData = torch.Tensor | Sequence[int] | Sequence[torch.Tensor] | Sequence[Sequence[int]]


def bigram_counts(data: TokenData, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first-token counts (V,), pair counts (V, V)) with pairs[a, b] = #(a followed by b)."""
    seqs = as_sequences(data, vocab_size)
    start = torch.zeros(vocab_size, dtype=torch.float64)
    pairs = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
    for s in seqs:
        start[s[0]] += 1
        if len(s) > 1:
            pairs += torch.bincount(s[:-1] * vocab_size + s[1:], minlength=vocab_size**2).double()
    return start, pairs.reshape(vocab_size, vocab_size)


def normalise_counts(counts: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """(counts + k) / row total: the MLE for k = 0, add-k smoothing otherwise; empty rows are uniform."""
    c = counts.double() + non_negative_float(smoothing, "smoothing")
    total = c.sum(-1, keepdim=True)
    uniform = torch.full_like(c, 1.0 / c.shape[-1])
    return torch.where(total > 0, c / total.clamp_min(1e-300), uniform)


def bigram_probabilities(tokens: TokenData, vocab_size: int, smoothing: float = 0.0) -> torch.Tensor:
    """Pr(b | a) = #(a b) / #(a ·) as a (V, V) float64 matrix; a row never seen is uniform."""
    return normalise_counts(bigram_counts(tokens, vocab_size)[1], smoothing)


@dataclass(frozen=True)
class BigramModel:
    """Pr(x_1) · Π_t Pr(x_t | x_{t-1}): a start distribution and a (V, V) transition matrix."""

    start: torch.Tensor  # (V,) Pr(x_1 = a)
    transition: torch.Tensor  # (V, V) Pr(x_t = b | x_{t-1} = a)

    def __post_init__(self) -> None:
        v = self.start.shape[0] if self.start.ndim == 1 else -1
        if v < 1 or tuple(self.transition.shape) != (v, v):
            raise ValueError(f"start must have shape (V,) and transition (V, V), got "
                             f"{tuple(self.start.shape)} and {tuple(self.transition.shape)}")

    @property
    def vocab_size(self) -> int:
        return self.start.shape[0]

    @classmethod
    def fit_counts(cls, data: TokenData, vocab_size: int, smoothing: float = 0.0,
                   start: str = "first") -> BigramModel:
        """The maximum-likelihood bigram model (counting), optionally with add-k smoothing.

        `start="first"` fits Pr(x_1) to the first tokens of the sequences (the MLE). One long
        stream has a single first token, so `start="unigram"` uses the frequency of every token
        instead, a sensible first-token distribution for scoring new text.
        """
        one_of(start, ("first", "unigram"), "start")
        first, pairs = bigram_counts(data, vocab_size)
        if start == "unigram":
            first = torch.zeros(vocab_size, dtype=torch.float64)
            for s in as_sequences(data, vocab_size):
                first += torch.bincount(s, minlength=vocab_size).double()
        return cls(normalise_counts(first, smoothing), normalise_counts(pairs, smoothing))

    @classmethod
    def fit_gradient(cls, data: TokenData, vocab_size: int, steps: int = 300, lr: float = 0.5,
                     progress: bool = False) -> tuple[BigramModel, list[float]]:
        """Maximise the mean log-likelihood over softmax logits with Adam; returns (model, losses).

        The loss is the mean negative log-likelihood per token, −(1/N) Σ log Pr(x_t | x_{t-1}),
        computed from the counts (the same number as summing over every token). Rows never seen
        receive no gradient and stay uniform, as in `fit_counts`.
        """
        steps, lr = positive_int(steps, "steps"), positive_float(lr, "lr")
        start_counts, pairs = bigram_counts(data, vocab_size)
        n_tokens = float(start_counts.sum() + pairs.sum())
        w = torch.zeros(vocab_size, vocab_size, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(vocab_size, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        losses = []
        bar = range(steps)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(bar, desc="gradient descent", unit="step")
        for _ in bar:
            ll = (pairs * torch.log_softmax(w, 1)).sum() + (start_counts * torch.log_softmax(b, 0)).sum()
            loss = -ll / n_tokens
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            return cls(torch.softmax(b, 0), torch.softmax(w, 1)), losses

    def token_log_probs(self, tokens: TokenData) -> torch.Tensor:
        """log Pr(x_1), log Pr(x_2 | x_1), …: one term per token of one sequence (float64)."""
        seqs = as_sequences(tokens, self.vocab_size)
        if len(seqs) != 1:
            raise ValueError(f"token_log_probs takes one sequence, got {len(seqs)}")
        x = seqs[0]
        first = torch.log(self.start.double()[x[:1]])
        rest = torch.log(self.transition.double()[x[:-1], x[1:]])
        return torch.cat([first, rest])

    def log_prob(self, tokens: TokenData) -> float:
        """log Pr(x) = Σ_t log Pr(x_t | x_{t-1}) for one sequence (the chain rule)."""
        return float(self.token_log_probs(tokens).sum())

    def mean_nll(self, data: TokenData, include_first: bool = True) -> float:
        """Mean negative log-likelihood per predicted token (nats) over one or several sequences.

        With `include_first=False` the first token of each sequence is conditioned on, not
        predicted: the per-token loss of a long stream without its start distribution.
        """
        total, count = 0.0, 0
        for s in as_sequences(data, self.vocab_size):
            terms = self.token_log_probs(s)
            terms = terms if include_first else terms[1:]
            total -= float(terms.sum())
            count += terms.numel()
        if count == 0:
            raise ValueError("no token to predict: every sequence has a single token")
        return total / count

    def sample(self, n_tokens: int, generator: torch.Generator, temperature: float = 1.0,
               first: int | None = None) -> torch.Tensor:
        """Generate `n_tokens` ids, each drawn from Pr(· | previous) sharpened by `temperature`.

        temperature 1 samples the model; below 1 favours likely tokens; 0 is greedy (argmax).
        `first` fixes the first token instead of drawing it from the start distribution.
        """
        n_tokens = positive_int(n_tokens, "n_tokens")
        if first is not None:
            first = token_id(first, self.vocab_size, "first")
        start = temperature_distribution(self.start, temperature)
        table = temperature_distribution(self.transition, temperature)
        out = [first if first is not None else _draw(start, generator)]
        for _ in range(n_tokens - 1):
            out.append(_draw(table[out[-1]], generator))
        return torch.tensor(out, dtype=torch.long)


def _draw(p: torch.Tensor, generator: torch.Generator) -> int:
    return int(torch.multinomial(p, 1, generator=generator))


# ---------------------------------------------------------------- guards

def as_sequences(data: TokenData, vocab_size: int) -> list[torch.Tensor]:
    """One or several token sequences as a list of 1-D int64 tensors with ids in 0..vocab_size-1."""
    vocab_size = positive_int(vocab_size, "vocab_size")
    if isinstance(data, (str, bytes)):
        raise ValueError("tokens must be integer ids; encode text with a tokenizer first")
    if isinstance(data, torch.Tensor):
        seqs = [data] if data.ndim == 1 else list(data)
    else:
        items = list(data)
        nested = bool(items) and all(isinstance(s, (torch.Tensor, list, tuple)) for s in items)
        seqs = items if nested else [items]
    out = [_sequence(s, vocab_size, f"sequence {i}") for i, s in enumerate(seqs)]
    if not out:
        raise ValueError("no sequences given: at least one token is needed")
    return out


def _sequence(values: Sequence[int] | torch.Tensor, vocab_size: int, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must hold integer token ids, got {values!r}") from None
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty")
    return token_ids(t, vocab_size, name)
