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
