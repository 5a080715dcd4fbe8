"""Figures: each helper returns a figure with labelled axes."""

import matplotlib
import torch

from course_utils import plots

matplotlib.use("Agg")


def _labelled(fig):
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    matplotlib.pyplot.close(fig)


def test_figures_have_labelled_axes():
    _labelled(plots.likelihood_curves([1, 0, 1, 1], theta=0.3))
    _labelled(plots.likelihood_curves([1, 1, 1]))  # log-likelihood is -inf at θ = 0
    _labelled(plots.curve([0.5, 0.6, 0.7], "step", "θ", target=0.75))
    est = torch.rand(3, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _labelled(plots.consistency([10, 100, 1000], est, 0.5))
    _labelled(plots.cross_entropy_floor([0.1, 0.5, 0.9], [1.0, 0.7, 1.2], 0.69, 0.5))
    _labelled(plots.heldout_comparison(["a", "b"], [-0.7, -0.6], [-0.7, -0.65]))
