"""Chapter 03 figures and explorers: the MLM loss curve, pseudo-log-likelihood vs causal terms, masking."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from .. import mlm
from .common import token_log_probs

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def mlm_loss_curve(steps: Sequence[int], train: Sequence[float], val_steps: Sequence[int],
                   val: Sequence[float], baseline: float) -> Figure:
    """Masked-token loss during training, with the unigram (context-free) baseline as a line."""
    if len(steps) != len(train) or len(val_steps) != len(val):
        raise ValueError("steps and losses must have the same length")
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


def pll_vs_causal(labels: Sequence[str], pll_terms: Sequence[float], causal_terms: Sequence[float]) -> Figure:
    """Per-token terms of the pseudo-log-likelihood and of the causal (chain-rule) log-probability."""
    if not len(labels) == len(pll_terms) == len(causal_terms):
        raise ValueError("labels, pll_terms and causal_terms must have the same length")
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * n + 2), 3.2))
    xs = torch.arange(n).float()
    ax.bar((xs - 0.2).tolist(), list(pll_terms), width=0.4, color="C0",
           label=r"bidirectional: $\log \Pr(x_i \mid x_{\setminus i})$")
    ax.bar((xs + 0.2).tolist(), list(causal_terms), width=0.4, color="C1",
           label=r"causal: $\log \Pr(x_i \mid x_{<i})$")
    ax.set_xticks(xs.tolist(), [repr(t)[1:-1] for t in labels])
    ax.set_xlabel("token")
    ax.set_ylabel("log-probability (nats)")
    ax.set_title("each token seen from both sides, or from the left only")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


class MaskingExplorer:
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
                 seed: int = 0, max_len: int | None = None, top_k: int = 3, draw: bool = True):
        self.logits_fn, self.encode, self.show = logits_fn, encode, show
        self.mask_id, self.vocab_size, self.max_len, self.top_k = mask_id, vocab_size, max_len, top_k
        self.text = W.Text(value=text, description="sentence", continuous_update=False,
                           layout=W.Layout(width="60%"))
        self.rate = W.FloatSlider(value=rate, min=0.05, max=1.0, step=0.05, description="mask rate",
                                  continuous_update=False, readout_format=".2f")
        self.seed = W.IntSlider(value=seed, min=0, max=50, description="seed", continuous_update=False)
        self.summary = W.HTML()
        self.plot = W.Output()
        self.draw = draw
        self._clear()
        for control in (self.text, self.rate, self.seed):
            control.observe(self._update, names="value")
        self.widget = W.VBox([self.text, W.HBox([self.rate, self.seed]), self.summary, self.plot])
        self._update()

    def _clear(self) -> None:
        self.positions: list[int] = []
        self.corrupted: list[str] = []
        self.predictions: list[list[tuple[str, float]]] = []
        self.log_probs: list[float] = []
        self.loss: float | None = None

    def _fail(self, message: str, hint: str) -> None:
        self._clear()
        self.summary.value = html.escape(f"❌ {message}. Hint: {hint}")
        self.plot.clear_output()

    def _update(self, _change: object = None) -> None:
        try:
            ids = self.encode(self.text.value)
        except ValueError as exc:
            return self._fail(str(exc), "use only characters the model has seen")
        if len(ids) == 0:
            return self._fail("the sentence is empty", "type a sentence")
        if self.max_len is not None and len(ids) > self.max_len:
            return self._fail(f"the sentence has {len(ids)} tokens, more than the model's context of "
                              f"{self.max_len}", "shorten it")
        g = torch.Generator().manual_seed(int(self.seed.value))
        inputs, targets = mlm.mask_tokens(ids, self.mask_id, self.vocab_size, g, rate=float(self.rate.value))
        positions = (targets != mlm.IGNORE_INDEX).nonzero().flatten().tolist()
        if not positions:
            return self._fail("no position was selected this time", "raise the mask rate or change the seed")
        with torch.no_grad():
            logits = self.logits_fn(inputs[None].to(mlm.device_of(self.logits_fn)))[0].double().cpu()
        log_probs = torch.log_softmax(logits, dim=-1)
        self.positions = positions
        self.corrupted = [self.show(i) for i in inputs.tolist()]
        self.log_probs = [float(log_probs[i, ids[i]]) for i in positions]
        self.predictions = []
        for i in positions:
            top = torch.topk(log_probs[i].exp(), min(self.top_k, log_probs.shape[-1]))
            self.predictions.append([(self.show(int(t)), float(p)) for p, t in zip(top.values, top.indices, strict=True)])
        self.loss = float(mlm.mlm_loss(logits[None], targets[None]))
        self._render(ids)

    def _render(self, ids: torch.Tensor) -> None:
        pieces = []
        chosen = set(self.positions)
        for i, piece in enumerate(self.corrupted):
            text = html.escape(piece)
            pieces.append(f"<b style='background:#ffe08a'>{text}</b>" if i in chosen else text)
        rows = []
        for i, preds, lp in zip(self.positions, self.predictions, self.log_probs, strict=True):
            top = ", ".join(f"{html.escape(repr(t))} {p:.3f}" for t, p in preds)
            rows.append(f"<tr><td>{i}</td><td>{html.escape(repr(self.show(int(ids[i]))))}</td>"
                        f"<td>{html.escape(repr(self.corrupted[i]))}</td><td>{top}</td><td>{lp:.4f}</td></tr>")
        self.summary.value = (
            f"<p>model input: <code>{''.join(pieces)}</code></p>"
            f"<p>{len(self.positions)} of {len(ids)} positions selected · "
            f"objective Σ log Pr(xᵢ | x̄) = {sum(self.log_probs):.4f} · "
            f"loss (mean over selected) = {self.loss:.4f} nats</p>"
            "<table><tr><th>position</th><th>original</th><th>input</th>"
            f"<th>top {self.top_k} predictions</th><th>log Pr(original)</th></tr>{''.join(rows)}</table>"
        )
        if self.draw:

            self.plot.clear_output(wait=True)
            with self.plot:
                labels = [repr(self.show(int(ids[i])))[1:-1] for i in self.positions]
                token_log_probs(labels, self.log_probs, title="log-probability of each original token")
                plt.show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
