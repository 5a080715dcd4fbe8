"""Chapter 03 figures and explorers: the MLM loss curve, the loss by position kind, per-token terms, masking."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from .. import mlm
from ..mlm import LogitsFn
from ..runtime import model_device
from ..validate import finite_float, positive_int
from .common import same_length, series, tick_label, token_log_probs
from .explorer import Explorer, Rejected


def mlm_loss_curve(steps: Sequence[int], train: Sequence[float], val_steps: Sequence[int],
                   val: Sequence[float], baseline: float) -> Figure:
    """Masked-token loss during training, with the unigram (context-free) baseline as a line."""
    same_length(steps=steps, train=train)
    same_length(val_steps=val_steps, val=val)
    baseline = finite_float(baseline, "baseline")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(list(steps), list(train), color="C0", alpha=0.4, label="training batches")
    ax.plot(list(val_steps), list(val), color="C1", marker="o", markersize=4, label="held-out masked tokens")
    ax.axhline(baseline, color="C3", linestyle="--", label=f"unigram baseline {baseline:.3f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss on masked tokens (nats)")
    ax.set_title("a bidirectional model learns to use context on both sides")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def pll_vs_causal(labels: Sequence[str], pll_terms: Sequence[float], causal_terms: Sequence[float],
                  left_terms: Sequence[float] | None = None) -> Figure:
    """Per-token terms of the pseudo-log-likelihood and of a causal model's chain rule, one bar each.

    With `left_terms` (the same bidirectional model shown only the left side, `mlm.left_only_log_probs`),
    a third bar per token sits beside the pseudo-log-likelihood's: one model with and without the right side.
    """
    n = same_length(labels=labels, pll_terms=pll_terms, causal_terms=causal_terms)
    pll, causal = series(pll_terms, "pll_terms"), series(causal_terms, "causal_terms")
    bars = []
    if left_terms is not None:
        same_length(labels=labels, left_terms=left_terms)
        bars.append((series(left_terms, "left_terms"), "#9ecae1",
                     r"bidirectional, left side only: $\log \Pr(x_i \mid x_{<i})$"))
    bars += [(pll, "C0", r"bidirectional, both sides (PLL term): $\log \Pr(x_i \mid x_{\setminus i})$"),
             (causal, "C1", r"causal model (trained apart): $\log \Pr(x_i \mid x_{<i})$")]
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * n * len(bars) / 2 + 2), 3.2))
    xs = torch.arange(n).float()
    for k, (values, color, label) in enumerate(bars):
        ax.bar((xs + (k - (len(bars) - 1) / 2) * width).tolist(), values, width=width, color=color, label=label)
    ax.set_xticks(xs.tolist(), [tick_label(t) for t in labels])
    ax.set_xlabel("token")
    ax.set_ylabel("log-probability (nats)")
    ax.set_title("per-token terms: the right side helps the masked model; the causal model is another model"
                 if left_terms is not None else "per-token terms of two models")
    lowest = min(float(min(values)) for values, _, _ in bars)
    ax.set_ylim(top=0.4 * abs(lowest) if lowest < 0 else None)  # room above the bars for the legend
    ax.legend(loc="upper center", ncol=len(bars), fontsize=7)
    fig.tight_layout()
    return fig


def loss_by_kind_bars(models: Mapping[str, Mapping[str, float]], baseline: float | None = None,
                      title: str = "") -> Figure:
    """Grouped bars: for each model (outer key), its held-out loss at each kind of position (inner key)."""
    if not models:
        raise ValueError("models is empty: give at least one model's losses by kind")
    kinds = list(next(iter(models.values())))
    for name, losses in models.items():
        if list(losses) != kinds:
            raise ValueError(f"every model must give the kinds {kinds}, in that order; {name!r} gives {list(losses)}")
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    xs = torch.arange(len(kinds)).float()
    for k, (name, losses) in enumerate(models.items()):
        values = series([losses[kind] for kind in kinds], f"losses of {name!r}")
        ax.bar((xs + (k - (len(models) - 1) / 2) * width).tolist(), values, width=width, color=f"C{k}", label=name)
    if baseline is not None:
        baseline = finite_float(baseline, "baseline")
        ax.axhline(baseline, color="C3", linestyle="--", label=f"unigram baseline {baseline:.3f}")
    highest = max([max(losses.values()) for losses in models.values()] + ([baseline] if baseline is not None else []))
    ax.set_ylim(0, 1.35 * highest)  # room above the bars for the legend
    ax.set_xticks(xs.tolist(), kinds)
    ax.set_xlabel("kind of position (what the input shows there)")
    ax.set_ylabel("held-out loss (nats)")
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=len(models) + (baseline is not None), fontsize=8)
    fig.tight_layout()
    return fig


class MaskingExplorer(Explorer):
    """Pick a sentence, a mask rate and a seed; see the masked positions, top predictions and loss.

    `logits_fn` maps token ids (batch, n) to logits (batch, n, V) (a bidirectional model);
    `encode(text)` gives a 1-D id tensor (ValueError on unknown symbols) and `show(id)` the text
    of one id. After every change: `positions` (the selected positions), `corrupted` (the input
    the model saw, as text pieces), `predictions` (for each selected position the top-k
    (token, probability) pairs), `log_probs` (log Pr(original | x̄) per selected position),
    `loss` (their negated mean) or None with a ❌ line in `summary`.
    """

    def __init__(self, logits_fn: LogitsFn, encode: Callable[[str], torch.Tensor], show: Callable[[int], str],
                 mask_id: int, vocab_size: int, text: str = "The quick brown fox.", rate: float = 0.15,
                 seed: int = 0, max_len: int | None = None, top_k: int = 3, draw: bool = True) -> None:
        self.logits_fn, self.encode, self.show = logits_fn, encode, show
        self.mask_id, self.vocab_size = mask_id, positive_int(vocab_size, "vocab_size")
        self.max_len = None if max_len is None else positive_int(max_len, "max_len")
        self.top_k = positive_int(top_k, "top_k")
        self.text = W.Text(value=text, description="sentence", continuous_update=False,
                           layout=W.Layout(width="60%"))
        self.rate = W.FloatSlider(value=rate, min=0.05, max=1.0, step=0.05, description="mask rate",
                                  continuous_update=False, readout_format=".2f")
        self.seed = W.IntSlider(value=seed, min=0, max=50, description="seed", continuous_update=False)
        self.reset()
        super().__init__([self.text, [self.rate, self.seed]], draw)

    def reset(self) -> None:
        self.positions: list[int] = []
        self.corrupted: list[str] = []
        self.predictions: list[list[tuple[str, float]]] = []
        self.log_probs: list[float] = []
        self.loss: float | None = None
        self._originals: list[str] = []

    def compute(self) -> str:
        ids = self._encode()
        g = torch.Generator().manual_seed(int(self.seed.value))
        inputs, targets = mlm.mask_tokens(ids, self.mask_id, self.vocab_size, g, rate=float(self.rate.value))
        positions = (targets != mlm.IGNORE_INDEX).nonzero().flatten().tolist()
        if not positions:
            raise Rejected("no position was selected this time", "raise the mask rate or change the seed")
        with torch.no_grad():
            logits = self.logits_fn(inputs[None].to(model_device(self.logits_fn)))[0].double().cpu()
        log_probs = torch.log_softmax(logits, dim=-1)
        self.positions = positions
        self.corrupted = [self.show(i) for i in inputs.tolist()]
        self._originals = [self.show(int(ids[i])) for i in positions]
        self.log_probs = [float(log_probs[i, ids[i]]) for i in positions]
        self.predictions = [self._top(log_probs[i]) for i in positions]
        self.loss = float(mlm.mlm_loss(logits[None], targets[None]))
        return self._report(len(ids))

    def make_figure(self) -> Figure:
        return token_log_probs(self._originals, self.log_probs, title="log-probability of each original token")

    def _encode(self) -> torch.Tensor:
        """The sentence's ids, or `Rejected` when it cannot be encoded, is empty or is too long."""
        try:
            ids = self.encode(self.text.value)
        except ValueError as exc:
            raise Rejected(str(exc), "use only characters the model has seen") from None
        if len(ids) == 0:
            raise Rejected("the sentence is empty", "type a sentence")
        if self.max_len is not None and len(ids) > self.max_len:
            raise Rejected(f"the sentence has {len(ids)} tokens, more than the model's context of "
                           f"{self.max_len}", "shorten it")
        return ids

    def _top(self, log_probs: torch.Tensor) -> list[tuple[str, float]]:
        """The `top_k` likeliest tokens at one position, with their probabilities."""
        top = torch.topk(log_probs.exp(), min(self.top_k, log_probs.shape[-1]))
        return [(self.show(int(t)), float(p)) for p, t in zip(top.values, top.indices, strict=True)]

    def _report(self, n_tokens: int) -> str:
        """The summary: the model's input with the selected positions highlighted, and a table per position."""
        chosen = set(self.positions)
        pieces = [f"<b style='background:#ffe08a'>{html.escape(p)}</b>" if i in chosen else html.escape(p)
                  for i, p in enumerate(self.corrupted)]
        rows = []
        for i, original, preds, lp in zip(self.positions, self._originals, self.predictions, self.log_probs,
                                          strict=True):
            top = ", ".join(f"{html.escape(repr(t))} {p:.3f}" for t, p in preds)
            rows.append(f"<tr><td>{i}</td><td>{html.escape(repr(original))}</td>"
                        f"<td>{html.escape(repr(self.corrupted[i]))}</td><td>{top}</td><td>{lp:.4f}</td></tr>")
        return (
            f"<p>model input: <code>{''.join(pieces)}</code></p>"
            f"<p>{len(self.positions)} of {n_tokens} positions selected · "
            f"objective Σ log Pr(xᵢ | x̄) = {sum(self.log_probs):.4f} · "
            f"loss (mean over selected) = {self.loss:.4f} nats</p>"
            "<table><tr><th>position</th><th>original</th><th>input</th>"
            f"<th>top {self.top_k} predictions</th><th>log Pr(original)</th></tr>{''.join(rows)}</table>"
        )
