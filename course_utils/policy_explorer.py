"""An explorer of MLE vs policy gradient on a toy policy: how the start and the step size change learning."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from . import finetune_plots
from .preferences import train_toy_policy

METHODS = {"MLE on the demonstrated answer": "mle", "policy gradient (exact)": "pg-exact",
           "policy gradient (8 samples)": "pg"}


class PolicyGradientExplorer:
    """Sliders for the starting logit of the best answer and the learning rate; curves of π(y*).

    The toy has `k` answers with logits 0 except the best one's (`start_logit`) and utility 1 for
    the best answer only. State after each change: `histories` (π after each step, per method),
    `first_above` (the first step where π(y*) > `threshold`, or None) and `start_prob` (π(y*) at step 0).
    """

    def __init__(self, start_logit: float = -3.0, lr: float = 1.0, k: int = 6, steps: int = 150,
                 threshold: float = 0.9, seed: int = 0, draw: bool = True):
        if not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an integer >= 2, got {k!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")
        self.k, self.steps, self.threshold, self.seed, self.draw = k, steps, threshold, seed, draw
        self.start_logit = W.FloatSlider(value=start_logit, min=-6.0, max=3.0, step=0.5,
                                         description="logit of y*", continuous_update=False,
                                         readout_format=".1f")
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-1, max=0.7, step=0.1, description="step size",
                                   continuous_update=False, readout_format=".2f")
        self.summary = W.HTML()
        self.plot = W.Output()
        self.histories: dict[str, torch.Tensor] = {}
        self.first_above: dict[str, int | None] = {}
        self.start_prob = float("nan")
        self.start_logit.observe(self._update, names="value")
        self.lr.observe(self._update, names="value")
        self.widget = W.VBox([W.HBox([self.start_logit, self.lr]), self.summary, self.plot])
        self._update()

    def _update(self, _change: object = None) -> None:
        logits = torch.zeros(self.k, dtype=torch.float64)
        logits[-1] = float(self.start_logit.value)
        utility = torch.zeros(self.k, dtype=torch.float64)
        utility[-1] = 1.0
        generator = torch.Generator().manual_seed(self.seed)
        lr = float(self.lr.value)
        self.histories = {name: train_toy_policy(logits, utility, self.steps, lr, generator, method)
                          for name, method in METHODS.items()}
        self.start_prob = float(torch.softmax(logits, 0)[-1])
        self.first_above = {}
        for name, h in self.histories.items():
            above = (h[:, -1] > self.threshold).nonzero()
            self.first_above[name] = int(above[0]) if len(above) else None
        reached = " · ".join(f"{name}: {step if step is not None else f'> {self.steps}'}"
                             for name, step in self.first_above.items())
        self.summary.value = (f"π(y*) at the start = {self.start_prob:.4f} · steps until π(y*) > "
                              f"{self.threshold:g}: {reached}")
        if self.draw:
            self.plot.clear_output(wait=True)
            with self.plot:
                finetune_plots.policy_curves(self.histories, self.k - 1)
                plt.show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
