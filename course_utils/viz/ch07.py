"""Chapter 07 figures and explorers: workers' shards of a global batch and the global batch's mean NLL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..distributed import global_mean_nll
from ..validate import as_tensor, int_at_least, positive_int
from .explorer import Explorer

# A mean of the workers' means "agrees" with the global batch's mean NLL when they differ by less than this.
AGREE = 1e-9


class BatchMeans(NamedTuple):
    """The three candidates for a global batch's mean NLL, computed from the workers' per-target NLLs."""

    worker_means: list[float]  # each worker's mean NLL over its own targets
    counts: list[int]  # each worker's number of counted (non-padding) targets
    plain: float  # the mean of the workers' means
    weighted: float  # the token-weighted mean Σ nᵢ·mᵢ / Σ nᵢ
    global_nll: float  # the mean NLL of all targets of the global batch together


def batch_means(per_target: Sequence[Sequence[float]]) -> BatchMeans:
    """Each worker's mean NLL, the plain and the token-weighted mean of those, and the global batch's own mean NLL."""
    rows = _per_target(per_target)
    worker_means = [float(row.mean()) for row in rows]
    counts = [row.numel() for row in rows]
    return BatchMeans(worker_means=worker_means, counts=counts, plain=sum(worker_means) / len(rows),
                      weighted=global_mean_nll(worker_means, counts), global_nll=float(torch.cat(rows).mean()))


def shard_targets(count: int, mean: float) -> torch.Tensor:
    """`count` per-target NLLs with mean `mean`: the first targets hardest, falling linearly from 1.5·mean to 0.5·mean.

    A single target's NLL is `mean` itself.
    """
    count = positive_int(count, "count")
    mean = float(as_tensor([mean], "mean")[0])
    if mean < 0:
        raise ValueError(f"mean must be a mean NLL >= 0, got {mean!r}")
    spread = torch.linspace(1.0, -1.0, count, dtype=torch.float64) if count > 1 else torch.zeros(1, dtype=torch.float64)
    return mean * (1 + 0.5 * spread)


def shard_nlls(per_target: Sequence[Sequence[float]], positions: int, title: str = "") -> Figure:
    """Each worker's row of `positions` slots: its targets' NLLs, then padding; the worker means and the three means.

    Horizontal lines mark the mean of the workers' means, their token-weighted mean and the mean NLL of the
    whole global batch; the legend says which of the first two equals the third.
    """
    rows = _per_target(per_target)
    positions = positive_int(positions, "positions")
    longest = max(row.numel() for row in rows)
    if longest > positions:
        raise ValueError(f"a worker has {longest} targets but only {positions} positions; "
                         "give each worker at most `positions` targets")
    means = batch_means(rows)
    fig, ax = plt.subplots(layout="constrained")
    for i, row in enumerate(rows):
        start, n = i * positions, row.numel()
        ax.plot(start + np.arange(n), row.numpy(), ".", ms=3, color=f"C{i}")
        ax.hlines(means.worker_means[i], start, start + n - 1, color=f"C{i}", lw=2.5,
                  label=f"worker {i}: {n} targets, mean {means.worker_means[i]:.4f}")
        if n < positions:
            ax.axvspan(start + n - 0.5, start + positions - 0.5, color="0.85", hatch="//", lw=0,
                       label="padding (not counted)" if i == _first_padded(rows, positions) else None)
    ax.axhline(means.global_nll, color="k", lw=3.5, alpha=0.3, label=f"global batch's mean NLL {means.global_nll:.4f}")
    for value, name, style in ((means.weighted, "token-weighted mean", "-"), (means.plain, "mean of the means", "--")):
        verdict = "=" if abs(value - means.global_nll) < AGREE else "≠"
        ax.axhline(value, color="C3" if verdict == "≠" else "k", ls=style, lw=1.2,
                   label=f"{name} {value:.4f} ({verdict} global)")
    ax.set(xlabel="position in the global batch (worker 0's slots, then worker 1's, …)",
           ylabel="NLL of a target (nats)", xlim=(-0.5, len(rows) * positions - 0.5), ylim=(0, None), title=title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


class ShardExplorer(Explorer):
    """Sliders for each worker's number of counted targets and its mean NLL; the three means of section 1.

    Worker i holds `positions` target slots, the first `targets[i]` counted and the rest padding; its
    targets' NLLs are `shard_targets(targets[i], means[i])`. State after each change: `per_target`
    (each worker's NLLs), `means` (a `BatchMeans`) and `plain_agrees` (whether the mean of the workers'
    means equals the global batch's mean NLL, which the token-weighted mean always does).
    """

    def __init__(self, targets: Sequence[int] = (12, 128), means: Sequence[float] = (2.5, 1.5), positions: int = 128,
                 draw: bool = True) -> None:
        if isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence):
            raise ValueError(f"targets must be a sequence of target counts, one per worker, got {targets!r}")
        if isinstance(means, (str, bytes)) or not isinstance(means, Sequence) or len(means) != len(targets):
            raise ValueError(f"means must give one mean NLL per worker ({len(targets)}), got {means!r}")
        int_at_least(len(targets), "the number of workers", 2)
        self.positions = int_at_least(positions, "positions", 2)
        for i, (n, m) in enumerate(zip(targets, means, strict=True)):
            if int_at_least(n, f"targets[{i}]", 1) > self.positions:
                raise ValueError(f"targets[{i}] = {n} exceeds the {self.positions} positions of a worker")
            shard_targets(n, m)  # checks the mean
        self.counts = [W.IntSlider(value=n, min=1, max=self.positions, description=f"worker {i} targets",
                                   continuous_update=False, style={"description_width": "initial"})
                       for i, n in enumerate(targets)]
        self.nlls = [W.FloatSlider(value=m, min=0.1, max=5.0, step=0.05, description=f"worker {i} mean NLL",
                                   continuous_update=False, readout_format=".2f",
                                   style={"description_width": "initial"})
                     for i, m in enumerate(means)]
        self.per_target: list[torch.Tensor] = []
        self.means: BatchMeans | None = None
        self.plain_agrees = False
        super().__init__([[n, m] for n, m in zip(self.counts, self.nlls, strict=True)], draw)

    def compute(self) -> str:
        self.per_target = [shard_targets(int(n.value), float(m.value)) for n, m in zip(self.counts, self.nlls,
                                                                                         strict=True)]
        self.means = means = batch_means(self.per_target)
        self.plain_agrees = abs(means.plain - means.global_nll) < AGREE
        counts = " + ".join(map(str, means.counts))
        return (f"counted targets {counts} = {sum(means.counts)} · workers' mean NLLs "
                f"{', '.join(f'{m:.4f}' for m in means.worker_means)} · mean of the means {means.plain:.4f} · "
                f"token-weighted mean {means.weighted:.4f} · global batch's mean NLL {means.global_nll:.4f} · "
                f"{_verdict(means)}")

    def make_figure(self) -> Figure:
        return shard_nlls(self.per_target, self.positions, title="the global batch's mean NLL from its shards")


def _per_target(per_target: Sequence[Sequence[float]]) -> list[torch.Tensor]:
    """Each worker's per-target NLLs as a non-empty 1-D float64 tensor of finite values >= 0."""
    if isinstance(per_target, (str, bytes, torch.Tensor, np.ndarray)) or not isinstance(per_target, Sequence):
        raise ValueError("per_target must be a list with one sequence of target NLLs per worker")
    if len(per_target) == 0:
        raise ValueError("per_target is empty: give at least one worker's target NLLs")
    rows = [as_tensor(row, f"worker {i}'s target NLLs") for i, row in enumerate(per_target)]
    for i, row in enumerate(rows):
        if (row < 0).any():
            raise ValueError(f"worker {i}'s target NLLs must be >= 0 (an NLL is -log of a probability), "
                             f"got {float(row.min()):g}")
    return rows


def _verdict(means: BatchMeans) -> str:
    """Which of the two means equals the global batch's mean NLL, and why."""
    if len(set(means.counts)) == 1:
        return "equal shards: both means equal it"
    if abs(means.plain - means.global_nll) < AGREE:
        return "unequal shards: the token-weighted mean equals it, the mean of the means only by coincidence here"
    return "unequal shards: only the token-weighted mean equals it"


def _first_padded(rows: Sequence[torch.Tensor], positions: int) -> int | None:
    """The first worker whose row has padding (the legend names padding once)."""
    return next((i for i, row in enumerate(rows) if row.numel() < positions), None)
