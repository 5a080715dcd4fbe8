"""Bigram models: counting is the MLE, gradient descent agrees, scoring and sampling."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.ngram import (
    BigramModel,
    as_sequences,
    bigram_counts,
    bigram_probabilities,
    normalise_counts,
)
from course_utils.sequences import temperature_distribution
from course_utils.synthetic import SyntheticLanguage
from course_utils.text import CharTokenizer, python_docs_text


def test_counts_by_hand():
    start, pairs = bigram_counts([0, 1, 1, 2, 0, 1], 3)
    assert start.tolist() == [1, 0, 0]
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[0, 1] = 2
    expected[1, 1] = expected[1, 2] = expected[2, 0] = 1
    assert torch.equal(pairs, expected)
    p = bigram_probabilities([0, 1, 1, 2, 0, 1], 3)
    assert p[1].tolist() == [0.0, 0.5, 0.5]
    assert p[0].tolist() == [0.0, 1.0, 0.0]


def test_several_sequences_do_not_count_pairs_across_boundaries():
    start, pairs = bigram_counts([[0, 1], [2, 2, 2]], 3)
    assert start.tolist() == [1, 0, 1]
    assert pairs[1].sum() == 0 and pairs[2, 2] == 2 and pairs.sum() == 3


def test_unseen_context_is_uniform_and_smoothing_adds_k():
    p = bigram_probabilities([0, 0, 1], 3)
    assert torch.allclose(p[2], torch.full((3,), 1 / 3, dtype=torch.float64))
    s = bigram_probabilities([0, 0, 1], 3, smoothing=1.0)
    assert s[0].tolist() == pytest.approx([2 / 5, 2 / 5, 1 / 5])
    assert (s > 0).all()
    with pytest.raises(ValueError, match="smoothing"):
        normalise_counts(torch.ones(2, 2), -1.0)


@pytest.mark.parametrize("bad, message", [
    ([], "no sequences|empty"), ([0, 5], "outside"), ([-1, 0], "outside"),
    (torch.tensor([0.0, 1.0]), "integer"), ("abc", "integer ids"), ([[0, 1], []], "empty"),
    (torch.zeros(2, 2, 2, dtype=torch.long), "1-dimensional"),
])
def test_bad_token_data_is_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        as_sequences(bad, 3)


def test_counting_maximises_the_likelihood():
    """No perturbation of the counted probabilities raises the log-likelihood."""
    lang = SyntheticLanguage.random(6, 1, 3, seed=0)
    x = lang.sample(3000, torch.Generator().manual_seed(0))
    mle = BigramModel.fit_counts(x, 6)
    best = mle.log_prob(x)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        noisy = mle.transition * torch.exp(0.05 * torch.randn(6, 6, generator=g, dtype=torch.float64))
        other = BigramModel(mle.start, noisy / noisy.sum(1, keepdim=True))
        assert other.log_prob(x) < best


@pytest.mark.parametrize("source", ["docs", "synthetic", "short sequences"])
def test_gradient_descent_agrees_with_counting_to_1e_3(source):
    if source == "docs":
        text = python_docs_text()[:30_000]
        tok = CharTokenizer.from_text(text)
        data, v = tok.encode(text), tok.vocab_size
    elif source == "synthetic":
        data, v = SyntheticLanguage.random(10, 1, 3, seed=1).sample(4000, torch.Generator().manual_seed(2)), 10
    else:
        data, v = [[0, 1, 2], [2, 1], [1, 1, 1, 0], [3]], 5
    counted = BigramModel.fit_counts(data, v)
    fitted, losses = BigramModel.fit_gradient(data, v)
    assert (fitted.transition - counted.transition).abs().max() < 1e-3
    assert (fitted.start - counted.start).abs().max() < 1e-3
    assert losses[-1] < losses[0]
    assert losses[-1] == pytest.approx(counted.mean_nll(data), abs=1e-3)


def test_log_prob_is_the_sum_of_conditionals():
    m = BigramModel(torch.tensor([0.5, 0.5], dtype=torch.float64),
                    torch.tensor([[0.9, 0.1], [0.4, 0.6]], dtype=torch.float64))
    terms = m.token_log_probs([0, 0, 1, 1])
    assert terms.tolist() == pytest.approx([math.log(0.5), math.log(0.9), math.log(0.1), math.log(0.6)])
    assert m.log_prob([0, 0, 1, 1]) == pytest.approx(math.log(0.5 * 0.9 * 0.1 * 0.6))
    assert m.mean_nll([[0, 0], [1]]) == pytest.approx(-(2 * math.log(0.5) + math.log(0.9)) / 3)
    assert m.mean_nll([[0, 0], [1]], include_first=False) == pytest.approx(-math.log(0.9))
    with pytest.raises(ValueError, match="no token to predict"):
        m.mean_nll([[0], [1]], include_first=False)


def test_an_unseen_transition_gives_minus_infinity_without_smoothing():
    m = BigramModel.fit_counts([0, 1, 0, 1], 3)
    assert m.log_prob([0, 2]) == -math.inf
    assert math.isfinite(BigramModel.fit_counts([0, 1, 0, 1], 3, smoothing=0.5).log_prob([0, 2]))


def test_model_shapes_are_checked():
    with pytest.raises(ValueError, match="shape"):
        BigramModel(torch.ones(3) / 3, torch.ones(2, 2) / 2)


def test_sampling_uses_the_temperature_of_each_row():
    """Each drawn token follows temperature_distribution of its row: the same draws, one by one."""
    m = BigramModel.fit_counts(SyntheticLanguage.random(6, 1, 4, seed=2).sample(500, torch.Generator().manual_seed(0)),
                               6, smoothing=0.5)
    for t in (0.5, 1.0, 2.0):
        x = m.sample(30, torch.Generator().manual_seed(7), temperature=t)
        g = torch.Generator().manual_seed(7)
        by_hand = [int(torch.multinomial(temperature_distribution(m.start, t), 1, generator=g))]
        for _ in range(29):
            by_hand.append(int(torch.multinomial(temperature_distribution(m.transition[by_hand[-1]], t), 1,
                                                 generator=g)))
        assert x.tolist() == by_hand
    for t in (-1.0, math.inf, float("nan"), "warm"):
        with pytest.raises(ValueError, match="temperature"):
            m.sample(3, torch.Generator(), temperature=t)


def test_sampling_statistics_within_5_sigma():
    lang = SyntheticLanguage.random(5, 1, 3, seed=4)
    m = BigramModel(lang.token_distribution(), lang.conditional)
    x = m.sample(20_000, torch.Generator().manual_seed(5))
    pairs = bigram_counts(x, 5)[1]
    n_a = pairs.sum(1, keepdim=True)
    p = m.transition
    assert ((pairs - n_a * p).abs() <= 5 * torch.sqrt(n_a * p * (1 - p)) + 1e-9).all()


def test_greedy_sampling_follows_the_argmax_and_generators_reproduce():
    m = BigramModel(torch.tensor([0.2, 0.8], dtype=torch.float64),
                    torch.tensor([[0.3, 0.7], [0.9, 0.1]], dtype=torch.float64))
    assert m.sample(5, torch.Generator().manual_seed(0), temperature=0).tolist() == [1, 0, 1, 0, 1]
    assert m.sample(3, torch.Generator(), temperature=0, first=0).tolist() == [0, 1, 0]
    a = m.sample(50, torch.Generator().manual_seed(3), temperature=1.5)
    b = m.sample(50, torch.Generator().manual_seed(3), temperature=1.5)
    assert torch.equal(a, b)
    assert m.sample(2, torch.Generator(), temperature=0, first=torch.tensor([0, 1])[1].item()).tolist() == [1, 0]
    for bad in (7, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"first must be a token id in 0\.\.1"):
            m.sample(3, torch.Generator(), first=bad)


def test_unigram_start_distribution_for_a_single_stream():
    m = BigramModel.fit_counts([0, 1, 1, 2, 1], 3, start="unigram")
    assert m.start.tolist() == pytest.approx([0.2, 0.6, 0.2])
    assert BigramModel.fit_counts([0, 1, 1, 2, 1], 3).start.tolist() == [1.0, 0.0, 0.0]
    assert torch.equal(m.transition, BigramModel.fit_counts([0, 1, 1, 2, 1], 3).transition)
    with pytest.raises(ValueError, match="start"):
        BigramModel.fit_counts([0, 1], 3, start="last")
