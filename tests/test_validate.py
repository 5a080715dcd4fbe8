"""Shared input guards: what each accepts (and returns), what each rejects, and that the error names the argument."""

import math

import numpy as np
import pytest
import torch

from course_utils import validate as v


@pytest.mark.parametrize("value, expected", [(1, 1), (7, 7), (np.int64(3), 3)])
def test_positive_int_accepts_integers(value, expected):
    out = v.positive_int(value, "n")
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", [0, -2, True, False, 2.0, "3", None, torch.tensor(3), np.bool_(True), math.nan])
def test_positive_int_rejects(value):
    with pytest.raises(ValueError, match=r"^steps must be a positive integer, got "):
        v.positive_int(value, "steps")


def test_int_at_least_states_the_bound():
    assert v.int_at_least(0, "seed", 0) == 0
    assert v.int_at_least(2, "vocab_size", 2) == 2
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer, got -1"):
        v.int_at_least(-1, "seed", 0)
    with pytest.raises(ValueError, match=r"vocab_size must be an integer >= 2, got 1"):
        v.int_at_least(1, "vocab_size", 2)


@pytest.mark.parametrize("value, expected", [(0, 0.0), (-2.5, -2.5), (np.float32(0.5), 0.5),
                                             (torch.tensor(1.5, dtype=torch.float64), 1.5), (torch.tensor([3]), 3.0)])
def test_finite_float_accepts_real_numbers(value, expected):
    out = v.finite_float(value, "x")
    assert out == expected and type(out) is float


@pytest.mark.parametrize("value, message", [
    (math.nan, "x must be a finite number"), (math.inf, "x must be a finite number"),
    (-math.inf, "x must be a finite number"), (True, "x must be a number"), ("1.0", "x must be a number"),
    (None, "x must be a number"), (1 + 2j, "x must be a number"),
    (torch.tensor([1.0, 2.0]), "x must be a single number"),
    (torch.tensor(True), "x must be a real number"),
])
def test_finite_float_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        v.finite_float(value, "x")


def test_non_negative_and_positive_float():
    assert v.non_negative_float(0, "temperature") == 0.0
    assert v.positive_float(1e-9, "lr") == 1e-9
    for bad in (-1e-12, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            v.non_negative_float(bad, "temperature")
    for bad in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            v.positive_float(bad, "lr")
    with pytest.raises(ValueError, match="lr must be a number"):
        v.positive_float("0.1", "lr")


def test_number_in_respects_open_and_closed_ends():
    assert v.number_in(0.0, "eps", 0, 1, include_high=False) == 0.0
    assert v.number_in(1, "rate", 0, 1, include_low=False) == 1.0
    with pytest.raises(ValueError, match=r"eps must be a number in \[0, 1\), got 1"):
        v.number_in(1.0, "eps", 0, 1, include_high=False)
    with pytest.raises(ValueError, match=r"rate must be a number in \(0, 1\], got 0"):
        v.number_in(0, "rate", 0, 1, include_low=False)
    with pytest.raises(ValueError, match=r"rate must be a number in \(0, 1\]"):
        v.number_in(math.nan, "rate", 0, 1, include_low=False)


@pytest.mark.parametrize("value", [0, 1, 0.25, torch.tensor(0.5), np.float64(1.0)])
def test_probability_accepts(value):
    assert v.probability(value, "p") == float(value)


@pytest.mark.parametrize("value, message", [
    (-0.01, r"p must be a probability in \[0, 1\]"), (1.5, r"p must be a probability in \[0, 1\]"),
    (math.nan, r"p must be a probability in \[0, 1\]"), (True, "p must be a number"), ("0.5", "p must be a number"),
    (torch.tensor([0.1, 0.2]), "p must be a single number"),
])
def test_probability_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        v.probability(value, "p")


def test_probability_vector():
    out = v.probability_vector([0.25, 0.75], "p")
    assert out.dtype == torch.float64 and torch.equal(out, torch.tensor([0.25, 0.75], dtype=torch.float64))
    for bad, message in [([0.5, 0.6], "p must sum to 1"), ([1.5, -0.5], "p has negative entries"),
                         ([math.nan, 1.0], "p contains NaN"), ([], "p is empty"), ("ab", "p must be numbers"),
                         ([[0.5, 0.5]], "p must be 1-dimensional"), ([0.5, "x"], "p must be a sequence of numbers")]:
        with pytest.raises(ValueError, match=message):
            v.probability_vector(bad, "p")


def test_one_of():
    assert v.one_of("sum", ("mean", "sum"), "reduction") == "sum"
    for bad in ("max", "MEAN", None, 1, torch.tensor(1)):
        with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum', got "):
            v.one_of(bad, ("mean", "sum"), "reduction")
    with pytest.raises(ValueError, match="flag must be one of 0, 1, got True"):
        v.one_of(True, (0, 1), "flag")  # a bool is not the integer it equals


def test_same_shape():
    v.same_shape(torch.zeros(2, 3), torch.ones(2, 3), ("a", "b"))
    with pytest.raises(ValueError, match=r"p and q must have the same shape, got \(3,\) and \(4,\)"):
        v.same_shape(torch.zeros(3), torch.zeros(4), ("p", "q"))


def test_torch_generator():
    g = torch.Generator()
    assert v.torch_generator(g) is g
    for bad in (0, None, np.random.default_rng(0)):
        with pytest.raises(ValueError, match="generator must be a torch.Generator"):
            v.torch_generator(bad)


def test_index_and_token_id():
    assert v.index(np.int64(2), 3, "target") == 2 and v.token_id(0, 5, "mask_id") == 0
    for bad in (3, -1, True, 1.0, "1", None):
        with pytest.raises(ValueError, match=r"target must be an index in 0\.\.2, got "):
            v.index(bad, 3, "target")
        with pytest.raises(ValueError, match=r"mask_id must be a token id in 0\.\.2, got "):
            v.token_id(bad, 3, "mask_id")


def test_token_ids():
    out = v.token_ids(torch.tensor([[0, 4], [2, 1]], dtype=torch.int32), 5)
    assert out.dtype == torch.int64 and out.tolist() == [[0, 4], [2, 1]]
    assert v.token_ids(torch.tensor([3, -100]), 4, "targets", ignore_index=-100).tolist() == [3, -100]
    assert v.token_ids(torch.zeros(0, dtype=torch.long), 4).numel() == 0
    cases = [([1, 2], "tokens must be a tensor of integer token ids, got list"),
             (torch.tensor([1.0, 2.0]), "tokens must hold integer token ids, got dtype torch.float32"),
             (torch.tensor([True]), "tokens must hold integer token ids, got dtype torch.bool"),
             (torch.tensor([0, 5]), r"tokens has id 5 outside 0\.\.4$"),
             (torch.tensor([-1, 0]), r"tokens has id -1 outside 0\.\.4$")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            v.token_ids(bad, 5)
    with pytest.raises(ValueError, match=r"targets has id -100 outside 0\.\.4 \(and is not ignore_index=-1\)"):
        v.token_ids(torch.tensor([-100]), 5, "targets", ignore_index=-1)


def test_as_tensor_and_flips():
    assert v.as_tensor(np.array([1, 2]), "x").dtype == torch.float64
    assert v.as_tensor([[1.0]], "x", ndim=None).shape == (1, 1)
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        v.as_tensor([1.0, math.inf], "x")
    assert v.as_flips("H, T, h").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="only H and T"):
        v.as_flips("HTX")
    with pytest.raises(ValueError, match="only 0 \\(tails\\) and 1 \\(heads\\)"):
        v.as_flips([0, 2])


def test_probability_rows():
    table = v.probability_rows(torch.tensor([[0.25, 0.75], [1.0, 0.0]], dtype=torch.float32), "table")
    assert table.dtype == torch.float64 and table.shape == (2, 2)
    assert v.probability_rows([0.5, 0.5], "p").tolist() == [0.5, 0.5]
    for bad, message in [([[0.5, 0.5], [0.5, 0.6]], r"table must sum to 1 along its last axis, but sums to 1\.1"),
                         ([[0.5, 0.5], [1.5, -0.5]], "table has negative entries"),
                         ([[0.5, math.nan]], "table contains NaN"), (0.5, "table must have shape"),
                         (np.zeros((2, 0)), "table is empty")]:
        with pytest.raises(ValueError, match=message):
            v.probability_rows(bad, "table")
