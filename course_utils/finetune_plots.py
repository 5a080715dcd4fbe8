"""Chapter 06's figures: fine-tuning curves, one-pass vs per-turn cost, recovered rewards, PG vs MLE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import plots  # noqa: F401  (the course's shared figure style)


def _check_lengths(**named: Sequence) -> None:
    lengths = {name: len(v) for name, v in named.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"these sequences must have the same length: {lengths}")


def sft_curves(steps: Sequence[int], heldout_log_prob: Sequence[float], accuracy: Sequence[float],
               full_loss_accuracy: Sequence[float] | None = None) -> Figure:
    """Held-out mean log Pr(y | x) and exact-match accuracy against fine-tuning steps."""
    _check_lengths(steps=steps, heldout_log_prob=heldout_log_prob, accuracy=accuracy)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.0), layout="constrained")
    a.plot(steps, heldout_log_prob, marker="o", ms=3)
    a.set(xlabel="fine-tuning step", ylabel="mean log Pr(y | x) (nats)",
          title="held-out conditional log-likelihood")
    b.plot(steps, accuracy, marker="o", ms=3, label="loss on the response only")
    if full_loss_accuracy is not None:
        _check_lengths(steps=steps, full_loss_accuracy=full_loss_accuracy)
        b.plot(steps, full_loss_accuracy, marker="s", ms=3, alpha=0.7, label="loss on prompt + response")
        b.legend(fontsize=8)
    b.set(xlabel="fine-tuning step", ylabel="exact-match accuracy", ylim=(-0.03, 1.03),
          title="held-out task accuracy")
    return fig


def dialogue_cost(turns: Sequence[int], one_pass_s: Sequence[float], per_turn_s: Sequence[float]) -> Figure:
    """Time for all assistant turns' log-probabilities: one forward pass vs one pass per turn."""
    _check_lengths(turns=turns, one_pass_s=one_pass_s, per_turn_s=per_turn_s)
    one, per = np.asarray(one_pass_s) * 1e3, np.asarray(per_turn_s) * 1e3
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
        raise ValueError(f"true_rewards, fitted and std_err must have the same shape, got {t.shape}, {f.shape}, {s.shape}")
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
    fig, ax = plt.subplots(layout="constrained")
    for name, h in histories.items():
        h = torch.as_tensor(h)
        if h.ndim != 2 or not 0 <= best < h.shape[1]:
            raise ValueError(f"{name}: a history must have shape (steps + 1, K) with best < K")
        ax.plot(np.arange(h.shape[0]), h[:, best].numpy(), label=name)
    ax.set(xlabel="gradient step", ylabel="π(y*)", ylim=(-0.02, 1.02),
           title="probability of the best output during training")
    ax.legend(fontsize=8)
    return fig
