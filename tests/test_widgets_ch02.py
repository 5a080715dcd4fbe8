"""Chapter 02's explorer and figures: state updates when widget values are set."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from course_utils import viz  # noqa: E402
from course_utils.ngram import BigramModel  # noqa: E402
from course_utils.synthetic import SyntheticLanguage  # noqa: E402
from course_utils.text import CharTokenizer  # noqa: E402
from course_utils.viz import ch02  # noqa: E402
from course_utils.viz.ch02 import SequenceExplorer  # noqa: E402

TEXT = "the cat sat on the mat. the dog sat on the log."


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tok = CharTokenizer.from_text(TEXT)
    return BigramModel.fit_counts(tok.encode(TEXT), tok.vocab_size, smoothing=0.1), tok


def test_explorer_scores_each_character_and_sums(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ex = SequenceExplorer.for_bigram(model, tok, text="the cat", draw=False)
    assert ex.labels == list("the cat")
    expected = model.token_log_probs(tok.encode("the cat")).tolist()
    assert ex.log_probs == pytest.approx(expected)
    assert ex.total == pytest.approx(model.log_prob(tok.encode("the cat")))
    assert f"{ex.total:.4f}" in ex.summary.value


def test_explorer_updates_when_the_text_changes(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ex = SequenceExplorer.for_bigram(model, tok, text="the cat", draw=False)
    ex.text.value = "the dog sat"
    assert ex.labels == list("the dog sat")
    assert ex.total == pytest.approx(model.log_prob(tok.encode("the dog sat")))
    # an improbable pair (a character after itself never seen) drags the total down
    before = ex.total
    ex.text.value = "the dog sat" + "tt"
    assert ex.total < before - 2
    assert "least likely" in ex.summary.value


def test_explorer_reports_unknown_characters_and_empty_text(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ex = SequenceExplorer.for_bigram(model, tok, text="the cat", draw=False)
    ex.text.value = "the cat!?"
    assert ex.total is None and ex.labels == []
    assert ex.summary.value.startswith("❌") and "'!'" in ex.summary.value
    ex.text.value = ""
    assert ex.total is None and ex.summary.value.startswith("❌")
    ex.text.value = "a cat"
    assert ex.total is not None and math.isfinite(ex.total)


def test_explorer_draws_a_chart_without_error(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ex = SequenceExplorer.for_bigram(model, tok, text="the mat", draw=True)
    ex.text.value = "the log"
    assert ex.total == pytest.approx(model.log_prob(tok.encode("the log")))


def test_figures_have_labelled_axes():
    fig = viz.token_log_probs(list("ab c"), [-0.5, -1.0, -math.inf, -0.2])
    assert fig.axes[0].get_ylabel() and fig.axes[0].get_xlabel()
    lang = SyntheticLanguage.random(5, 1, 2, seed=0)
    fig = ch02.entropy_convergence([10, 100, 1000], [1.2, 0.9, 0.7], lang.entropy_rate() - 0.1)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    fig = ch02.length_dominance([2, 3, 50], [-1.0, -2.0, -40.0])
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    fig = ch02.temperature_bars(list("abc"), torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]), [1.0, 0.5])
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    matplotlib.pyplot.close("all")
