"""Interactive explorers built from ipywidgets; their state is testable by setting `.value`."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt

from . import plots
from .likelihood import bernoulli_likelihood, bernoulli_log_likelihood, bernoulli_mle
from .validate import as_flips


class LikelihoodExplorer:
    """A θ slider and editable flips (H/T) redrawing L(θ) and ℓ(θ), with the MLE marked."""

    def __init__(self, flips: str = "HTHH", theta: float = 0.5, draw: bool = True):
        self.theta = W.FloatSlider(value=theta, min=0.0, max=1.0, step=0.01, description="θ",
                                   continuous_update=False, readout_format=".2f")
        self.flips = W.Text(value=flips, description="flips", placeholder="e.g. HTHH")
        self.summary = W.HTML()
        self.plot = W.Output()
        self.draw = draw
        self.mle: float | None = None
        self.theta.observe(self._update, names="value")
        self.flips.observe(self._update, names="value")
        self.widget = W.VBox([W.HBox([self.flips, self.theta]), self.summary, self.plot])
        self._update()

    def _update(self, _change: object = None) -> None:
        try:
            x = as_flips(self.flips.value)
        except ValueError as exc:
            self.mle = None
            self.summary.value = f"❌ {exc}. Hint: type heads as H and tails as T, e.g. HTHH."
            self.plot.clear_output()
            return
        t = self.theta.value
        self.mle = bernoulli_mle(x)
        k, n = int(x.sum()), x.numel()
        self.summary.value = (
            f"k = {k} heads in n = {n} flips · MLE θ̂ = k/n = {self.mle:.4f} · "
            f"at θ = {t:.2f}: L = {bernoulli_likelihood(t, x):.4g}, "
            f"ℓ = {bernoulli_log_likelihood(t, x):.4f}"
        )
        if self.draw:
            self.plot.clear_output(wait=True)
            with self.plot:
                plots.likelihood_curves(x, theta=t)
                plt.show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


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
                plots.token_log_probs(self.labels, self.log_probs)
                plt.show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
