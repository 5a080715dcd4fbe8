"""Figures: each helper returns a figure with labelled axes."""

import matplotlib
import pytest
import torch

from course_utils import viz
from course_utils.viz import ch01, ch02, common

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


def test_spaces_in_token_tick_labels_show_as_open_box():
    assert [common.tick_label(s) for s in [" ", "a b", "\n", "'", "x", ""]] == ["␣", "a␣b", "\\n", "'", "x", "∅"]
    figures = [common.token_log_probs(list("a b"), [-0.5, -1.0, -0.2]),
               ch02.temperature_bars(list("a "), torch.tensor([[0.5, 0.5]]), [1.0]),
               ch02.bigram_heatmap(torch.tensor([[1.0, 2.0], [0.0, 3.0]]), [" ", "\n"])]
    shown = [[t.get_text() for t in fig.axes[0].get_xticklabels()] for fig in figures]
    assert shown == [["a", "␣", "b"], ["a", "␣"], ["␣", "\\n"]]
    assert [t.get_text() for t in figures[2].axes[0].get_yticklabels()] == ["␣", "\\n"]
    for fig in figures:
        assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
        matplotlib.pyplot.close(fig)


def test_the_bigram_heat_map_shows_log_one_plus_counts_and_rejects_bad_counts():
    counts = torch.tensor([[0.0, 4.0], [9.0, 1.0]])
    fig = ch02.bigram_heatmap(counts, ["a", "b"])
    assert torch.allclose(torch.as_tensor(fig.axes[0].images[0].get_array().data), torch.log1p(counts).double())
    assert fig.axes[0].get_xlabel() == "next token b" and fig.axes[0].get_ylabel() == "previous token a"
    matplotlib.pyplot.close(fig)
    for bad, message in [(torch.ones(2, 3), "shape"), (torch.tensor([[1.0, -1.0], [0.0, 0.0]]), "non-negative")]:
        with pytest.raises(ValueError, match=message):
            ch02.bigram_heatmap(bad, ["a", "b"])
    with pytest.raises(ValueError, match="string"):
        common.tick_label(3)
