"""Stable cross-entropy: agrees with torch.nn.functional, stays finite where log(softmax) does not."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import losses

TOL = dict(rtol=1e-6, atol=1e-6)


def _batch(b=4, t=7, v=11, seed=0, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (scale * torch.randn(b, t, v, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, v, (b, t), generator=g)
    return z, y


def _soft_cross_entropy(z, q):
    """-Σ_j q_j log softmax(z)_j per row: the cross-entropy to a target distribution q, by torch."""
    return -(q * F.log_softmax(z, dim=-1)).sum(-1)


# ---------------------------------------------------------------- agreement with PyTorch

def test_logsumexp_and_log_softmax_match_torch():
    z, _ = _batch()
    torch.testing.assert_close(losses.logsumexp(z), torch.logsumexp(z, dim=-1), **TOL)
    torch.testing.assert_close(losses.log_softmax(z), F.log_softmax(z, dim=-1), **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.7])
def test_cross_entropy_matches_functional(reduction, eps):
    z, y = _batch(seed=1)
    ours = losses.cross_entropy(z, y, label_smoothing=eps, reduction=reduction)
    ref = F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), label_smoothing=eps,
                          reduction=reduction)
    torch.testing.assert_close(ours.reshape(ref.shape), ref, **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_ignore_index_matches_functional_and_mask_is_the_same(reduction, eps):
    z, y = _batch(seed=2)
    pad = torch.zeros_like(y, dtype=torch.bool)
    pad[0, 4:] = True
    pad[2, 1:] = True
    y_ignored = torch.where(pad, -100, y)
    ref = F.cross_entropy(z.reshape(-1, z.shape[-1]), y_ignored.reshape(-1), label_smoothing=eps,
                          reduction=reduction, ignore_index=-100).reshape(() if reduction != "none" else y.shape)
    by_index = losses.cross_entropy(z, y_ignored, label_smoothing=eps, reduction=reduction)
    by_mask = losses.cross_entropy(z, y, label_smoothing=eps, reduction=reduction, mask=~pad)
    by_int_mask = losses.cross_entropy(z, y, label_smoothing=eps, reduction=reduction, mask=(~pad).long())
    torch.testing.assert_close(by_index, ref, **TOL)
    torch.testing.assert_close(by_mask, ref, **TOL)
    torch.testing.assert_close(by_int_mask, ref, **TOL)


def test_custom_ignore_index():
    z, y = _batch(b=2, t=3, v=5, seed=3)
    y[1, 2] = 7
    ref = F.cross_entropy(z.reshape(-1, 5), y.reshape(-1), ignore_index=7)
    torch.testing.assert_close(losses.cross_entropy(z, y, ignore_index=7), ref, **TOL)


def test_mean_is_sum_over_real_tokens_divided_by_their_count():
    z, y = _batch(seed=4)
    mask = torch.rand(y.shape, generator=torch.Generator().manual_seed(5)) < 0.6
    total = losses.cross_entropy(z, y, reduction="sum", mask=mask)
    mean = losses.cross_entropy(z, y, reduction="mean", mask=mask)
    assert math.isclose(float(mean), float(total) / int(mask.sum()), rel_tol=1e-12)
    # padding changes nothing: the same tokens without the padded positions
    kept = F.cross_entropy(z[mask], y[mask], reduction="mean")
    torch.testing.assert_close(mean, kept, **TOL)


def test_sequence_nll_is_minus_sum_of_target_log_probs():
    z, y = _batch(seed=6)
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[1, 5:] = False
    per_seq = losses.sequence_nll(z, y, mask)
    logp = F.log_softmax(z, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(per_seq, -(logp * mask).sum(dim=1), **TOL)
    assert per_seq.shape == (4,)


def test_float32_matches_functional():
    z, y = _batch(seed=7, dtype=torch.float32)
    for eps in (0.0, 0.1):
        torch.testing.assert_close(losses.cross_entropy(z, y, label_smoothing=eps),
                                   F.cross_entropy(z.reshape(-1, 11), y.reshape(-1), label_smoothing=eps),
                                   rtol=1e-6, atol=1e-6)


def test_one_dimensional_logits_and_scalar_target():
    z = torch.tensor([2.0, 1.0, 0.1], dtype=torch.float64)
    loss = losses.cross_entropy(z, torch.tensor(0))
    assert math.isclose(float(loss), -math.log(math.exp(2) / (math.exp(2) + math.e + math.exp(0.1))), rel_tol=1e-12)


def test_one_hot_cross_entropy_is_minus_log_target_probability():
    z, y = _batch(seed=8)
    q = losses.smoothed_targets(y, z.shape[-1], 0.0)
    p = torch.softmax(z, dim=-1)
    torch.testing.assert_close(_soft_cross_entropy(z, q), -torch.log(p.gather(-1, y.unsqueeze(-1)).squeeze(-1)),
                               **TOL)
    torch.testing.assert_close(losses.cross_entropy(z, y, reduction="none"), _soft_cross_entropy(z, q), **TOL)


def test_label_smoothing_equals_cross_entropy_to_the_smoothed_distribution():
    z, y = _batch(seed=9)
    q = losses.smoothed_targets(y, z.shape[-1], 0.25)
    assert torch.allclose(q.sum(-1), torch.ones((), dtype=torch.float64), atol=1e-12) and q.min() == 0.25 / 11
    torch.testing.assert_close(losses.cross_entropy(z, y, label_smoothing=0.25, reduction="none"),
                               _soft_cross_entropy(z, q), **TOL)
    torch.testing.assert_close(_soft_cross_entropy(z, q),
                               F.cross_entropy(z.reshape(-1, 11), q.reshape(-1, 11), reduction="none").reshape(4, 7),
                               **TOL)


def test_label_smoothing_gap_is_epsilon_times_uniform_minus_nll():
    z, y = _batch(seed=10)
    eps = 0.3
    nll = losses.cross_entropy(z, y, reduction="none")
    smooth = losses.cross_entropy(z, y, label_smoothing=eps, reduction="none")
    uniform = -F.log_softmax(z, dim=-1).mean(dim=-1)
    torch.testing.assert_close(smooth - nll, eps * (uniform - nll), **TOL)


def test_gradient_is_softmax_minus_target():
    z, y = _batch(seed=13)
    for eps in (0.0, 0.1):
        zz = z.clone().requires_grad_(True)
        losses.cross_entropy(zz, y, label_smoothing=eps, reduction="sum").backward()
        torch.testing.assert_close(losses.cross_entropy_grad(z, y, eps), zz.grad, **TOL)
        ref = z.clone().requires_grad_(True)
        F.cross_entropy(ref.reshape(-1, 11), y.reshape(-1), label_smoothing=eps, reduction="sum").backward()
        torch.testing.assert_close(zz.grad, ref.grad, **TOL)


def test_minus_inf_logit_for_the_target_gives_infinite_loss():
    z = torch.tensor([[0.0, float("-inf"), 1.0]], dtype=torch.float64)
    assert float(losses.cross_entropy(z, torch.tensor([1]))) == math.inf
    assert math.isclose(float(losses.cross_entropy(z, torch.tensor([2]))), math.log(1 + math.e) - 1, rel_tol=1e-12)


# ---------------------------------------------------------------- stability

@pytest.mark.parametrize("dtype,scale", [(torch.float64, 1e4), (torch.float32, 1e3),
                                         (torch.float16, 30.0), (torch.bfloat16, 300.0)])
def test_stable_where_log_softmax_and_naive_form_fail(dtype, scale):
    # a confident model: the target token is far below the best one
    z = torch.tensor([[1.0, 0.0, -1.0], [0.5, -1.0, 1.0]], dtype=torch.float64) * scale
    y = torch.tensor([2, 1])
    zt = z.to(dtype)
    stable = losses.cross_entropy(zt, y, reduction="none")
    log_of_softmax = -torch.log(torch.softmax(zt, dim=-1)).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    naive = losses.naive_cross_entropy(zt, y)
    assert torch.isfinite(stable).all()
    assert not torch.isfinite(log_of_softmax).all()  # the probability underflowed to 0
    assert not torch.isfinite(naive).all()  # exp overflowed or the probability underflowed
    exact = -F.log_softmax(z, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    rel = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-2, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(stable.double(), exact, rtol=rel, atol=0.0)
    assert torch.isfinite(losses.logsumexp(zt)).all()
    assert torch.isfinite(losses.cross_entropy(zt, y, label_smoothing=0.1)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_naive_exp_overflows_in_half_precision_but_stable_form_does_not(dtype):
    big = {torch.float16: 12.0, torch.bfloat16: 90.0}[dtype]  # exp(big) exceeds the dtype's max
    z = torch.tensor([[big, 0.0]], dtype=dtype)
    assert torch.isnan(losses.naive_cross_entropy(z, torch.tensor([0]))).all()
    assert torch.isfinite(losses.cross_entropy(z, torch.tensor([0]))).all()
    assert float(losses.cross_entropy(z, torch.tensor([1]))) == pytest.approx(big, rel=1e-2)


def test_stable_form_is_exact_for_logits_shifted_by_a_constant():
    z, y = _batch(seed=14)
    torch.testing.assert_close(losses.cross_entropy(z + 1e6, y), losses.cross_entropy(z, y), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- hostile inputs

@pytest.mark.parametrize("make_args,match", [
    (lambda: ([[1.0, 2.0]], torch.tensor([0])), "torch.Tensor"),
    (lambda: (torch.tensor([[1, 2]]), torch.tensor([0])), "floating point"),
    (lambda: (torch.zeros(2, 3), torch.tensor([0.0, 1.0])), "integer"),
    (lambda: (torch.zeros(2, 3), torch.tensor([True, False])), "integer"),
    (lambda: (torch.zeros(2, 3), torch.tensor([0, 1, 2])), "shape"),
    (lambda: (torch.zeros(2, 3), torch.tensor([0, 3])), "outside 0..2"),
    (lambda: (torch.zeros(2, 3), torch.tensor([-1, 0])), "outside 0..2"),
    (lambda: (torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([0])), "NaN"),
    (lambda: (torch.tensor([[0.0, float("inf"), 1.0]]), torch.tensor([0])), r"\+inf"),
    (lambda: (torch.full((1, 3), float("-inf")), torch.tensor([0])), "-inf everywhere"),
    (lambda: (torch.zeros(2, 0), torch.zeros(2, dtype=torch.long)), "V >= 1"),
])
def test_bad_inputs_raise_value_errors_naming_the_problem(make_args, match):
    z, y = make_args()
    with pytest.raises(ValueError, match=match):
        losses.cross_entropy(z, y)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, float("nan"), "a lot", None])
def test_label_smoothing_outside_zero_one_is_rejected(eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), label_smoothing=eps)


def test_bad_reduction_mask_and_empty_mean():
    z, y = torch.zeros(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy(z, y, reduction="average")
    with pytest.raises(ValueError, match="mask must have"):
        losses.cross_entropy(z, y, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="only 0"):
        losses.cross_entropy(z, y, mask=torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="no position counts"):
        losses.cross_entropy(z, torch.tensor([-100, -100]))
    with pytest.raises(ValueError, match="no position counts"):
        losses.cross_entropy(z, y, mask=torch.tensor([False, False]))
    assert float(losses.cross_entropy(z, y, mask=torch.tensor([False, False]), reduction="sum")) == 0.0


def test_other_functions_validate_their_inputs():
    z = torch.zeros(2, 3)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
            losses.smoothed_targets(torch.tensor([0]), bad)
    with pytest.raises(ValueError, match="outside"):
        losses.smoothed_targets(torch.tensor([4]), 3)
    with pytest.raises(ValueError, match="ignore_index"):
        losses.smoothed_targets(torch.tensor([-100]), 3)
    with pytest.raises(ValueError, match="batch, time, V"):
        losses.sequence_nll(z, torch.tensor([0, 1]))
