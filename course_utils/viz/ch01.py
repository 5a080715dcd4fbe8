"""Chapter 01 figures and explorers: likelihood curves, consistency, the cross-entropy floor."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..likelihood import bernoulli_likelihood, bernoulli_log_likelihood, bernoulli_mle
from ..validate import ArrayLike, as_flips, finite_float, int_at_least, probability
from .common import same_length, series
from .explorer import Explorer, Rejected


def likelihood_curves(flips: ArrayLike, theta: float | None = None, points: int = 201) -> Figure:
    """L(θ) and ℓ(θ) side by side, with the MLE (and optionally a chosen θ) marked."""
    x = as_flips(flips)
    if theta is not None:
        theta = probability(theta, "theta")
    grid = np.linspace(0.0, 1.0, int_at_least(points, "points", 2))
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


def consistency(ns: Sequence[int], estimates: torch.Tensor, theta: float) -> Figure:
    """θ̂ concentrating on θ as n grows (left) and its spread shrinking like 1/√n (right)."""
    ns_arr = series(ns, "ns", positive=True)
    est = torch.as_tensor(estimates, dtype=torch.float64).numpy()
    if est.ndim != 2 or est.shape[0] != len(ns_arr):
        raise ValueError(f"estimates must have shape (len(ns), replicates) = ({len(ns_arr)}, r), got {est.shape}")
    theta = probability(theta, "theta")
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
    same_length(thetas=thetas, ce=ce)
    thetas, ce = series(thetas, "thetas"), series(ce, "ce")
    entropy, theta_hat = finite_float(entropy, "entropy"), probability(theta_hat, "theta_hat")
    fig, ax = plt.subplots(layout="constrained")
    ax.plot(thetas, ce, label="cross-entropy CE(p_data, p_θ)")
    ax.axhline(entropy, color="C2", linestyle=":", label=f"entropy H(p_data) = {entropy:.4f}")
    ax.axvline(theta_hat, color="C3", linestyle="--", label=f"MLE θ̂ = {theta_hat:.3f}")
    ax.set(xlabel="θ", ylabel="nats per flip", title="CE = H + KL ≥ H")
    ax.legend(fontsize=8)
    return fig


def heldout_comparison(labels: Sequence[str], train: Sequence[float], heldout: Sequence[float]) -> Figure:
    """Per-token log-likelihood of several models on training and held-out data, as grouped bars."""
    same_length(labels=labels, train=train, heldout=heldout)
    train, heldout = series(train, "train"), series(heldout, "heldout")
    pos = np.arange(len(labels))
    fig, ax = plt.subplots(layout="constrained")
    ax.bar(pos - 0.2, train, width=0.4, label="training data")
    ax.bar(pos + 0.2, heldout, width=0.4, label="held-out data")
    ax.set_xticks(pos, labels)
    ax.set(xlabel="model", ylabel="mean log-likelihood per flip (nats)", title="higher is better")
    ax.legend(fontsize=8)
    return fig


class LikelihoodExplorer(Explorer):
    """A θ slider and editable flips (H/T) redrawing L(θ) and ℓ(θ), with the MLE marked.

    State after each change: `mle` (k/n for the typed flips, or None when they cannot be read).
    """

    def __init__(self, flips: str = "HTHH", theta: float = 0.5, draw: bool = True) -> None:
        self.theta = W.FloatSlider(value=theta, min=0.0, max=1.0, step=0.01, description="θ",
                                   continuous_update=False, readout_format=".2f")
        self.flips = W.Text(value=flips, description="flips", placeholder="e.g. HTHH")
        self.mle: float | None = None
        self._data: torch.Tensor | None = None
        super().__init__([[self.flips, self.theta]], draw)

    def compute(self) -> str:
        try:
            x = as_flips(self.flips.value)
        except ValueError as exc:
            raise Rejected(str(exc), "type heads as H and tails as T, e.g. HTHH") from None
        t = self.theta.value
        self._data, self.mle = x, bernoulli_mle(x)
        k, n = int(x.sum()), x.numel()
        return (f"k = {k} heads in n = {n} flips · MLE θ̂ = k/n = {self.mle:.4f} · "
                f"at θ = {t:.2f}: L = {bernoulli_likelihood(t, x):.4g}, "
                f"ℓ = {bernoulli_log_likelihood(t, x):.4f}")

    def reset(self) -> None:
        self._data, self.mle = None, None

    def make_figure(self) -> Figure:
        return likelihood_curves(self._data, theta=self.theta.value)
