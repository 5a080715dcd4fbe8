"""Chapter 04 figures and explorers: loss curves, numerical stability, label smoothing."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import losses
from ..validate import finite_float
from .common import same_length, series, tick_label
from .explorer import Explorer

_STYLES = ("-", "--", ":", "-.")


def loss_curves(curves: Mapping[str, Sequence[float]], title: str = "", entropy: float | None = None,
                ylabel: str = "loss (nats per token)") -> Figure:
    """Several loss curves against the training step; later curves dashed so coinciding ones stay visible.

    With `entropy`, a horizontal line marks the best achievable expected loss.
    """
    if not curves:
        raise ValueError("curves is empty: give at least one named curve")
    if entropy is not None:
        entropy = finite_float(entropy, "entropy")
    ys = {label: series(values, f"curve {label!r}") for label, values in curves.items()}
    fig, ax = plt.subplots(layout="constrained")
    for i, (label, v) in enumerate(ys.items()):
        ax.plot(np.arange(1, len(v) + 1), v, linestyle=_STYLES[i % len(_STYLES)],
                linewidth=2.5 if i == 0 else 1.5, label=label)
    if entropy is not None:
        ax.axhline(entropy, color="k", linewidth=1, label=f"entropy H = {entropy:.4f} (the floor)")
    ax.set(xlabel="training step", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return fig


def stability(scales: Sequence[float], curves: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Loss against the size of the logits, each method's curve ending where it stops being finite."""
    if not curves:
        raise ValueError("curves is empty: give at least one named curve")
    x = series(scales, "scales", positive=True)
    for label, values in curves.items():
        same_length(scales=scales, **{f"curve {label!r}": values})
    ys = {label: series(values, f"curve {label!r}") for label, values in curves.items()}
    fig, ax = plt.subplots(layout="constrained")
    for i, (label, v) in enumerate(ys.items()):
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
    ax.set_xticks(x, [tick_label(str(s)) for s in labels])
    ax.set(xlabel="token", ylabel="probability", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8)
    return fig


class SmoothingExplorer(Explorer):
    """An ε slider and a target-token menu for one prediction `logits` over tokens `labels`.

    State after each change: `q` (target distribution), `loss` (smoothed cross-entropy), `nll`
    (-log p_target), `gap` (loss - nll) and `extra` (ε · (mean_j(-log p_j) - nll), which equals the gap).
    """

    def __init__(self, logits: torch.Tensor, labels: Sequence[str], target: int = 0, epsilon: float = 0.1,
                 draw: bool = True) -> None:
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
        self.q = torch.zeros_like(z)
        self.loss = self.nll = self.gap = self.extra = float("nan")
        super().__init__([[self.target, self.epsilon]], draw)

    @property
    def p(self) -> torch.Tensor:
        """The model's distribution softmax(z)."""
        return torch.exp(self.logits)

    def compute(self) -> str:
        eps, y = float(self.epsilon.value), torch.tensor(int(self.target.value))
        self.q = losses.smoothed_targets(y, self.logits.numel(), eps)
        self.loss = float(losses.cross_entropy(self.logits, y, label_smoothing=eps))
        self.nll = float(losses.cross_entropy(self.logits, y))
        uniform = float(-self.logits.mean())
        self.gap = self.loss - self.nll
        self.extra = eps * (uniform - self.nll)
        return (f"target {html.escape(repr(self.labels[int(y)]), quote=False)}, p = {float(self.p[int(y)]):.4f} · "
                f"ε = {eps:.2f} · smoothed loss {self.loss:.4f} · NLL −log p = {self.nll:.4f} · gap {self.gap:.4f} "
                f"= ε·(CE(uniform, p) − NLL) = {eps:.2f}·({uniform:.4f} − {self.nll:.4f})")

    def make_figure(self) -> Figure:
        return target_and_model(self.labels, self.q, self.p, title=f"label smoothing ε = {self.epsilon.value:.2f}")
