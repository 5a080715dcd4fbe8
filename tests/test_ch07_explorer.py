"""Chapter 07's shard explorer: the sliders move the state; only the token-weighted mean is the global batch's NLL."""

import matplotlib
import pytest
import torch

from course_utils.viz import ch07
from course_utils.viz.ch07 import ShardExplorer

matplotlib.use("Agg")


def test_shard_targets_have_the_asked_mean_and_the_first_targets_are_hardest():
    nll = ch07.shard_targets(12, 2.5)
    assert nll.shape == (12,) and float(nll.mean()) == pytest.approx(2.5, abs=1e-12)
    assert float(nll[0]) == pytest.approx(3.75, abs=1e-12) and float(nll[-1]) == pytest.approx(1.25, abs=1e-12)
    assert (nll[:-1] > nll[1:]).all()
    assert ch07.shard_targets(1, 0.7).tolist() == pytest.approx([0.7], abs=1e-12)


def test_batch_means_from_per_target_nlls():
    means = ch07.batch_means([[1.0, 3.0], [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]])
    assert means.worker_means == pytest.approx([2.0, 4.0], abs=1e-12) and means.counts == [2, 6]
    assert means.plain == pytest.approx(3.0, abs=1e-12)
    assert means.global_nll == pytest.approx(28.0 / 8, abs=1e-12)  # all eight targets together
    assert means.weighted == pytest.approx(means.global_nll, abs=1e-12)


def test_unequal_shards_only_the_token_weighted_mean_is_the_global_nll():
    e = ShardExplorer(targets=(12, 128), means=(2.5, 1.5), positions=128, draw=False)
    global_nll = float(torch.cat(e.per_target).mean())  # every counted target of the global batch, once
    assert global_nll == pytest.approx((12 * 2.5 + 128 * 1.5) / 140, abs=1e-12)
    assert e.means.weighted == pytest.approx(global_nll, abs=1e-12)
    assert e.means.global_nll == pytest.approx(global_nll, abs=1e-12)
    assert e.means.plain == pytest.approx(2.0, abs=1e-12) and e.means.plain - global_nll > 0.4
    assert not e.plain_agrees and "only the token-weighted mean equals it" in e.summary.value


def test_moving_a_slider_changes_the_displayed_state():
    e = ShardExplorer(targets=(12, 128), means=(2.5, 1.5), positions=128, draw=False)
    before, summary = e.state_text(), e.summary.value
    e.counts[0].value = 13
    assert e.means.counts == [13, 128] and e.summary.value != summary and e.state_text() != before
    assert "worker 0 targets: 13" in e.state_text() and "13 + 128 = 141" in e.summary.value
    assert e.means.weighted == pytest.approx((13 * 2.5 + 128 * 1.5) / 141, abs=1e-12)
    e.nlls[1].value = 3.0
    assert "worker 1 mean NLL: 3.00" in e.state_text()
    assert e.means.worker_means[1] == pytest.approx(3.0, abs=1e-12)
    assert e.means.weighted == pytest.approx((13 * 2.5 + 128 * 3.0) / 141, abs=1e-12)


def test_equal_shards_make_the_mean_of_the_means_right():
    e = ShardExplorer(targets=(12, 128), means=(2.5, 1.5), positions=128, draw=False)
    e.counts[0].value = 128
    assert e.plain_agrees and e.means.plain == pytest.approx(e.means.global_nll, abs=1e-12)
    assert e.means.plain == pytest.approx(2.0, abs=1e-12) and "equal shards: both means equal it" in e.summary.value
    e.counts[0].value = 3
    e.nlls[0].value = 1.5  # unequal shards with equal means: the plain mean is right only by coincidence
    assert e.plain_agrees and "only by coincidence" in e.summary.value


def test_three_workers_and_the_figure():
    e = ShardExplorer(targets=(10, 40, 20), means=(3.0, 1.0, 2.0), positions=40)
    assert e.means.weighted == pytest.approx((30 + 40 + 40) / 70, abs=1e-12)
    assert e.means.plain == pytest.approx(2.0, abs=1e-12)
    labels = e.figure.axes[0].get_legend_handles_labels()[1]
    assert "token-weighted mean 1.5714 (= global)" in labels and "mean of the means 2.0000 (≠ global)" in labels
    assert "padding (not counted)" in labels and labels.count("padding (not counted)") == 1


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="the number of workers must be an integer >= 2"):
        ShardExplorer(targets=(10,), means=(1.0,))
    with pytest.raises(ValueError, match="one mean NLL per worker"):
        ShardExplorer(targets=(10, 20), means=(1.0,))
    with pytest.raises(ValueError, match=r"targets\[1\] = 200 exceeds the 128 positions"):
        ShardExplorer(targets=(10, 200), means=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"targets\[0\] must be a positive integer"):
        ShardExplorer(targets=(0, 20), means=(1.0, 1.0))
    with pytest.raises(ValueError, match="mean must be a mean NLL >= 0"):
        ShardExplorer(targets=(10, 20), means=(-1.0, 1.0))
    with pytest.raises(ValueError, match="worker 1's target NLLs must be >= 0"):
        ch07.batch_means([[1.0], [-0.5]])
