"""Figures more than one chapter uses, and `style()`: the course's look, applied only when asked for."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def style() -> None:
    """Apply the course's figure style (small, gridded, no top/right spines); lessons call it once."""
    plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7.0, 3.2), "axes.grid": True,
                         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})


def curve(values: Sequence[float], xlabel: str, ylabel: str, title: str = "",
          target: float | None = None, target_label: str = "target", log_x: bool = False) -> Figure:
    """One quantity against steps (e.g. θ during gradient ascent), with an optional target line."""
    fig, ax = plt.subplots(layout="constrained")
    ax.plot(np.arange(1, len(values) + 1), list(values))
    if target is not None:
        ax.axhline(target, color="C3", linestyle="--", label=f"{target_label} = {target:.4g}")
        ax.legend()
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log_x:
        ax.set_xscale("log")
    return fig


def token_log_probs(labels: Sequence[str], log_probs: Sequence[float], title: str = "") -> Figure:
    """One bar per token, log Pr(x_t | x_<t), with the running total log Pr(x_1 … x_t) as a line."""
    lp = np.asarray(list(log_probs), dtype=float)
    pos = np.arange(len(lp))
    floor = min(-1.0, float(np.min(lp[np.isfinite(lp)], initial=-1.0)) * 1.1)
    shown = np.where(np.isfinite(lp), lp, floor)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * len(lp) + 2.0), 3.2), layout="constrained")
    colors = ["C3" if not np.isfinite(v) else "C0" for v in lp]
    ax.bar(pos, shown, color=colors, label="log Pr(token | previous)")
    ax.set_ylabel("log-probability (nats)")
    ax.set_xticks(pos, [repr(s)[1:-1] or "␣" for s in labels])
    twin = ax.twinx()
    twin.plot(pos, np.cumsum(shown), color="C1", marker=".", label="running total")
    twin.set_ylabel("running total (nats)", color="C1")
    twin.grid(False)
    ax.set(xlabel="token", title=title or f"log Pr(sequence) = {lp.sum():.4g} nats")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="lower left")
    return fig
