"""Chapter 05 figures: training and validation curves, and the measured cost of attention against length."""

from __future__ import annotations

import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from .train import History


def smooth(values: list[float], window: int = 20) -> list[float]:
    """Trailing moving average (the first points average what exists so far)."""
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: dict[str, History], floors: dict[str, float] | None = None, window: int = 20,
                title: str = "training and validation loss", ax=None):
    """Per run: the smoothed training loss (thin) and the validation NLL (dots); optional horizontal floors."""
    if not runs:
        raise ValueError("plot_curves needs at least one run")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for i, (label, h) in enumerate(runs.items()):
        color = f"C{i}"
        ax.plot(h.steps, smooth(h.train_loss, window), color=color, lw=1, alpha=0.8, label=f"{label}: train")
        ax.plot(h.val_steps, h.val_loss, "o-", color=color, ms=4, label=f"{label}: validation")
    for j, (label, y) in enumerate((floors or {}).items()):
        ax.axhline(y, color="k", ls=["--", ":", "-."][j % 3], lw=1, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def attention_cost(lengths: list[int], d: int = 64, heads: int = 4, batch: int = 1,
                   repeats: int = 3) -> dict[str, list[float]]:
    """Time (best of `repeats`) and score-matrix memory of explicit causal self-attention at each length.

    The scores Q·Kᵀ form a (batch, heads, T, T) tensor: its bytes are read off the tensor itself.
    """
    if not lengths or any(int(t) < 1 for t in lengths):
        raise ValueError("lengths must be positive integers")
    g = torch.Generator().manual_seed(0)
    seconds, mbytes = [], []
    for t in lengths:
        q, k, v = (torch.randn(batch, heads, t, d // heads, generator=g) for _ in range(3))
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
            mask = torch.ones(t, t, dtype=torch.bool).tril()
            out = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v
            best = min(best, time.perf_counter() - start)
        assert out.shape == v.shape
        seconds.append(best)
        mbytes.append(scores.element_size() * scores.nelement() / 2**20)
    return {"length": [int(t) for t in lengths], "seconds": seconds, "score_mib": mbytes}


def plot_attention_cost(cost: dict[str, list[float]]):
    """Time and memory of attention against sequence length on log-log axes, with a T² guide."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    t = cost["length"]
    for ax, key, label in ((axes[0], "seconds", "time (s)"), (axes[1], "score_mib", "score matrix (MiB)")):
        ax.loglog(t, cost[key], "o-", label="measured")
        ax.loglog(t, [cost[key][-1] * (x / t[-1]) ** 2 for x in t], "k--", lw=1, label="∝ T²")
        ax.set_xticks(t, [str(x) for x in t])
        ax.minorticks_off()
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("self-attention cost grows with the square of the length")
    fig.tight_layout()
    return fig
