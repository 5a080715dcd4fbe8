"""Figures several chapters use, their input checks, and `style()`: the course's look, applied only when asked for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..validate import as_tensor, finite_float


def style() -> None:
    """Apply the course's figure style (small, gridded, no top/right spines); lessons call it once."""
    plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7.0, 3.2), "axes.grid": True,
                         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})


def curve(values: Sequence[float], xlabel: str, ylabel: str, title: str = "",
          target: float | None = None, target_label: str = "target") -> Figure:
    """One quantity against steps (e.g. θ during gradient ascent), with an optional target line."""
    y = series(values, "values")
    if target is not None:
        target = finite_float(target, "target")
    fig, ax = plt.subplots(layout="constrained")
    ax.plot(np.arange(1, len(y) + 1), y)
    if target is not None:
        ax.axhline(target, color="C3", linestyle="--", label=f"{target_label} = {target:.4g}")
        ax.legend()
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return fig


def token_log_probs(labels: Sequence[str], log_probs: Sequence[float], title: str = "") -> Figure:
    """One bar per token, log Pr(x_t | x_<t), with the running total log Pr(x_1 … x_t) as a line.

    A token of probability 0 (log-probability −inf) is drawn as a red bar below the others.
    """
    same_length(labels=labels, log_probs=log_probs)
    lp = series(log_probs, "log_probs")
    if np.isnan(lp).any():
        raise ValueError("log_probs contains NaN; a log-probability is a number or -inf")
    pos = np.arange(len(lp))
    floor = min(-1.0, float(np.min(lp[np.isfinite(lp)], initial=-1.0)) * 1.1)
    shown = np.where(np.isfinite(lp), lp, floor)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * len(lp) + 2.0), 3.2), layout="constrained")
    colors = ["C3" if not np.isfinite(v) else "C0" for v in lp]
    ax.bar(pos, shown, color=colors, label="log Pr(token | previous)")
    ax.set_ylabel("log-probability (nats)")
    ax.set_xticks(pos, [tick_label(s) for s in labels])
    twin = ax.twinx()
    twin.plot(pos, np.cumsum(shown), color="C1", marker=".", label="running total")
    twin.set_ylabel("running total (nats)", color="C1")
    twin.grid(False)
    ax.set(xlabel="token", title=title or f"log Pr(sequence) = {lp.sum():.4g} nats")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="lower left")
    return fig


def tick_label(token: str) -> str:
    """A token as a tick label: a space shows as "␣", a newline or tab as its escape (\\n, \\t)."""
    if not isinstance(token, str):
        raise ValueError(f"a token label must be a string, got {type(token).__name__}")
    shown = repr(token)[1:-1].replace("\\'", "'").replace(" ", "␣")
    return shown or "∅"


# ---------------------------------------------------------------- input checks shared by the figures

def series(values: Sequence[float], name: str, positive: bool = False) -> np.ndarray:
    """`values` as a non-empty 1-D float array (NaN and ±inf pass: a figure may show them); optionally all > 0."""
    if isinstance(values, Iterable) and not isinstance(values, (Sequence, np.ndarray, torch.Tensor)):
        values = list(values)  # a generator or a dict's values
    array = as_tensor(values, name, finite=False).numpy()
    if positive and not (array > 0).all():
        raise ValueError(f"{name} must be positive (it is drawn on a log axis), got {array.min():g}")
    return array


def same_length(**named: Sized) -> int:
    """The common length of the named sequences; a ValueError naming each length when they differ."""
    lengths = {name: len(values) for name, values in named.items()}
    if len(set(lengths.values())) > 1:
        names = list(lengths)
        joined = ", ".join(names[:-1]) + f" and {names[-1]}"
        got = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise ValueError(f"{joined} must have the same length, got {got}")
    return next(iter(lengths.values()))
