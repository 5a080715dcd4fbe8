"""Figures for cross-entropy as negative log-likelihood: loss curves, entropy floor, stability, smoothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import plots  # noqa: F401  (shares the course's figure style)

_STYLES = ("-", "--", ":", "-.")


def loss_curves(curves: Mapping[str, Sequence[float]], title: str = "", entropy: float | None = None,
                ylabel: str = "loss (nats per token)") -> Figure:
    """Several loss curves against the training step; later curves dashed so coinciding ones stay visible.

    With `entropy`, a horizontal line marks the best achievable expected loss.
    """
    if not curves:
        raise ValueError("curves is empty: give at least one named curve")
    fig, ax = plt.subplots(layout="constrained")
    for i, (label, values) in enumerate(curves.items()):
        v = np.asarray(list(values), dtype=float)
        ax.plot(np.arange(1, len(v) + 1), v, linestyle=_STYLES[i % len(_STYLES)],
                linewidth=2.5 if i == 0 else 1.5, label=label)
    if entropy is not None:
        ax.axhline(entropy, color="k", linewidth=1, label=f"entropy H = {entropy:.4f} (the floor)")
    ax.set(xlabel="training step", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return fig


def stability(scales: Sequence[float], curves: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Loss against the size of the logits, each method's curve ending where it stops being finite."""
    fig, ax = plt.subplots(layout="constrained")
    x = np.asarray(scales, dtype=float)
    for i, (label, values) in enumerate(curves.items()):
        v = np.asarray(list(values), dtype=float)
        finite = np.isfinite(v)
        ax.plot(x[finite], v[finite], linestyle=_STYLES[i % len(_STYLES)], marker="o", markersize=3,
                label=label)
        if not finite.all():
            first = int(np.argmin(finite))
            ax.axvline(x[first], color=f"C{i}", alpha=0.4, linestyle=":",
                       label=f"{label}: {'NaN' if np.isnan(v[first]) else 'inf'} from scale {x[first]:.3g}")
    ax.set(xlabel="logit scale s (logits s·(1, 0, −1), target = last token)", ylabel="loss (nats)",
           title=title, xscale="log", yscale="log")
    ax.legend(fontsize=8)
    return fig


def target_and_model(labels: Sequence[str], target: torch.Tensor, model: torch.Tensor, title: str = "") -> Figure:
    """Bars of the target distribution q beside the model's distribution p over the same tokens."""
    q = torch.as_tensor(target, dtype=torch.float64).numpy()
    p = torch.as_tensor(model, dtype=torch.float64).numpy()
    if q.shape != p.shape or q.ndim != 1 or len(labels) != len(q):
        raise ValueError(f"labels, target and model must have one entry per token, got "
                         f"{len(labels)}, {q.shape} and {p.shape}")
    x = np.arange(len(q))
    fig, ax = plt.subplots(layout="constrained")
    ax.bar(x - 0.2, q, width=0.4, label="target q")
    ax.bar(x + 0.2, p, width=0.4, label="model p = softmax(z)")
    ax.set_xticks(x, list(labels))
    ax.set(xlabel="token", ylabel="probability", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8)
    return fig
