"""The likelihood explorer: widget state follows the controls; bad flips give a ❌ line."""

import matplotlib

from course_utils.viz.ch01 import LikelihoodExplorer

matplotlib.use("Agg")


def test_explorer_tracks_theta_and_flips():
    e = LikelihoodExplorer(flips="HTHH", theta=0.5, draw=False)
    assert e.mle == 0.75 and "MLE θ̂ = k/n = 0.7500" in e.summary.value
    e.theta.value = 0.3
    assert "at θ = 0.30" in e.summary.value
    e.flips.value = "HHTTTTTTTT"
    assert e.mle == 0.2 and "k = 2 heads in n = 10 flips" in e.summary.value


def test_explorer_reports_bad_flips_without_raising():
    e = LikelihoodExplorer(draw=False)
    e.flips.value = "HXH"
    assert e.mle is None and e.summary.value.startswith("❌") and "Hint" in e.summary.value
    e.flips.value = ""
    assert e.summary.value.startswith("❌")
    e.flips.value = "TT"
    assert e.mle == 0.0


def test_explorer_draws_into_its_output():
    e = LikelihoodExplorer(flips="HHT", draw=True)
    e.theta.value = 0.9
    assert e.mle == 2 / 3
