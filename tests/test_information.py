"""information: entropy, cross-entropy and KL against torch.distributions, and bad input."""

import math

import pytest
import torch

from course_utils import information as I
from course_utils import losses


def test_against_torch_distributions():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        p = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
        q = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
        P, Q = torch.distributions.Categorical(probs=p), torch.distributions.Categorical(probs=q)
        assert I.entropy(p) == pytest.approx(P.entropy().item(), abs=1e-12)
        assert I.kl_divergence(p, q) == pytest.approx(torch.distributions.kl_divergence(P, Q).item(), abs=1e-12)
        assert I.cross_entropy_between(p, q) == pytest.approx(I.entropy(p) + I.kl_divergence(p, q), abs=1e-12)


def test_zero_probabilities():
    assert I.entropy([1.0, 0.0]) == 0.0
    assert I.kl_divergence([0.0, 1.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert I.kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert I.kl_divergence([0.3, 0.7], [0.3, 0.7]) == 0.0


@pytest.mark.parametrize(
    ("p", "q", "message"),
    [
        ([0.5, 0.6], [0.5, 0.5], "sum to 1"),
        ([-0.5, 1.5], [0.5, 0.5], "negative"),
        ([], [], "empty"),
        ([0.5, 0.5], [1.0], r"p and q must have the same shape, got \(2,\) and \(1,\)"),
        ([[0.5, 0.5]], [[0.5, 0.5]], "1-dimensional"),
    ],
)
def test_bad_distributions(p, q, message):
    with pytest.raises(ValueError, match=message):
        I.kl_divergence(p, q)


def test_no_name_is_shared_with_the_logit_losses():
    # information takes probability vectors and returns floats; losses takes logits and returns tensors
    def public(module):
        return {n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                and getattr(v, "__module__", None) == module.__name__}

    assert public(I) == {"entropy", "cross_entropy_between", "kl_divergence"}
    assert public(I) & public(losses) == set()
