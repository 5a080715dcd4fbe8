"""Chapter 05 figures: moving average, attention cost measurement, plots with labelled axes."""

import matplotlib
import pytest

from course_utils import throughput
from course_utils.train import History
from course_utils.viz import ch05 as curves

matplotlib.use("Agg")


def test_smooth_is_a_trailing_mean():
    assert curves.smooth([1.0, 3.0, 5.0, 7.0], window=2) == [1.0, 2.0, 4.0, 6.0]
    assert curves.smooth([2.0, 4.0], window=10) == [2.0, 3.0]
    with pytest.raises(ValueError):
        curves.smooth([1.0], window=0)


def test_attention_cost_memory_grows_with_the_square_of_the_length():
    cost = throughput.attention_cost([16, 32, 64], d=8, heads=2, repeats=1)
    assert cost["length"] == [16, 32, 64]
    assert cost["score_mib"] == [2 * t * t * 4 / 2**20 for t in (16, 32, 64)]
    assert all(s > 0 for s in cost["seconds"])
    with pytest.raises(ValueError):
        throughput.attention_cost([0])


def test_plots_have_labelled_axes():
    h = History(steps=[1, 2, 3], train_loss=[3.0, 2.0, 1.5], val_steps=[3], val_loss=[1.8])
    fig = curves.plot_curves({"run": h}, floors={"H": 1.0}, window=2)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "training step" and "nats" in ax.get_ylabel()
    assert len(ax.get_lines()) == 3
    fig = curves.plot_attention_cost(throughput.attention_cost([8, 16], d=4, heads=1, repeats=1))
    assert all(a.get_xlabel() == "sequence length T" for a in fig.axes)
    with pytest.raises(ValueError):
        curves.plot_curves({})
