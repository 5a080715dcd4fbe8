"""Masking procedure (rates within ±5σ, special tokens, determinism), the MLM objective, PLL."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import mlm

V, MASK, CLS, SEP = 30, 0, 1, 2


def _batch(shape=(400, 250), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, V, shape, generator=g)


def _within_5_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------- masking procedure

def test_selection_and_80_10_10_split_match_their_rates():
    x = _batch()
    x[:, 0], x[:, -1] = CLS, SEP
    g = torch.Generator().manual_seed(1)
    inputs, targets = mlm.mask_tokens(x, MASK, V, g, rate=0.15, special_ids=(CLS, SEP))
    g = torch.Generator().manual_seed(1)
    plan = mlm.masking_plan(x.shape, g, 0.15, eligible=(x != CLS) & (x != SEP))
    eligible = x.numel() - 2 * x.shape[0]
    selected = targets != mlm.IGNORE_INDEX
    n_sel = int(selected.sum())
    assert torch.equal(selected, plan != mlm.UNTOUCHED)  # the same generator state gives the same plan
    assert _within_5_sigma(n_sel, eligible, 0.15)
    for code, share in ((mlm.MASKED, 0.8), (mlm.RANDOM, 0.1), (mlm.KEPT, 0.1)):
        assert _within_5_sigma(int((plan == code).sum()), n_sel, share), code
    # what the codes mean in the corrupted input
    assert (inputs[plan == mlm.MASKED] == MASK).all()
    assert torch.equal(inputs[plan == mlm.KEPT], x[plan == mlm.KEPT])
    assert torch.equal(inputs[plan == mlm.UNTOUCHED], x[plan == mlm.UNTOUCHED])
    assert torch.equal(targets[selected], x[selected])
    # a random replacement equals the original only by chance (1 in 27 non-special ids)
    n_random = int((plan == mlm.RANDOM).sum())
    same = int((inputs[plan == mlm.RANDOM] == x[plan == mlm.RANDOM]).sum())
    assert _within_5_sigma(same, n_random, 1 / (V - 3))


def test_random_replacements_are_uniform_over_non_special_ids():
    x = _batch((200, 500), seed=2)
    g = torch.Generator().manual_seed(3)
    inputs, _ = mlm.mask_tokens(x, MASK, V, g, rate=1.0, special_ids=(CLS, SEP), split=(0.0, 1.0, 0.0))
    counts = torch.bincount(inputs.flatten(), minlength=V)
    assert counts[[MASK, CLS, SEP]].sum() == 0
    n = inputs.numel()
    assert all(_within_5_sigma(int(c), n, 1 / (V - 3)) for c in counts[3:])


def test_special_and_mask_tokens_are_never_selected():
    x = torch.tensor([[CLS, MASK, SEP, CLS], [SEP, SEP, MASK, CLS]])
    for seed in range(20):
        inputs, targets = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(seed), rate=1.0,
                                          special_ids=[CLS, SEP])
        assert torch.equal(inputs, x) and (targets == mlm.IGNORE_INDEX).all()


def test_rate_one_selects_every_ordinary_position():
    x = torch.tensor([CLS, 5, 6, 7, 8, SEP])
    _, targets = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(0), rate=1.0, special_ids=[CLS, SEP])
    assert targets.tolist() == [-100, 5, 6, 7, 8, -100]


def test_same_seed_same_corruption_and_generator_is_the_only_source():
    x = _batch((4, 50))
    torch.manual_seed(123)
    a = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(7))
    torch.manual_seed(456)  # the global seed must not matter
    b = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(7))
    c = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(8))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.targets, c.targets)


def test_decisions_from_uniforms_thresholds():
    u_select = torch.tensor([0.05, 0.05, 0.05, 0.05, 0.20, 0.05])
    u_kind = torch.tensor([0.10, 0.85, 0.95, 0.799, 0.10, 0.10])
    eligible = torch.tensor([True, True, True, True, True, False])
    codes = mlm.decisions_from_uniforms(u_select, u_kind, 0.15, eligible)
    assert codes.tolist() == [mlm.MASKED, mlm.RANDOM, mlm.KEPT, mlm.MASKED, mlm.UNTOUCHED, mlm.UNTOUCHED]


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan"), "0.15", True, None])
def test_bad_rates_are_rejected(rate):
    with pytest.raises(ValueError, match="mask rate"):
        mlm.mask_tokens(_batch((2, 5)), MASK, V, torch.Generator(), rate=rate)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"split": (0.8, 0.1)}, "three"),
    ({"split": (0.8, 0.3, -0.1)}, "non-negative"),
    ({"split": (0.5, 0.1, 0.1)}, "sum to 1"),
    ({"mask_id": V}, "mask_id"),
    ({"special_ids": (99,)}, "special id"),
    ({"ignore_index": 3}, "ignore_index"),
    ({"vocab_size": 1}, "vocab_size"),
    ({"generator": None}, "torch.Generator"),
])
def test_bad_arguments_name_the_problem(kwargs, match):
    args = {"tokens": _batch((2, 5)), "mask_id": MASK, "vocab_size": V, "generator": torch.Generator()}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mlm.mask_tokens(**args)


@pytest.mark.parametrize(("tokens", "match"), [
    (torch.tensor([1.0, 2.0]), "integer"),
    (torch.tensor([3, V]), "outside"),
    (torch.tensor([-1, 3]), "outside"),
    (torch.zeros(0, dtype=torch.long), "non-empty"),
    ([3, 4, 5], "tensor"),
])
def test_bad_tokens_are_rejected(tokens, match):
    with pytest.raises(ValueError, match=match):
        mlm.mask_tokens(tokens, MASK, V, torch.Generator())


def test_every_id_special_is_an_error():
    with pytest.raises(ValueError, match="every id is special"):
        mlm.mask_tokens(torch.tensor([0, 1]), 0, 2, torch.Generator(), special_ids=[1])


# ---------------------------------------------------------------- objective

def _logits_targets(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, V, generator=g, dtype=torch.float64)
    targets = torch.randint(0, V, (3, 7), generator=g)
    ignore = torch.rand(3, 7, generator=g) < 0.6
    ignore[0, 0] = False
    return logits, targets.masked_fill(ignore, mlm.IGNORE_INDEX)


def test_objective_by_hand_equals_cross_entropy_over_masked_positions():
    logits, targets = _logits_targets()
    by_hand = mlm.masked_log_likelihood(logits, targets)
    n = int((targets != mlm.IGNORE_INDEX).sum())
    assert torch.allclose(-by_hand, mlm.mlm_loss(logits, targets, reduction="sum"), rtol=1e-12, atol=0)
    assert torch.allclose(-by_hand / n, mlm.mlm_loss(logits, targets), rtol=1e-12, atol=0)
    # against an explicit probability computation at one masked position
    p = torch.softmax(logits[0, 0], 0)[targets[0, 0]]
    lone = torch.full_like(targets, mlm.IGNORE_INDEX)
    lone[0, 0] = targets[0, 0]
    assert math.isclose(float(mlm.masked_log_likelihood(logits, lone)), math.log(float(p)), rel_tol=1e-12)


def test_loss_ignores_unmasked_positions():
    logits, targets = _logits_targets(1)
    changed = logits.clone()
    unmasked = targets == mlm.IGNORE_INDEX
    changed[unmasked] = torch.randn(int(unmasked.sum()), V, dtype=torch.float64) * 50
    assert torch.equal(mlm.mlm_loss(logits, targets), mlm.mlm_loss(changed, targets))
    assert torch.equal(mlm.masked_log_likelihood(logits, targets), mlm.masked_log_likelihood(changed, targets))
    # and no gradient reaches them
    leaf = logits.clone().requires_grad_(True)
    mlm.mlm_loss(leaf, targets).backward()
    assert (leaf.grad[unmasked] == 0).all() and (leaf.grad[~unmasked] != 0).any()


def test_worked_example_the_quick_mask_fox():
    words = ["brown", "red", "lazy"]
    logits = torch.log(torch.tensor([[[0.7, 0.2, 0.1]]], dtype=torch.float64))
    targets = torch.tensor([[words.index("brown")]])
    contribution = float(mlm.masked_log_likelihood(logits, targets))
    assert round(contribution, 3) == -0.357 and math.isclose(contribution, math.log(0.7))
    assert round(float(mlm.mlm_loss(logits, targets)), 3) == 0.357


def test_objective_is_stable_for_large_logits_and_zero_when_nothing_is_masked():
    logits = torch.tensor([[1000.0, 0.0, -1000.0]])
    assert math.isclose(float(mlm.masked_log_likelihood(logits, torch.tensor([1]))), -1000.0)
    nothing = torch.full((1,), mlm.IGNORE_INDEX)
    assert float(mlm.masked_log_likelihood(logits, nothing)) == 0.0
    assert float(mlm.mlm_loss(logits, nothing, reduction="sum")) == 0.0
    with pytest.raises(ValueError, match="no position is masked"):
        mlm.mlm_loss(logits, nothing)


@pytest.mark.parametrize(("logits", "targets", "match"), [
    (torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), "shape"),
    (torch.zeros(2, 3), torch.tensor([0, 3]), r"targets has id 3 outside 0\.\.2 \(and is not ignore_index=-100\)"),
    (torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), "floating-point"),
    (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), "integer"),
])
def test_objective_rejects_bad_shapes_and_targets(logits, targets, match):
    with pytest.raises(ValueError, match=match):
        mlm.mlm_loss(logits, targets)
    with pytest.raises(ValueError, match=match):
        mlm.masked_log_likelihood(logits, targets)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        mlm.mlm_loss(torch.zeros(1, 2), torch.tensor([0]), reduction="none")


def test_unigram_baseline_is_the_cross_entropy_of_frequencies():
    train = torch.tensor([3, 3, 3, 4])
    log_q = mlm.unigram_log_probs(train, 5, smoothing=0.0)
    assert torch.allclose(log_q.exp(), torch.tensor([0, 0, 0, 0.75, 0.25], dtype=torch.float64))
    targets = torch.tensor([[3, -100, 4]])
    expected = -(math.log(0.75) + math.log(0.25)) / 2
    assert math.isclose(mlm.unigram_masked_loss(log_q, targets), expected, rel_tol=1e-12)
    smoothed = mlm.unigram_log_probs(train, 5, smoothing=1.0).exp()
    assert torch.allclose(smoothed, torch.tensor([1, 1, 1, 4, 2], dtype=torch.float64) / 9)
    with pytest.raises(ValueError, match="smoothing"):
        mlm.unigram_log_probs(train, 5, smoothing=-1)


# ---------------------------------------------------------------- pseudo-log-likelihood

class _TableModel(torch.nn.Module):
    """Logits at each position depend on the whole input (bidirectional) through a fixed mix."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.randn(V, 8, generator=g, dtype=torch.float64)
        self.out = torch.randn(8, V, generator=g, dtype=torch.float64)

    def forward(self, ids):
        h = self.emb[ids]
        h = h + h.mean(dim=1, keepdim=True) + torch.roll(h, 1, dims=1)
        return torch.tanh(h) @ self.out


def test_pseudo_log_likelihood_masks_one_position_at_a_time():
    model = _TableModel()
    x = torch.tensor([5, 9, 3, 7, 11])
    pll = mlm.pseudo_log_likelihood(model, x, MASK, batch_size=2)
    for i in range(len(x)):
        copy = x.clone()
        copy[i] = MASK
        expected = torch.log_softmax(model(copy[None])[0, i], -1)[x[i]]
        assert math.isclose(float(pll[i]), float(expected), rel_tol=1e-12)
    stacked = torch.stack([model(torch.where(torch.arange(5) == i, MASK, x)[None])[0] for i in range(5)])
    assert math.isclose(mlm.pll_from_masked_logits(stacked, x), float(pll.sum()), rel_tol=1e-12)
    some = mlm.pseudo_log_likelihood(model, x, MASK, positions=[1, 3])
    assert torch.allclose(some, pll[[1, 3]])


def test_causal_log_probs_use_the_next_token():
    model = _TableModel(1)
    x = torch.tensor([5, 9, 3, 7])
    got = mlm.causal_log_probs(model, x)
    logp = torch.log_softmax(model(x[None, :-1])[0], -1)
    assert torch.allclose(got, logp[torch.arange(3), x[1:]])


def test_pll_rejects_bad_input():
    model = _TableModel()
    with pytest.raises(ValueError, match="positions"):
        mlm.pseudo_log_likelihood(model, torch.tensor([4, 5]), MASK, positions=[2])
    with pytest.raises(ValueError, match="1-D"):
        mlm.pseudo_log_likelihood(model, torch.tensor([[4, 5]]), MASK)
    with pytest.raises(ValueError, match="shape"):
        mlm.pll_from_masked_logits(torch.zeros(2, 3, V), torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="logits_fn"):
        mlm.pseudo_log_likelihood(lambda ids: ids.float(), torch.tensor([4, 5]), MASK)
    with pytest.raises(ValueError, match="two"):
        mlm.causal_log_probs(model, torch.tensor([4]))


def test_f_cross_entropy_default_ignore_index_matches():
    assert mlm.IGNORE_INDEX == -100
    logits, targets = _logits_targets(2)
    assert torch.equal(F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)), mlm.mlm_loss(logits, targets))


# ---------------------------------------------------------------- the training loss

def _tiny(causal=False):
    from course_utils.models import Transformer, TransformerConfig

    return Transformer(TransformerConfig(vocab_size=V, context=12, n_layers=1, n_heads=2, d_model=16,
                                         causal=causal), seed=0)


def test_masked_lm_loss_scores_only_the_corrupted_positions():
    model = _tiny()
    x = _batch((4, 12), seed=5)
    loss_fn = mlm.MaskedLMLoss(MASK, V, torch.Generator().manual_seed(9), rate=0.3, special_ids=(CLS, SEP))
    loss = loss_fn(model, x, None)
    inputs, targets = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(9), rate=0.3, special_ids=(CLS, SEP))
    assert torch.allclose(loss, mlm.mlm_loss(model(inputs), targets), rtol=1e-6)
    loss.backward()
    assert model.tok_emb.weight.grad is not None
    # training masks advance the generator; evaluation masks are the same at every call
    assert not torch.equal(loss_fn.corrupt(x).targets, targets)
    model.eval()
    assert torch.equal(loss_fn(model, x), loss_fn(model, x))
    assert torch.equal(loss_fn.corrupt(x, training=False).targets, loss_fn.corrupt(x, training=False).targets)


def test_masked_lm_loss_refuses_a_causal_model_and_bad_settings():
    loss_fn = mlm.MaskedLMLoss(MASK, V, torch.Generator())
    with pytest.raises(ValueError, match="bidirectional"):
        loss_fn(_tiny(causal=True), _batch((2, 12)))
    with pytest.raises(ValueError, match="mask rate"):
        mlm.MaskedLMLoss(MASK, V, torch.Generator(), rate=2.0)
    with pytest.raises(ValueError, match="torch.Generator"):
        mlm.MaskedLMLoss(MASK, V, 0)
    with pytest.raises(ValueError, match="mask_id"):
        mlm.MaskedLMLoss(V, V, torch.Generator())


def test_ignore_index_is_the_one_of_losses():
    from course_utils import losses

    assert mlm.IGNORE_INDEX is losses.IGNORE_INDEX == -100


def test_plan_and_corruption_reject_mismatched_shapes():
    g = torch.Generator()
    with pytest.raises(ValueError, match="eligible"):
        mlm.masking_plan((2, 3), g, eligible=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="eligible"):
        mlm.masking_plan((2, 3), g, eligible=torch.ones(2, 3))
    with pytest.raises(ValueError, match="one shape"):
        mlm.apply_plan(torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long), 0,
                       torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="one shape"):
        mlm.decisions_from_uniforms(torch.zeros(3), torch.zeros(2), 0.5, torch.ones(3, dtype=torch.bool))


def test_apply_plan_leaves_its_input_untouched():
    x = torch.tensor([5, 6, 7, 8])
    plan = torch.tensor([mlm.MASKED, mlm.RANDOM, mlm.KEPT, mlm.UNTOUCHED])
    inputs, targets = mlm.apply_plan(x, plan, 0, torch.tensor([9, 9, 9, 9]))
    assert x.tolist() == [5, 6, 7, 8]
    assert inputs.tolist() == [0, 9, 7, 8] and targets.tolist() == [5, 6, 7, -100]


def test_rates_hold_over_many_successive_draws_from_one_generator():
    x = _batch((1, 64), seed=6)
    g = torch.Generator().manual_seed(11)
    per_draw = [int((mlm.mask_tokens(x, MASK, V, g).targets != mlm.IGNORE_INDEX).sum()) for _ in range(400)]
    n = 400 * 64
    assert _within_5_sigma(sum(per_draw), n, 0.15)
    # each draw is Binomial(64, 0.15): the spread of the counts matches its variance
    mean = sum(per_draw) / len(per_draw)
    var = sum((c - mean) ** 2 for c in per_draw) / (len(per_draw) - 1)
    assert abs(var / (64 * 0.15 * 0.85) - 1) < 0.35  # the sample variance of 400 draws is within ~5σ


# ---------------------------------------------------------------- the loss by position kind

def test_position_kinds_read_what_the_model_saw():
    tokens = torch.tensor([[5, 6, 7, 8, 9, 10]])
    plan = torch.tensor([[mlm.UNTOUCHED, mlm.MASKED, mlm.RANDOM, mlm.KEPT, mlm.RANDOM, mlm.UNTOUCHED]])
    random_ids = torch.tensor([[3, 3, 4, 3, 9, 3]])  # position 4 draws its own token by chance
    inputs, targets = mlm.apply_plan(tokens, plan, MASK, random_ids)
    kinds = mlm.position_kinds(inputs, targets, MASK)
    assert kinds.tolist() == [[mlm.UNTOUCHED, mlm.MASKED, mlm.RANDOM, mlm.KEPT, mlm.KEPT, mlm.UNTOUCHED]]
    # on a large batch the kinds agree with the plan wherever a random draw did not hit the original
    x = _batch((50, 40), seed=3)
    g = torch.Generator().manual_seed(4)
    plan = mlm.masking_plan(x.shape, g, 0.3)
    random_ids = torch.randint(3, V, x.shape, generator=g)
    inputs, targets = mlm.apply_plan(x, plan, MASK, random_ids)
    kinds = mlm.position_kinds(inputs, targets, MASK)
    hit = (plan == mlm.RANDOM) & (random_ids == x)
    assert torch.equal(kinds[~hit], plan[~hit]) and (kinds[hit] == mlm.KEPT).all()


def test_loss_by_kind_splits_the_mlm_loss_and_its_weighted_mean_is_the_whole():
    x = _batch((20, 30), seed=6)
    inputs, targets = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(7), rate=0.4)
    g = torch.Generator().manual_seed(8)
    logits = 3 * torch.randn(*x.shape, V, generator=g, dtype=torch.float64)
    parts = mlm.loss_by_kind(logits, inputs, targets, MASK)
    assert list(parts) == ["[MASK]", "random", "kept"]
    assert sum(p.count for p in parts.values()) == int((targets != mlm.IGNORE_INDEX).sum())
    weighted = sum(p.loss * p.count for p in parts.values()) / sum(p.count for p in parts.values())
    assert math.isclose(weighted, float(mlm.mlm_loss(logits, targets)), rel_tol=1e-12)
    kinds = mlm.position_kinds(inputs, targets, MASK)
    for code, name in mlm.KIND_NAMES.items():  # each part by hand, from the positions of its kind
        where = kinds == code
        by_hand = -torch.log_softmax(logits[where], -1)[torch.arange(int(where.sum())), x[where]].mean()
        assert math.isclose(parts[name].loss, float(by_hand), rel_tol=1e-12), name


def test_a_model_that_copies_its_input_scores_kept_positions_and_nothing_else():
    x = _batch((10, 40), seed=9)
    inputs, targets = mlm.mask_tokens(x, MASK, V, torch.Generator().manual_seed(10), rate=0.5)
    copy = 20.0 * F.one_hot(inputs, V).double()  # puts nearly all its probability on the visible token
    parts = mlm.loss_by_kind(copy, inputs, targets, MASK)
    assert parts["kept"].loss < 1e-6 and parts["random"].loss > 19 and parts["[MASK]"].loss > 19
    nothing_kept = mlm.loss_by_kind(copy, inputs, torch.where(inputs == MASK, targets, mlm.IGNORE_INDEX), MASK)
    assert nothing_kept["kept"].count == 0 and math.isnan(nothing_kept["kept"].loss)
    with pytest.raises(ValueError, match="one shape"):
        mlm.position_kinds(inputs[:, :3], targets, MASK)


def test_masked_lm_loss_with_every_selected_position_masked():
    x = _batch((8, 12), seed=11)
    loss_fn = mlm.MaskedLMLoss(MASK, V, torch.Generator().manual_seed(12), rate=0.5, split=(1.0, 0.0, 0.0))
    inputs, targets = loss_fn.corrupt(x)
    kinds = mlm.position_kinds(inputs, targets, MASK)
    assert (kinds[targets != mlm.IGNORE_INDEX] == mlm.MASKED).all() and (targets != mlm.IGNORE_INDEX).sum() > 10
    with pytest.raises(ValueError, match="sum to 1"):
        mlm.MaskedLMLoss(MASK, V, torch.Generator(), split=(0.5, 0.1, 0.1))


def test_left_only_log_probs_cut_the_input_after_the_masked_position():
    model = _TableModel(2)
    x = torch.tensor([5, 9, 3, 7, 11])
    got = mlm.left_only_log_probs(model, x, MASK, positions=[1, 4])
    for value, i in zip(got.tolist(), (1, 4), strict=True):
        prefix = torch.cat([x[:i], torch.tensor([MASK])])
        assert math.isclose(value, float(torch.log_softmax(model(prefix[None])[0, i], -1)[x[i]]), rel_tol=1e-12)
    # at the last position nothing lies to the right: the same number as the pseudo-log-likelihood's term
    assert math.isclose(float(got[1]), float(mlm.pseudo_log_likelihood(model, x, MASK, positions=[4])[0]),
                        rel_tol=1e-12)
    assert abs(float(got[0]) - float(mlm.pseudo_log_likelihood(model, x, MASK, positions=[1])[0])) > 1e-3
    with pytest.raises(ValueError, match="positions"):
        mlm.left_only_log_probs(model, x, MASK, positions=[5])
