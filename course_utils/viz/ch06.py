"""Chapter 06 figures and explorers: SFT curves, dialogue cost, reward recovery, policy gradient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..preferences import train_toy_policy
from ..validate import int_at_least, number_in, positive_int
from .common import same_length, series
from .explorer import Explorer


def sft_curves(steps: Sequence[int], heldout_log_prob: Sequence[float], accuracy: Sequence[float],
               full_loss_accuracy: Sequence[float] | None = None, *, label: str = "loss on the response only",
               others: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> Figure:
    """Held-out mean log Pr(y | x) and exact-match accuracy against fine-tuning steps.

    `others` adds runs validated at the same steps, by name: (held-out log-probabilities, accuracies),
    for instance the same model fine-tuned from random weights instead of pre-trained ones.
    """
    same_length(steps=steps, heldout_log_prob=heldout_log_prob, accuracy=accuracy)
    if full_loss_accuracy is not None:
        same_length(steps=steps, full_loss_accuracy=full_loss_accuracy)
    runs = {label: (heldout_log_prob, accuracy)}
    for name, pair in (others or {}).items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"others[{name!r}] must be a pair (held-out log-probabilities, accuracies)")
        same_length(steps=steps, **{f"{name} log-probabilities": pair[0], f"{name} accuracies": pair[1]})
        runs[name] = pair
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.0), layout="constrained")
    for i, (name, (log_prob, acc)) in enumerate(runs.items()):
        a.plot(steps, series(log_prob, "heldout_log_prob"), marker="o", ms=3, color=f"C{i}", label=name)
        b.plot(steps, series(acc, "accuracy"), marker="o", ms=3, color=f"C{i}", label=name)
    a.set(xlabel="fine-tuning step", ylabel="mean log Pr(y | x) (nats)",
          title="held-out conditional log-likelihood")
    if full_loss_accuracy is not None:
        b.plot(steps, full_loss_accuracy, marker="s", ms=3, alpha=0.7, color=f"C{len(runs)}",
               label="loss on prompt + response")
    if len(runs) > 1 or full_loss_accuracy is not None:
        b.legend(fontsize=8)
    if len(runs) > 1:
        a.legend(fontsize=8)
    b.set(xlabel="fine-tuning step", ylabel="exact-match accuracy", ylim=(-0.03, 1.03),
          title="held-out task accuracy")
    return fig


def dialogue_cost(turns: Sequence[int], one_pass_s: Sequence[float], per_turn_s: Sequence[float]) -> Figure:
    """Time for all assistant turns' log-probabilities: one forward pass vs one pass per turn."""
    same_length(turns=turns, one_pass_s=one_pass_s, per_turn_s=per_turn_s)
    one = series(one_pass_s, "one_pass_s", positive=True) * 1e3
    per = series(per_turn_s, "per_turn_s", positive=True) * 1e3
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.0), layout="constrained")
    a.plot(turns, per, marker="o", label="one pass per turn")
    a.plot(turns, one, marker="o", label="one pass with a loss mask")
    a.set(xlabel="assistant turns in the dialogue", ylabel="time (ms, best of several)",
          title="cost of scoring a dialogue")
    a.legend(fontsize=8)
    b.plot(turns, per / one, marker="o", color="C2")
    b.axhline(1.0, color="grey", linestyle="--")
    b.set(xlabel="assistant turns in the dialogue", ylabel="per-turn time / one-pass time",
          title="speed-up of the single pass")
    return fig


def reward_recovery(true_rewards: torch.Tensor, fitted: torch.Tensor, std_err: torch.Tensor,
                    labels: Sequence[str] | None = None) -> Figure:
    """Fitted Bradley–Terry rewards (±2 standard errors) against the true ones, both centred."""
    t, f, s = (np.asarray(torch.as_tensor(v, dtype=torch.float64)) for v in (true_rewards, fitted, std_err))
    if not t.shape == f.shape == s.shape:
        raise ValueError("true_rewards, fitted and std_err must have the same shape, "
                         f"got {t.shape}, {f.shape}, {s.shape}")
    if t.ndim != 1:
        raise ValueError(f"true_rewards must be one reward per item (1-D), got shape {t.shape}")
    if labels is not None:
        same_length(labels=labels, true_rewards=t)
    fig, ax = plt.subplots(figsize=(4.6, 3.6), layout="constrained")
    lo, hi = min(t.min(), f.min()) - 0.3, max(t.max(), f.max()) + 0.3
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="fitted = true")
    ax.errorbar(t, f, yerr=2 * s, fmt="o", capsize=3, label="MLE ± 2 s.e.")
    for i, (x, y) in enumerate(zip(t, f, strict=True)):
        ax.annotate(labels[i] if labels else str(i), (x, y), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set(xlabel="true reward (mean zero)", ylabel="fitted reward (mean zero)",
           title="Bradley–Terry MLE recovers the rewards")
    ax.legend(fontsize=8)
    return fig


def policy_curves(histories: Mapping[str, torch.Tensor], best: int) -> Figure:
    """π(y*) against steps for several training methods on the toy policy."""
    if not histories:
        raise ValueError("histories is empty: give at least one method's policy history")
    tables = {name: torch.as_tensor(h) for name, h in histories.items()}
    for name, h in tables.items():
        if h.ndim != 2 or not 0 <= best < h.shape[1]:
            raise ValueError(f"{name}: a history must have shape (steps + 1, K) with best < K, "
                             f"got shape {tuple(h.shape)} and best = {best}")
    fig, ax = plt.subplots(layout="constrained")
    for name, h in tables.items():
        ax.plot(np.arange(h.shape[0]), h[:, best].numpy(), label=name)
    ax.set(xlabel="gradient step", ylabel="π(y*)", ylim=(-0.02, 1.02),
           title="probability of the best output during training")
    ax.legend(fontsize=8)
    return fig


# The methods the explorer compares, by the name its summary and legend show.
METHODS = {"MLE on the demonstrated answer": "mle", "policy gradient (exact)": "pg-exact",
           "policy gradient (8 samples)": "pg"}


class PolicyGradientExplorer(Explorer):
    """Sliders for the starting logit of the best answer and the learning rate; curves of π(y*).

    The toy has `k` answers with logits 0 except the best one's (`start_logit`) and utility 1 for
    the best answer only. State after each change: `histories` (π after each step, per method),
    `first_above` (the first step where π(y*) > `threshold`, or None) and `start_prob` (π(y*) at step 0).
    """

    def __init__(self, start_logit: float = -3.0, lr: float = 1.0, k: int = 6, steps: int = 150,
                 threshold: float = 0.9, seed: int = 0, draw: bool = True) -> None:
        self.k = int_at_least(k, "k", 2)
        self.steps = positive_int(steps, "steps")
        self.threshold = number_in(threshold, "threshold", 0.0, 1.0, include_low=False, include_high=False)
        self.seed = seed
        self.start_logit = W.FloatSlider(value=start_logit, min=-6.0, max=3.0, step=0.5,
                                         description="logit of y*", continuous_update=False,
                                         readout_format=".1f")
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-1, max=0.7, step=0.1, description="step size",
                                   continuous_update=False, readout_format=".2f")
        self.histories: dict[str, torch.Tensor] = {}
        self.first_above: dict[str, int | None] = {}
        self.start_prob = float("nan")
        super().__init__([[self.start_logit, self.lr]], draw)

    def compute(self) -> str:
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
        return (f"π(y*) at the start = {self.start_prob:.4f} · steps until π(y*) > "
                f"{self.threshold:g}: {reached}")

    def make_figure(self) -> Figure:
        return policy_curves(self.histories, self.k - 1)
