"""An explorer of label smoothing: the target distribution, the smoothed loss and its gap to the NLL."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from . import cross_entropy_plots, losses


class SmoothingExplorer:
    """An ε slider and a target-token menu for one prediction `logits` over tokens `labels`.

    State after each change: `q` (target distribution), `loss` (smoothed cross-entropy), `nll`
    (-log p_target), `gap` (loss - nll) and `extra` (ε · (mean_j(-log p_j) - nll), which equals the gap).
    """

    def __init__(self, logits: torch.Tensor, labels: Sequence[str], target: int = 0, epsilon: float = 0.1,
                 draw: bool = True):
        z = torch.as_tensor(logits, dtype=torch.float64) if not isinstance(logits, torch.Tensor) else logits.double()
        if z.ndim != 1:
            raise ValueError(f"logits must be one prediction of shape (V,), got {tuple(z.shape)}")
        self.logits = losses.log_softmax(z)  # validates; the same distribution, normalised
        if len(labels) != z.numel():
            raise ValueError(f"labels must name each of the {z.numel()} tokens, got {len(labels)}")
        if not isinstance(target, int) or not 0 <= target < z.numel():
            raise ValueError(f"target must be a token index in 0..{z.numel() - 1}, got {target!r}")
        self.labels = [str(s) for s in labels]
        self.epsilon = W.FloatSlider(value=epsilon, min=0.0, max=0.95, step=0.01, description="ε",
                                     continuous_update=False, readout_format=".2f")
        self.target = W.Dropdown(options=[(s, i) for i, s in enumerate(self.labels)], value=target,
                                 description="target")
        self.summary = W.HTML()
        self.plot = W.Output()
        self.draw = draw
        self.q = torch.zeros_like(z)
        self.loss = self.nll = self.gap = self.extra = float("nan")
        self.epsilon.observe(self._update, names="value")
        self.target.observe(self._update, names="value")
        self.widget = W.VBox([W.HBox([self.target, self.epsilon]), self.summary, self.plot])
        self._update()

    @property
    def p(self) -> torch.Tensor:
        """The model's distribution softmax(z)."""
        return torch.exp(self.logits)

    def _update(self, _change: object = None) -> None:
        eps, y = float(self.epsilon.value), torch.tensor(int(self.target.value))
        self.q = losses.smoothed_targets(y, self.logits.numel(), eps)
        self.loss = float(losses.cross_entropy(self.logits, y, label_smoothing=eps))
        self.nll = float(losses.cross_entropy(self.logits, y))
        uniform = float(-self.logits.mean())
        self.gap = self.loss - self.nll
        self.extra = eps * (uniform - self.nll)
        self.summary.value = (
            f"target {self.labels[int(y)]!r}, p = {float(self.p[int(y)]):.4f} · ε = {eps:.2f} · "
            f"smoothed loss {self.loss:.4f} · NLL −log p = {self.nll:.4f} · gap {self.gap:.4f} "
            f"= ε·(CE(uniform, p) − NLL) = {eps:.2f}·({uniform:.4f} − {self.nll:.4f})"
        )
        if self.draw:
            self.plot.clear_output(wait=True)
            with self.plot:
                cross_entropy_plots.target_and_model(self.labels, self.q, self.p,
                                                     title=f"label smoothing ε = {eps:.2f}")
                plt.show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
