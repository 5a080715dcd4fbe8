"""The lessons' figures: small matplotlib helpers with labelled axes, one message per figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .likelihood import bernoulli_likelihood, bernoulli_log_likelihood, bernoulli_mle
from .validate import ArrayLike, as_flips

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7.0, 3.2), "axes.grid": True,
                     "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})


def likelihood_curves(flips: ArrayLike, theta: float | None = None, points: int = 201) -> Figure:
    """L(θ) and ℓ(θ) side by side, with the MLE (and optionally a chosen θ) marked."""
    x = as_flips(flips)
    grid = np.linspace(0.0, 1.0, points)
    lik = [bernoulli_likelihood(t, x) for t in grid]
    with np.errstate(divide="ignore"):
        loglik = [bernoulli_log_likelihood(t, x) for t in grid]
    mle = bernoulli_mle(x)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    a.plot(grid, lik)
    a.set(xlabel="θ (probability of heads)", ylabel="L(θ)", title="likelihood")
    b.plot(grid, loglik)
    finite = [v for v in loglik if np.isfinite(v)]
    b.set(xlabel="θ (probability of heads)", ylabel="ℓ(θ) = log L(θ)", title="log-likelihood",
          ylim=(max(min(finite), max(finite) - 30), max(finite) + 1))
    for ax in (a, b):
        ax.axvline(mle, color="C3", linestyle="--", label=f"MLE θ̂ = {mle:.3f}")
        if theta is not None:
            ax.axvline(theta, color="C2", alpha=0.7, label=f"θ = {theta:.3f}")
    a.legend(loc="upper left", fontsize=8)
    return fig


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


def consistency(ns: Sequence[int], estimates: torch.Tensor, theta: float) -> Figure:
    """θ̂ concentrating on θ as n grows (left) and its spread shrinking like 1/√n (right)."""
    ns_arr = np.asarray(ns, dtype=float)
    est = estimates.numpy()
    lo, hi = np.percentile(est, [2.5, 97.5], axis=1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    a.fill_between(ns_arr, lo, hi, alpha=0.3, label="middle 95 % of θ̂")
    a.plot(ns_arr, est.mean(axis=1), label="mean of θ̂")
    a.axhline(theta, color="C3", linestyle="--", label=f"true θ = {theta}")
    a.set(xscale="log", xlabel="n (flips per data set)", ylabel="θ̂", title="θ̂ → θ")
    a.legend(fontsize=8)
    b.loglog(ns_arr, est.std(axis=1), "o", label="simulated std of θ̂")
    b.loglog(ns_arr, np.sqrt(theta * (1 - theta) / ns_arr), "-", label="√(θ(1−θ)/n)")
    b.set(xlabel="n (flips per data set)", ylabel="standard deviation", title="spread ∝ 1/√n")
    b.legend(fontsize=8)
    return fig


def cross_entropy_floor(thetas: Sequence[float], ce: Sequence[float], entropy: float,
                        theta_hat: float) -> Figure:
    """CE(p_data, p_θ) against θ: its minimum is H(p_data), reached at the MLE; the gap is the KL."""
    fig, ax = plt.subplots(layout="constrained")
    ax.plot(thetas, ce, label="cross-entropy CE(p_data, p_θ)")
    ax.axhline(entropy, color="C2", linestyle=":", label=f"entropy H(p_data) = {entropy:.4f}")
    ax.axvline(theta_hat, color="C3", linestyle="--", label=f"MLE θ̂ = {theta_hat:.3f}")
    ax.set(xlabel="θ", ylabel="nats per flip", title="CE = H + KL ≥ H")
    ax.legend(fontsize=8)
    return fig


def heldout_comparison(labels: Sequence[str], train: Sequence[float], heldout: Sequence[float]) -> Figure:
    """Per-token log-likelihood of several models on training and held-out data, as grouped bars."""
    pos = np.arange(len(labels))
    fig, ax = plt.subplots(layout="constrained")
    ax.bar(pos - 0.2, train, width=0.4, label="training data")
    ax.bar(pos + 0.2, heldout, width=0.4, label="held-out data")
    ax.set_xticks(pos, labels)
    ax.set(xlabel="model", ylabel="mean log-likelihood per flip (nats)", title="higher is better")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- chapter 02: sequences

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


def entropy_convergence(ns: Sequence[int], cross_entropy: Sequence[float], entropy: float) -> Figure:
    """Exact cross-entropy of models fitted on n tokens, falling towards the source's entropy rate."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    a.plot(ns, cross_entropy, "o-", label="fitted bigram: cross-entropy")
    a.axhline(entropy, color="C2", linestyle=":", label=f"entropy rate H = {entropy:.4f}")
    a.set(xscale="log", xlabel="training tokens n", ylabel="nats per token", title="CE → H")
    a.legend(fontsize=8)
    b.loglog(ns, np.asarray(cross_entropy) - entropy, "o-", color="C3")
    b.set(xlabel="training tokens n", ylabel="CE − H = KL (nats per token)", title="the gap shrinks")
    return fig


def length_dominance(lengths: Sequence[int], seq_log_probs: Sequence[float]) -> Figure:
    """Each sequence's log-probability against its length: long ones carry most of the sum."""
    n = np.asarray(list(lengths), dtype=float)
    lp = np.asarray(list(seq_log_probs), dtype=float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    a.scatter(n, lp, s=12)
    a.set(xlabel="sequence length (tokens)", ylabel="log Pr(x) (nats)", title="one term per token")
    order = np.argsort(-n)
    share = np.cumsum(lp[order]) / lp.sum()
    b.plot(np.arange(1, len(n) + 1) / len(n), share, label="share of the objective")
    b.plot(np.arange(1, len(n) + 1) / len(n), np.cumsum(n[order]) / n.sum(), "--", label="share of the tokens")
    b.set(xlabel="fraction of sequences (longest first)", ylabel="cumulative share",
          title="sum ≈ tokens, not sequences")
    b.legend(fontsize=8)
    return fig


def temperature_bars(labels: Sequence[str], probs: torch.Tensor, temperatures: Sequence[float]) -> Figure:
    """The next-token distribution at several temperatures, as grouped bars."""
    pos = np.arange(len(labels))
    width = 0.8 / len(temperatures)
    fig, ax = plt.subplots(layout="constrained")
    for j, (t, row) in enumerate(zip(temperatures, probs, strict=True)):
        ax.bar(pos + (j - (len(temperatures) - 1) / 2) * width, np.asarray(row), width=width, label=f"T = {t:g}")
    ax.set_xticks(pos, [repr(s)[1:-1] or "␣" for s in labels])
    ax.set(xlabel="next token", ylabel="probability", title="low T sharpens, high T flattens")
    ax.legend(fontsize=8)
    return fig
