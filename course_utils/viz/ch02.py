"""Chapter 02 figures and explorers: per-token log-probabilities, length, entropy convergence, temperature."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .common import token_log_probs


def entropy_convergence(ns: Sequence[int], cross_entropy: Sequence[float], entropy: float) -> Figure:
    """Exact cross-entropy of models fitted on n tokens, falling towards the source's entropy rate."""
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
    n = np.asarray(list(lengths), dtype=float)
    lp = np.asarray(list(seq_log_probs), dtype=float)
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
    """The next-token distribution at several temperatures, as grouped bars."""
    pos = np.arange(len(labels))
    width = 0.8 / len(temperatures)
    fig, ax = plt.subplots(layout="constrained")
    for j, (t, row) in enumerate(zip(temperatures, probs, strict=True)):
        ax.bar(pos + (j - (len(temperatures) - 1) / 2) * width, np.asarray(row), width=width, label=f"T = {t:g}")
    ax.set_xticks(pos, [repr(s)[1:-1] or "␣" for s in labels])
    ax.set(xlabel="next token", ylabel="probability", title="low T sharpens, high T flattens")
    ax.legend(fontsize=8)
    return fig


class SequenceExplorer:
    """Type a text and see each token's log-probability under a model, with the running total.

    `score(text)` must return (labels, log_probs) or raise ValueError (e.g. an unknown
    character); the explorer shows the error as a ❌ line instead of a chart.
    """

    def __init__(self, score, text: str = "the cat", draw: bool = True):
        self.score = score
        self.text = W.Text(value=text, description="text", continuous_update=False,
                           layout=W.Layout(width="60%"))
        self.summary = W.HTML()
        self.plot = W.Output()
        self.draw = draw
        self.labels: list[str] = []
        self.log_probs: list[float] = []
        self.total: float | None = None
        self.text.observe(self._update, names="value")
        self.widget = W.VBox([self.text, self.summary, self.plot])
        self._update()

    @classmethod
    def for_bigram(cls, model, tokenizer, text: str = "the cat", draw: bool = True) -> SequenceExplorer:
        """An explorer for a `BigramModel` over a character (or word) tokenizer's ids."""

        def score(value: str) -> tuple[list[str], list[float]]:
            if not value:
                raise ValueError("the text is empty")
            ids = tokenizer.encode(value)
            labels = [tokenizer.decode([i]) for i in ids.tolist()]
            return labels, model.token_log_probs(ids).tolist()

        return cls(score, text, draw)

    def _update(self, _change: object = None) -> None:
        try:
            labels, log_probs = self.score(self.text.value)
        except ValueError as exc:
            self.labels, self.log_probs, self.total = [], [], None
            self.summary.value = f"❌ {exc}. Hint: use only characters the model has seen."
            self.plot.clear_output()
            return
        self.labels, self.log_probs = list(labels), [float(v) for v in log_probs]
        if not self.log_probs:
            self.total = None
            self.summary.value = "❌ nothing to score. Hint: type at least one character."
            self.plot.clear_output()
            return
        self.total = float(sum(self.log_probs))
        worst = min(range(len(self.log_probs)), key=self.log_probs.__getitem__)
        mean = self.total / len(self.log_probs)
        self.summary.value = (
            f"{len(self.log_probs)} tokens · log Pr = {self.total:.4f} nats · "
            f"mean {mean:.4f} nats/token · least likely: {self.labels[worst]!r} "
            f"({self.log_probs[worst]:.4f})"
        )
        if self.draw:
            self.plot.clear_output(wait=True)
            with self.plot:
                token_log_probs(self.labels, self.log_probs)
                plt.show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
