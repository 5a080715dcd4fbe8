"""The Transformer: shapes, causal masking, one pass = per-position loop, tying, size and FLOPs counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_utils.models import Transformer, TransformerConfig, flops_per_token

SMALL = TransformerConfig(vocab_size=11, context=12, n_layers=2, n_heads=2, d_model=16)


def _ids(shape=(3, 12), seed=1, vocab=11):
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))


def test_logits_have_one_distribution_per_position():
    model = Transformer(SMALL)
    logits = model(_ids())
    assert logits.shape == (3, 12, 11)
    assert torch.isfinite(logits).all()


def test_causal_mask_changing_a_future_token_leaves_earlier_logits_unchanged():
    model = Transformer(SMALL).eval()
    x = _ids((2, 12))
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 11
    a, b = model(x), model(changed)
    assert torch.equal(a[:, :7], b[:, :7])  # positions before 7 never see token 7
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # from 7 on they do


def test_without_the_causal_mask_earlier_positions_see_the_future():
    model = Transformer(TransformerConfig(**{**SMALL.__dict__, "causal": False})).eval()
    x = _ids((2, 12))
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 11
    assert not torch.allclose(model(x)[:, :7], model(changed)[:, :7])


def test_one_parallel_pass_equals_the_per_position_loop():
    model = Transformer(SMALL).eval()
    x = _ids((2, 12))
    with torch.no_grad():
        parallel = model(x)
        looped = torch.stack([model(x[:, : t + 1])[:, -1] for t in range(12)], dim=1)
    torch.testing.assert_close(parallel, looped, rtol=1e-5, atol=1e-5)


def test_loss_is_the_mean_next_token_negative_log_likelihood():
    model = Transformer(SMALL).eval()
    x, y = _ids((2, 12), seed=2), _ids((2, 12), seed=3)
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), dim=-1)
        by_hand = -log_p.gather(-1, y[..., None]).mean()
        assert model.loss(x, y).item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_loss_leaves_ignored_targets_out_of_the_mean():
    """Targets equal to IGNORE_INDEX (a prompt, padding) are not predicted and not counted."""
    from course_utils.losses import IGNORE_INDEX

    model = Transformer(SMALL).eval()
    x, y = _ids((2, 12), seed=2), _ids((2, 12), seed=3)
    keep = torch.zeros(2, 12, dtype=torch.bool)
    keep[0, 5:], keep[1, 9:] = True, True  # 7 + 3 counted targets
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), dim=-1).gather(-1, y[..., None])[..., 0]
        by_hand = -log_p[keep].sum() / 10
        got = model.loss(x, y.masked_fill(~keep, IGNORE_INDEX))
    assert got.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert got.item() != pytest.approx(model.loss(x, y).item(), rel=1e-3)


def test_generate_returns_the_prompt_and_new_tokens_on_the_models_device():
    from course_utils.runtime import model_device

    model = Transformer(SMALL)
    out = model.generate(_ids((1, 3)), 4, torch.Generator().manual_seed(0), temperature=0)
    assert out.shape == (1, 7) and out.device == model_device(model)
    assert torch.equal(out[:, :3], _ids((1, 3)))


def test_weights_are_tied_and_counted_once():
    model = Transformer(SMALL)
    assert model.head.weight is model.tok_emb.weight
    v, t, d, f, n_layers = 11, 12, 16, 64, 2
    per_layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d)
    assert model.n_params() == v * d + t * d + n_layers * per_layer + 2 * d
    assert model.n_params(embeddings=False) == n_layers * per_layer + 2 * d


def test_flops_per_token_matches_a_hand_count():
    # d=16, f=64, 2 layers, T=12, V=11: weights per layer 3·256 + 256 + 2·16·64 = 3072
    # forward = 2·(2·3072 + 16·11) + 2·4·12·16 = 12640 + 1536 = 14176
    assert flops_per_token(SMALL, training=False) == 14176
    assert flops_per_token(SMALL) == 3 * 14176
    assert Transformer(SMALL).flops_per_token() == 3 * 14176


def test_flops_per_token_matches_pytorchs_flop_counter_on_the_linear_layers():
    # PyTorch's counter has no formula for the CPU attention kernel, so its count lacks the
    # attention term 4·T·d per layer; everything else must agree exactly.
    config = TransformerConfig(vocab_size=50, context=32, n_layers=3, n_heads=4, d_model=32)
    model = Transformer(config)
    x = _ids((4, 32), vocab=50)
    with FlopCounterMode(display=False) as counter:
        model(x)
    attention = 4 * 32 * 32 * 3
    assert counter.get_total_flops() / x.numel() == flops_per_token(config, training=False) - attention


def test_initialisation_is_seeded_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = Transformer(SMALL, seed=5), Transformer(SMALL, seed=5), Transformer(SMALL, seed=6)
    assert torch.equal(torch.get_rng_state(), before)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.tok_emb.weight, c.tok_emb.weight)
    same = Transformer(SMALL, generator=torch.Generator().manual_seed(5))
    assert torch.equal(same.blocks[1].ff.fc.weight, a.blocks[1].ff.fc.weight)


def test_initial_loss_is_close_to_log_vocabulary_size():
    model = Transformer(SMALL)
    loss = model.loss(_ids((8, 12)), _ids((8, 12), seed=4)).item()
    assert abs(loss - torch.log(torch.tensor(11.0)).item()) < 0.05


def test_matches_a_plain_reimplementation_with_an_explicit_mask():
    """Attention written out by hand (scores, -inf above the diagonal, softmax) gives the same logits."""
    model = Transformer(SMALL).eval()
    x = _ids((2, 12))
    h = model.tok_emb(x) + model.pos_emb.weight[:12]
    mask = torch.ones(12, 12, dtype=torch.bool).tril()
    for blk in model.blocks:
        q, k, v = blk.attn.qkv(blk.norm1(h)).split(16, dim=-1)
        q, k, v = (z.view(2, 12, 2, 8).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / 8**0.5
        att = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        h = h + blk.attn.proj((att @ v).transpose(1, 2).reshape(2, 12, 16))
        h = h + blk.ff.proj(F.gelu(blk.ff.fc(blk.norm2(h))))
    expected = model.norm(h) @ model.tok_emb.weight.T
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d_model": 10, "n_heads": 3}, "divisible"),
        ({"n_layers": 0}, "n_layers"),
        ({"vocab_size": 2.5}, "vocab_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"causal": "yes"}, "causal"),
        ({"d_ff": -1}, "d_ff"),
    ],
)
def test_bad_configurations_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**{"vocab_size": 11, **kwargs})


def test_too_long_or_misshaped_input_is_refused():
    model = Transformer(SMALL)
    with pytest.raises(ValueError, match="longer than the model's context"):
        model(_ids((1, 13)))
    with pytest.raises(ValueError, match="batch, time"):
        model(_ids((12,)))


def test_generation_is_reproducible_and_greedy_is_the_argmax():
    model = Transformer(SMALL)
    start = torch.zeros(2, 1, dtype=torch.long)
    a = model.generate(start, 20, torch.Generator().manual_seed(0), temperature=1.0)
    b = model.generate(start, 20, torch.Generator().manual_seed(0), temperature=1.0)
    assert a.shape == (2, 21) and torch.equal(a, b)
    greedy = model.generate(start, 3, torch.Generator(), temperature=0)
    assert greedy[0, 1] == model(start)[0, -1].argmax()
    with pytest.raises(ValueError, match="temperature"):
        model.generate(start, 1, torch.Generator(), temperature=-1)
    with pytest.raises(ValueError, match="causal"):
        Transformer(TransformerConfig(vocab_size=11, causal=False)).generate(start, 1, torch.Generator())


def test_bf16_autocast_on_the_cpu_keeps_attention_in_float32_and_stays_close(monkeypatch):
    """PyTorch's CPU attention is several times slower in bf16, so the model computes it in float32."""
    model = Transformer(TransformerConfig(vocab_size=11, context=12, n_layers=2, n_heads=2, d_model=16), seed=3)
    idx = torch.randint(11, (3, 12), generator=torch.Generator().manual_seed(0))
    attention, seen = F.scaled_dot_product_attention, []

    def recording(q, k, v, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return attention(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    with torch.no_grad():
        exact = model(idx)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(idx)
    assert seen == [(torch.float32,) * 3] * 4  # two layers, with and without autocast
    assert low.dtype == torch.bfloat16  # the other matrix products ran in bf16
    torch.testing.assert_close(low.float(), exact, atol=0.05, rtol=0.05)
