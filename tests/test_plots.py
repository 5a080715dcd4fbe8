"""Figures: each helper returns a figure with labelled axes."""

import matplotlib
import torch

from course_utils import viz
from course_utils.viz import ch01

matplotlib.use("Agg")


def _labelled(fig):
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    matplotlib.pyplot.close(fig)


def test_figures_have_labelled_axes():
    _labelled(ch01.likelihood_curves([1, 0, 1, 1], theta=0.3))
    _labelled(ch01.likelihood_curves([1, 1, 1]))  # log-likelihood is -inf at θ = 0
    _labelled(viz.curve([0.5, 0.6, 0.7], "step", "θ", target=0.75))
    est = torch.rand(3, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _labelled(ch01.consistency([10, 100, 1000], est, 0.5))
    _labelled(ch01.cross_entropy_floor([0.1, 0.5, 0.9], [1.0, 0.7, 1.2], 0.69, 0.5))
    _labelled(ch01.heldout_comparison(["a", "b"], [-0.7, -0.6], [-0.7, -0.65]))
