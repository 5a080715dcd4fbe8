"""Chapter 04 figures and the label-smoothing explorer: state follows the controls."""

import math

import matplotlib
import pytest
import torch

from course_utils.viz import ch04 as cross_entropy_plots
from course_utils.viz.ch04 import SmoothingExplorer

matplotlib.use("Agg")
LOGITS = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
LABELS = ["the", "cat", "sat", "mat"]


def _logp(i):
    return float(torch.log_softmax(LOGITS, 0)[i])


def test_without_smoothing_the_loss_is_the_nll():
    e = SmoothingExplorer(LOGITS, LABELS, target=1, epsilon=0.0, draw=False)
    assert e.loss == pytest.approx(-_logp(1), abs=1e-12) and e.gap == pytest.approx(0.0, abs=1e-12)
    assert e.q.tolist() == [0.0, 1.0, 0.0, 0.0]


def test_slider_moves_the_target_and_the_gap_is_the_extra_term():
    e = SmoothingExplorer(LOGITS, LABELS, target=0, epsilon=0.0, draw=False)
    e.epsilon.value = 0.4
    uniform = -sum(_logp(i) for i in range(4)) / 4
    assert e.q.tolist() == pytest.approx([0.7, 0.1, 0.1, 0.1], abs=1e-12)
    assert e.nll == pytest.approx(-_logp(0), abs=1e-12)
    assert e.gap == pytest.approx(0.4 * (uniform + _logp(0)), abs=1e-12)
    assert e.gap == pytest.approx(e.extra, abs=1e-12) and e.gap > 0  # target is the likeliest token
    assert "ε = 0.40" in e.summary.value and "gap" in e.summary.value


def test_changing_the_target_token():
    e = SmoothingExplorer(LOGITS, LABELS, target=0, epsilon=0.2, draw=False)
    e.target.value = 3
    assert e.nll == pytest.approx(-_logp(3), abs=1e-12)
    assert e.gap < 0  # smoothing lowers the loss of an unlikely target
    assert math.isclose(float(e.q.sum()), 1.0) and "'mat'" in e.summary.value


def test_explorer_draws_and_rejects_bad_arguments():
    e = SmoothingExplorer(LOGITS, LABELS, draw=True)
    e.epsilon.value = 0.9
    assert e.q[0] == pytest.approx(0.1 + 0.9 / 4)
    with pytest.raises(ValueError, match="labels"):
        SmoothingExplorer(LOGITS, LABELS[:3])
    with pytest.raises(ValueError, match="target"):
        SmoothingExplorer(LOGITS, LABELS, target=4)
    with pytest.raises(ValueError, match="shape"):
        SmoothingExplorer(LOGITS.reshape(2, 2), LABELS)


def test_figures_build_and_validate():
    fig = cross_entropy_plots.loss_curves({"CE": [3.0, 2.0, 1.5], "NLL": [3.0, 2.0, 1.5]}, entropy=1.2)
    assert len(fig.axes[0].lines) == 3
    fig = cross_entropy_plots.stability([1, 10, 100], {"naive": [1.0, 2.0, float("nan")], "stable": [1.0, 2.0, 3.0]})
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="empty"):
        cross_entropy_plots.loss_curves({})
    with pytest.raises(ValueError, match="one entry per token"):
        cross_entropy_plots.target_and_model(["a"], torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]))


def test_token_axis_shows_a_space_as_a_visible_mark():
    fig = cross_entropy_plots.target_and_model([" ", "a", "\n"], torch.tensor([0.8, 0.1, 0.1]),
                                               torch.tensor([0.5, 0.3, 0.2]))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["␣", "a", "\\n"]
