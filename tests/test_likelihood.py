"""likelihood (chapter 01 part): values against hand computations, statistics, and bad input."""

import math

import pytest
import torch

from course_utils import likelihood as L


def test_bernoulli_values_for_the_quiz_flips():
    flips = [1, 0, 1, 1]
    assert L.bernoulli_likelihood(0.75, flips) == pytest.approx(0.75**3 * 0.25)
    assert L.bernoulli_log_likelihood(0.75, flips) == pytest.approx(3 * math.log(0.75) + math.log(0.25))
    assert L.bernoulli_mle(flips) == 0.75
    assert L.bernoulli_mle("H,T,H,H") == 0.75


def test_log_likelihood_is_finite_where_the_product_underflows():
    flips = [1, 0] * 1000
    assert L.bernoulli_likelihood(0.5, flips) == 0.0
    assert L.bernoulli_log_likelihood(0.5, flips) == pytest.approx(2000 * math.log(0.5))


def test_log_likelihood_edges_follow_0_log_0_convention():
    assert L.bernoulli_log_likelihood(1.0, [1, 1, 1]) == 0.0
    assert L.bernoulli_log_likelihood(0.0, [0, 0]) == 0.0
    assert L.bernoulli_log_likelihood(0.0, [1, 0]) == -math.inf


def test_mle_maximises_log_likelihood_on_a_grid():
    flips = [1, 1, 0, 1, 0, 0, 0, 1, 1, 1]
    grid = [i / 100 for i in range(1, 100)]
    best = max(grid, key=lambda t: L.bernoulli_log_likelihood(t, flips))
    assert best == pytest.approx(L.bernoulli_mle(flips))


def test_gradient_ascent_reaches_the_closed_form():
    theta, history = L.fit_bernoulli_by_gradient([1, 0, 1, 1], steps=200, lr=2.0)
    assert abs(theta - 0.75) < 1e-3 and len(history) == 200
    assert abs(history[0] - 0.5) < abs(history[-1] - 0.5)


def test_simulated_mle_is_unbiased_with_binomial_spread():
    g = torch.Generator().manual_seed(0)
    theta, reps, ns = 0.3, 4000, [20, 500]
    est = L.simulate_mle(theta, ns, reps, g)
    assert est.shape == (2, reps)
    for row, n in zip(est, ns, strict=True):
        sd = math.sqrt(theta * (1 - theta) / n)
        assert abs(row.mean().item() - theta) < 5 * sd / math.sqrt(reps)
        # the sample std of `reps` draws has relative standard error ≈ 1/sqrt(2 reps)
        assert abs(row.std().item() / sd - 1) < 5 / math.sqrt(2 * reps)


def test_simulate_mle_is_reproducible_with_the_same_generator():
    a = L.simulate_mle(0.5, [10, 5000], 3, torch.Generator().manual_seed(1))
    b = L.simulate_mle(0.5, [10, 5000], 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_gaussian_mle_divides_by_n():
    mu, var = L.gaussian_mle([1.0, 2.0, 3.0, 4.0])
    assert (mu, var) == (2.5, 1.25)
    x = [0.3, -1.2, 2.2, 0.7]
    m, v = L.gaussian_mle(x)
    assert L.gaussian_log_likelihood(x, m, v) > L.gaussian_log_likelihood(x, m, v * 1.01)
    assert L.gaussian_log_likelihood(x, m, v) > L.gaussian_log_likelihood(x, m + 0.01, v)


def test_markov_mle_counts_transitions():
    flips = [0, 0, 1, 1, 1, 0, 1]
    # after T: T→T, T→H, T→H : P(H|T) = 2/3 ; after H: H→H, H→H, H→T : P(H|H) = 2/3
    assert L.markov_mle(flips) == pytest.approx((2 / 3, 2 / 3))
    ll = L.markov_log_likelihood(flips, 2 / 3, 2 / 3)
    assert ll == pytest.approx(4 * math.log(2 / 3) + 2 * math.log(1 / 3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: L.bernoulli_mle([]), "empty"),
        (lambda: L.bernoulli_mle([0, 1, 2]), "only 0"),
        (lambda: L.bernoulli_mle([[0, 1], [1, 1]]), "1-dimensional"),
        (lambda: L.bernoulli_mle("HTX"), "only H and T"),
        (lambda: L.bernoulli_mle([0.0, float("nan")]), "NaN"),
        (lambda: L.bernoulli_mle(["a", "b"]), "numbers"),
        (lambda: L.bernoulli_log_likelihood(1.5, [1]), r"\[0, 1\]"),
        (lambda: L.bernoulli_log_likelihood(-0.1, [1]), r"\[0, 1\]"),
        (lambda: L.bernoulli_log_likelihood("x", [1]), "number"),
        (lambda: L.bernoulli_likelihood(torch.tensor([0.1, 0.2]), [1]), "single number"),
        (lambda: L.fit_bernoulli_by_gradient([1, 0], steps=0), "steps"),
        (lambda: L.fit_bernoulli_by_gradient([1, 0], lr=-1.0), "lr"),
        (lambda: L.simulate_mle(0.5, [], 3, torch.Generator()), "sample sizes"),
        (lambda: L.simulate_mle(0.5, [10], 0, torch.Generator()), "reps"),
        (lambda: L.gaussian_mle([]), "empty"),
        (lambda: L.gaussian_log_likelihood([1.0], 0.0, 0.0), "var must be a finite number > 0, got 0.0"),
        (lambda: L.markov_mle([1]), "at least 2"),
        (lambda: L.markov_mle([1, 1, 1]), "no transition"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
