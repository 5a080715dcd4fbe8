"""Chapter 02 figures and explorers: bigram counts, per-token log-probabilities, length, entropy, temperature."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..validate import finite_float
from .common import same_length, series, tick_label, token_log_probs
from .explorer import Explorer, Rejected

if TYPE_CHECKING:  # annotations only: the explorer works with any model and tokenizer of this shape
    from ..ngram import BigramModel
    from ..text import CharTokenizer, WordTokenizer


def bigram_heatmap(counts: torch.Tensor, labels: Sequence[str], title: str = "bigram counts") -> Figure:
    """The pair counts C[a, b] = #(a followed by b) as a heat map: previous token down, next token across.

    Colours follow log(1 + count), so rare pairs stay visible beside frequent ones; a space in a
    label shows as "␣".
    """
    c = torch.as_tensor(counts, dtype=torch.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(labels):
        raise ValueError(f"counts must have shape (len(labels), len(labels)) = ({len(labels)}, {len(labels)}), "
                         f"got {tuple(c.shape)}")
    if not torch.isfinite(c).all() or (c < 0).any():
        raise ValueError("counts must be finite and non-negative")
    ticks = [tick_label(s) for s in labels]
    fig, ax = plt.subplots(figsize=(6.0, 5.0), layout="constrained")
    image = ax.imshow(torch.log1p(c).numpy(), cmap="viridis")
    ax.set_xticks(np.arange(len(ticks)), ticks)
    ax.set_yticks(np.arange(len(ticks)), ticks)
    ax.grid(False)
    ax.set(xlabel="next token b", ylabel="previous token a", title=title)
    fig.colorbar(image, ax=ax, label="log(1 + #(a b))")
    return fig


def entropy_convergence(ns: Sequence[int], cross_entropy: Sequence[float], entropy: float) -> Figure:
    """Exact cross-entropy of models fitted on n tokens, falling towards the source's entropy rate."""
    same_length(ns=ns, cross_entropy=cross_entropy)
    ns, cross_entropy = series(ns, "ns", positive=True), series(cross_entropy, "cross_entropy")
    entropy = finite_float(entropy, "entropy")
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    a.plot(ns, cross_entropy, "o-", label="fitted bigram: cross-entropy")
    a.axhline(entropy, color="C2", linestyle=":", label=f"entropy rate H = {entropy:.4f}")
    a.set(xscale="log", xlabel="training tokens n", ylabel="nats per token", title="CE → H")
    a.legend(fontsize=8)
    b.loglog(ns, np.asarray(cross_entropy) - entropy, "o-", color="C3")
    b.set(xlabel="training tokens n", ylabel="CE − H = KL (nats per token)", title="the gap shrinks")
    return fig


def length_dominance(lengths: Sequence[int], seq_log_probs: Sequence[float]) -> Figure:
    """Each sequence's log-probability against its length: long ones carry most of the sum."""
    same_length(lengths=lengths, seq_log_probs=seq_log_probs)
    n, lp = series(lengths, "lengths", positive=True), series(seq_log_probs, "seq_log_probs")
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    a.scatter(n, lp, s=12)
    a.set(xlabel="sequence length (tokens)", ylabel="log Pr(x) (nats)", title="one term per token")
    order = np.argsort(-n)
    share = np.cumsum(lp[order]) / lp.sum()
    b.plot(np.arange(1, len(n) + 1) / len(n), share, label="share of the objective")
    b.plot(np.arange(1, len(n) + 1) / len(n), np.cumsum(n[order]) / n.sum(), "--", label="share of the tokens")
    b.set(xlabel="fraction of sequences (longest first)", ylabel="cumulative share",
          title="sum ≈ tokens, not sequences")
    b.legend(fontsize=8)
    return fig


def temperature_bars(labels: Sequence[str], probs: torch.Tensor, temperatures: Sequence[float]) -> Figure:
    """The next-token distribution at several temperatures, as grouped bars (one row of `probs` per temperature)."""
    series(temperatures, "temperatures")
    rows = torch.as_tensor(probs, dtype=torch.float64)
    if rows.shape != (len(temperatures), len(labels)):
        raise ValueError(f"probs must have shape (len(temperatures), len(labels)) = "
                         f"({len(temperatures)}, {len(labels)}), got {tuple(rows.shape)}")
    pos = np.arange(len(labels))
    width = 0.8 / len(temperatures)
    fig, ax = plt.subplots(layout="constrained")
    for j, (t, row) in enumerate(zip(temperatures, rows.numpy(), strict=True)):
        ax.bar(pos + (j - (len(temperatures) - 1) / 2) * width, row, width=width, label=f"T = {t:g}")
    ax.set_xticks(pos, [tick_label(s) for s in labels])
    ax.set(xlabel="next token", ylabel="probability", title="low T sharpens, high T flattens")
    ax.legend(fontsize=8)
    return fig


class SequenceExplorer(Explorer):
    """Type a text and see each token's log-probability under a model, with the running total.

    `score(text)` must return (labels, log_probs) or raise ValueError (e.g. an unknown
    character); the explorer shows the error as a ❌ line instead of a chart. State after each
    change: `labels`, `log_probs` and their sum `total` (None when the text cannot be scored).
    """

    def __init__(self, score: Callable[[str], tuple[Sequence[str], Sequence[float]]], text: str = "the cat",
                 draw: bool = True) -> None:
        self.score = score
        self.text = W.Text(value=text, description="text", continuous_update=False,
                           layout=W.Layout(width="60%"))
        self.labels: list[str] = []
        self.log_probs: list[float] = []
        self.total: float | None = None
        super().__init__([self.text], draw)

    @classmethod
    def for_bigram(cls, model: BigramModel, tokenizer: CharTokenizer | WordTokenizer, text: str = "the cat",
                   draw: bool = True) -> SequenceExplorer:
        """An explorer for a `BigramModel` over a character (or word) tokenizer's ids."""

        def score(value: str) -> tuple[list[str], list[float]]:
            if not value:
                raise ValueError("the text is empty")
            ids = tokenizer.encode(value)
            labels = [tokenizer.decode([i]) for i in ids.tolist()]
            return labels, model.token_log_probs(ids).tolist()

        return cls(score, text, draw)

    def compute(self) -> str:
        try:
            labels, log_probs = self.score(self.text.value)
        except ValueError as exc:
            raise Rejected(str(exc), "use only characters the model has seen") from None
        if len(log_probs) == 0:
            raise Rejected("nothing to score", "type at least one character")
        self.labels, self.log_probs = list(labels), [float(v) for v in log_probs]
        self.total = float(sum(self.log_probs))
        worst = min(range(len(self.log_probs)), key=self.log_probs.__getitem__)
        mean = self.total / len(self.log_probs)
        return (f"{len(self.log_probs)} tokens · log Pr = {self.total:.4f} nats · "
                f"mean {mean:.4f} nats/token · least likely: {html.escape(repr(self.labels[worst]), quote=False)} "
                f"({self.log_probs[worst]:.4f})")

    def reset(self) -> None:
        self.labels, self.log_probs, self.total = [], [], None

    def make_figure(self) -> Figure:
        return token_log_probs(self.labels, self.log_probs)
