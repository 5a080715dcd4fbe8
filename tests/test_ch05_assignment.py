"""Chapter 05 grading: the references and other right answers pass; tests/test_mistakes.py runs the wrong ones."""


import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.assignments.key.ch05_transformer_training import _attention
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import call_case, expected_outcome, judge

A = assignments.load("05")


def _failures(name, fn, hidden=True):
    """Indices of the cases (public first, then hidden) where `fn` disagrees with the reference."""
    item = A.item(name)
    bad = []
    for i, case in enumerate(item.cases(hidden)):
        args = case.build()
        out = call_case(fn, args)
        if out.error or judge(expected_outcome(item, args), out.value, item.rtol, item.atol):
            bad.append(i)
    return bad


def test_every_reference_passes_its_own_cases():
    for item in A.items:
        if hasattr(item, "reference"):
            assert _failures(item.name, item.reference) == []


def test_the_assignment_has_the_seed_quiz_items_and_three_implementations():
    names = [item.name for item in A.items]
    for quiz in ("ANSWER_STEP_ORDER", "ANSWER_PARALLEL_TRAINING", "ANSWER_FALLING_LOSS", "ANSWER_LONG_INPUTS"):
        assert quiz in names
    for impl in ("causal_mask", "causal_attention", "next_token_loss", "training_steps", "lr_schedule",
                 "clip_gradients"):
        assert impl in names
    assert len(names) >= 6


def test_a_hand_written_causal_attention_passes():
    assert _failures("causal_attention", _attention) == []


def test_a_correct_loop_with_zeroing_first_passes():
    def zero_first(model, batches, lr):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        out = []
        for x, y in batches:
            optimizer.zero_grad()
            loss = model.loss(x, y)
            loss.backward()
            optimizer.step()
            out.append(loss.item())
        return out

    assert _failures("training_steps", zero_first) == []


@pytest.mark.parametrize(
    "name, wrong",
    [("ANSWER_STEP_ORDER", "CDABE"), ("ANSWER_STEP_ORDER", "CADEB"), ("ANSWER_PARALLEL_TRAINING", "A"),
     ("ANSWER_FALLING_LOSS", "A"), ("ANSWER_LONG_INPUTS", "C")],
)
def test_wrong_quiz_answers_fail_and_right_ones_pass(name, wrong):
    assert not evaluate(name, wrong).passed
    assert evaluate(name, A.item(name).expected).passed


def test_the_schedule_is_the_training_loops_schedule():
    from course_utils.train import TrainConfig, learning_rate

    schedule = A.item("lr_schedule").reference
    for warmup, iterations in ((0, 30), (1, 30), (7, 40), (25, 25)):
        config = TrainConfig(iterations=iterations, lr=3e-3, min_lr=3e-4, warmup=warmup)
        for step in range(iterations + 5):
            assert schedule(step, 3e-3, 3e-4, warmup, iterations) == learning_rate(step, config)
    assert schedule(6, 3e-3, 3e-4, 7, 40) == pytest.approx(3e-3, rel=1e-12)  # the peak ends the warm-up
    assert schedule(39, 3e-3, 3e-4, 7, 40) > 3e-4 and schedule(40, 3e-3, 3e-4, 7, 40) == pytest.approx(3e-4)


def test_clipping_by_hand_with_or_without_a_small_epsilon_passes():
    def by_hand(grads, max_norm, eps):
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        factor = torch.clamp(max_norm / (norm + eps), max=1.0)
        return [g * factor for g in grads], norm

    assert _failures("clip_gradients", lambda g, m: by_hand(g, m, 1e-6)) == []
    assert _failures("clip_gradients", lambda g, m: by_hand(g, m, 0.0)) == []


def test_clipping_keeps_the_direction_and_caps_the_norm():
    clip = A.item("clip_gradients").reference
    grads = [torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([[0.0, 4.0]], dtype=torch.float64)]
    clipped, norm = clip(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert torch.allclose(clipped[0], torch.tensor([0.6, 0.0], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(clipped[1], torch.tensor([[0.0, 0.8]], dtype=torch.float64), atol=1e-6)
    same, small = clip(grads, 10.0)
    assert small == pytest.approx(5.0) and all(torch.equal(a, b) for a, b in zip(same, grads, strict=True))
    with pytest.raises(ValueError, match="max_norm"):
        clip(grads, 0.0)


def test_the_block_reference_is_the_models_block_and_a_hand_written_block_passes():
    from course_utils.assessment.assignments.key.ch05_transformer_training import _block
    from course_utils.models import Transformer, TransformerConfig

    shape = TransformerConfig(vocab_size=5, context=7, n_layers=2, n_heads=4, d_model=16)
    block = Transformer(shape, seed=3).blocks[1].double()
    x = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    params = {**block.state_dict(), "n_heads": 4}
    with torch.no_grad():
        expected = block(x)
    assert torch.allclose(A.item("prenorm_block").reference(x, params), expected, rtol=1e-12, atol=1e-12)
    assert torch.allclose(_block(x, params), expected, rtol=1e-10, atol=1e-12)
    assert _failures("prenorm_block", _block) == []


@pytest.mark.parametrize(("layers", "context", "width", "vocab"),
                         [(12, 1024, 768, 50257), (2, 64, 128, 65), (3, 8, 16, 7)])
def test_the_flops_reference_is_the_packages_count(layers, context, width, vocab):
    from course_utils.models import TransformerConfig, flops_per_token

    config = TransformerConfig(vocab_size=vocab, context=context, n_layers=layers, n_heads=4, d_model=width)
    matrix_weights = layers * (4 * width**2 + 2 * width * config.ff_width) + width * vocab
    reference = A.item("training_flops_per_token").reference
    assert reference(matrix_weights, layers, context, width) == flops_per_token(config)


def test_the_mfu_answer_follows_from_the_flops_and_the_peak():
    flops = A.item("training_flops_per_token").reference(123_532_032, 12, 1024, 768)
    assert A.item("ANSWER_MFU").expected == pytest.approx(flops * 400_000 / 989e12, abs=1e-4)
    for wrong in (34.56, 6 * 123_532_032 * 400_000 / 989e12, 0.1152):  # a percentage; 6N alone; forward only
        assert not evaluate("ANSWER_MFU", wrong).passed


@pytest.mark.parametrize("wrong", ["ACDB", "CDAB", "CABD", "ABCD"])
def test_each_swapped_curve_diagnosis_fails(wrong):
    assert not evaluate("ANSWER_CURVES", wrong).passed
