"""The training loop: schedule, learning, validation, checkpoint/resume, speed figures and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.losses import IGNORE_INDEX
from course_utils.models import Transformer, TransformerConfig
from course_utils.text import random_batch
from course_utils.throughput import format_mfu, mfu, peak_flops
from course_utils.train import (
    TrainConfig,
    evaluate,
    learning_rate,
    optimizer_for,
    random_windows,
    train,
)

CONFIG = TransformerConfig(vocab_size=7, context=16, n_layers=2, n_heads=2, d_model=16)


def _tokens(n: int, seed: int) -> torch.Tensor:
    """A repetitive sequence with some noise: learnable, but not trivially."""
    g = torch.Generator().manual_seed(seed)
    base = torch.arange(n) % 5
    noise = torch.randint(7, (n,), generator=g)
    return torch.where(torch.rand(n, generator=g) < 0.2, noise, base)


TRAIN, VAL = _tokens(3000, 0), _tokens(600, 1)


def _quick(**kwargs) -> TrainConfig:
    settings = dict(iterations=24, batch_size=4, lr=3e-3, min_lr=3e-4, warmup=4, eval_every=8,
                    eval_windows=8, device="cpu", progress=False)
    return TrainConfig(**{**settings, **kwargs})


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_the_minimum():
    c = TrainConfig(iterations=2000, warmup=100, lr=1e-3, min_lr=1e-4)
    assert learning_rate(0, c) == pytest.approx(1e-5)
    assert learning_rate(49, c) == pytest.approx(5e-4)
    assert learning_rate(99, c) == pytest.approx(1e-3)
    assert learning_rate(100, c) == pytest.approx(1e-3)
    assert learning_rate(1050, c) == pytest.approx(1e-4 + 0.5 * 9e-4)  # half-way: cos = 0
    assert learning_rate(2000, c) == pytest.approx(1e-4)
    decay = [learning_rate(s, c) for s in range(100, 2001)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert learning_rate(0, TrainConfig(warmup=0, lr=2e-3, min_lr=2e-4)) == pytest.approx(2e-3)


def test_training_lowers_the_validation_loss_and_records_its_history():
    model = Transformer(CONFIG)
    h = train(model, TRAIN, VAL, _quick(iterations=60, eval_every=20))
    assert h.steps == list(range(1, 61)) and len(h.train_loss) == 60
    assert h.val_steps == [20, 40, 60]
    assert h.lr == [learning_rate(s, _quick(iterations=60)) for s in range(60)]
    assert h.val_loss[0] > h.val_loss[-1]
    assert h.val_loss[-1] < math.log(7) - 0.5  # well below the uniform model's log 7 = 1.946
    assert h.best_val_loss == min(h.val_loss)
    assert h.tokens_per_second > 0 and h.seconds > 0
    assert h.mfu is None and h.device == "cpu"  # no MFU without a known peak


def test_the_same_settings_give_the_same_run():
    a = train(Transformer(CONFIG), TRAIN, VAL, _quick())
    b = train(Transformer(CONFIG), TRAIN, VAL, _quick())
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss
    c = train(Transformer(CONFIG), TRAIN, VAL, _quick(seed=1))
    assert a.train_loss != c.train_loss


def test_an_interrupted_and_resumed_run_equals_the_uninterrupted_run_bit_for_bit(tmp_path):
    straight_model = Transformer(CONFIG)
    straight = train(straight_model, TRAIN, VAL, _quick())

    path = str(tmp_path / "run.pt")
    first = Transformer(CONFIG)
    # Checkpoints at steps 8 and 16; the run "dies" after step 19, losing steps 17–19.
    train(first, TRAIN, VAL, _quick(checkpoint_path=path, checkpoint_every=8, stop_after=19))
    resumed_model = Transformer(CONFIG, seed=99)  # a fresh process would rebuild the model
    resumed = train(resumed_model, TRAIN, VAL, _quick(checkpoint_path=path, checkpoint_every=8), resume=True)

    assert resumed.steps == straight.steps
    assert resumed.train_loss == straight.train_loss  # exact float equality
    assert resumed.val_loss == straight.val_loss
    assert resumed.lr == straight.lr
    for (name, a), b in zip(straight_model.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resume_with_dropout_is_also_exact(tmp_path):
    config = TransformerConfig(**{**CONFIG.__dict__, "dropout": 0.2})
    straight = train(Transformer(config), TRAIN, VAL, _quick())
    path = str(tmp_path / "drop.pt")
    train(Transformer(config), TRAIN, VAL, _quick(checkpoint_path=path, checkpoint_every=8, stop_after=10))
    resumed = train(Transformer(config), TRAIN, VAL, _quick(checkpoint_path=path, checkpoint_every=8), resume=True)
    assert resumed.train_loss == straight.train_loss


def test_resume_refuses_a_checkpoint_written_with_other_settings_or_damaged(tmp_path):
    path = tmp_path / "run.pt"
    train(Transformer(CONFIG), TRAIN, VAL, _quick(checkpoint_path=str(path), checkpoint_every=8, stop_after=8))
    with pytest.raises(ValueError, match="different settings: lr"):
        train(Transformer(CONFIG), TRAIN, VAL, _quick(checkpoint_path=str(path), lr=1e-2), resume=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        train(Transformer(CONFIG), TRAIN, VAL, _quick(checkpoint_path=str(path)), resume=True)


def test_evaluate_scores_fixed_consecutive_windows():
    model = Transformer(CONFIG)
    got = evaluate(model, VAL, context=16, max_windows=8, batch_size=3)
    windows = VAL[: 8 * 16 + 1]
    x = torch.stack([windows[i * 16: i * 16 + 16] for i in range(8)])
    y = torch.stack([windows[i * 16 + 1: i * 16 + 17] for i in range(8)])
    with torch.no_grad():
        expected = model.loss(x, y).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert model.training  # evaluation puts the model back in training mode


def test_training_stops_once_the_target_validation_loss_is_reached():
    full = train(Transformer(CONFIG), TRAIN, VAL, _quick(iterations=60, eval_every=5))
    target = full.val_loss[3]  # reached at step 20 (or earlier)
    first = next(s for s, v in zip(full.val_steps, full.val_loss, strict=True) if v <= target)
    stopped = train(Transformer(CONFIG), TRAIN, VAL, _quick(iterations=60, eval_every=5, target_loss=target))
    assert stopped.reached_target and stopped.val_steps[-1] == first
    assert stopped.train_loss == full.train_loss[:first]
    assert not full.reached_target


def test_progress_bar_shows_the_loss(capsys):
    train(Transformer(CONFIG), TRAIN, VAL, _quick(iterations=10, progress=True))
    err = capsys.readouterr().err
    assert "training" in err and "loss=" in err and "val=" in err


def test_a_custom_loss_function_is_used_for_training_and_validation():
    calls = []

    def loss_fn(model, x, y):
        calls.append(x.shape)
        return model.loss(x, y)

    train(Transformer(CONFIG), TRAIN, VAL, _quick(iterations=8, eval_every=8), loss_fn=loss_fn)
    assert len(calls) == 8 + 1  # 8 steps and one validation batch


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA GeForce RTX 4090", 165.2e12),
        ("Tesla T4", None),  # no bf16 tensor cores (its fp16 peak: tests/test_gpu_policy.py)
        ("Some Future Accelerator", None),
    ],
)
def test_peak_flops_are_known_for_listed_gpus_only(name, peak):
    assert peak_flops(name) == peak


def test_mfu_arithmetic_and_unknown_peak():
    # 100k tokens/s at 6 GFLOP/token is 600 TFLOP/s: 60.7 % of an H100 SXM's 989 TFLOP/s
    value = mfu(1e5, 6e9, peak_flops("NVIDIA H100 80GB HBM3"))
    assert value == pytest.approx(6e14 / 989e12)
    assert format_mfu(value) == "60.7 %"
    assert mfu(1e5, 6e9, None) is None and format_mfu(None) == "unknown"
    with pytest.raises(ValueError, match="flops_per_token must be a finite number > 0"):
        mfu(1e5, 0.0, 1e12)
    with pytest.raises(ValueError, match="tokens_per_second must be a finite number >= 0"):
        mfu(-1.0, 6e9, 1e12)
    with pytest.raises(ValueError, match="peak must be a finite number > 0"):
        mfu(1e5, 6e9, 0.0)


@pytest.mark.parametrize("lengths, repeats, message", [([], 1, "lengths is empty"), ([8, 0], 1, "each length"),
                                                       ([8, 2.5], 1, "each length"), ([8], 0, "repeats")])
def test_attention_cost_names_bad_lengths_and_repeats(lengths, repeats, message):
    from course_utils.throughput import attention_cost

    with pytest.raises(ValueError, match=message):
        attention_cost(lengths, d=4, heads=1, repeats=repeats)


def test_corpus_shorter_than_the_context_is_a_clear_error():
    with pytest.raises(ValueError, match="training corpus has 10 tokens, shorter than context"):
        train(Transformer(CONFIG), TRAIN[:10], VAL, _quick())
    with pytest.raises(ValueError, match="validation corpus has 16 tokens"):
        train(Transformer(CONFIG), TRAIN, VAL[:16], _quick())


def test_context_longer_than_the_models_is_a_clear_error():
    with pytest.raises(ValueError, match="context 32 is longer than the model's context of 16"):
        train(Transformer(CONFIG), TRAIN, VAL, _quick(context=32))


def test_unknown_or_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        train(Transformer(CONFIG), TRAIN, VAL, _quick(device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train(Transformer(CONFIG), TRAIN, VAL, _quick(device="cuda"))


def test_tokens_outside_the_vocabulary_or_not_integers_are_refused():
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        train(Transformer(CONFIG), TRAIN + 5, VAL, _quick())
    with pytest.raises(ValueError, match="integer token ids"):
        train(Transformer(CONFIG), TRAIN.float(), VAL, _quick())


@pytest.mark.parametrize(
    "kwargs",
    [{"iterations": 0}, {"lr": 0.0}, {"min_lr": 1.0}, {"warmup": -1}, {"grad_clip": 0.0},
     {"betas": (0.9, 1.0)}, {"checkpoint_every": 5}, {"batch_size": 2.5}, {"weight_decay": -0.1}],
)
def test_bad_training_settings_are_named(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_the_loops_updates_equal_textbook_per_tensor_adamw_with_clipping():
    """The loop's optimizer (fused where available) gives the updates of plain per-tensor AdamW + clipping."""
    config = _quick(iterations=6, warmup=2, grad_clip=0.5)
    trained = Transformer(CONFIG)
    history = train(trained, TRAIN, VAL, config)

    model = Transformer(CONFIG)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=config.betas,
                            foreach=False)
    g = torch.Generator().manual_seed(config.seed)
    norms = []
    for step in range(config.iterations):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, config)
        x, y = random_batch(TRAIN, 16, config.batch_size, g)
        loss = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip).item())
        opt.step()
    for (name, a), b in zip(model.state_dict().items(), trained.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # the loop records each step's gradient norm before clipping; here every step was clipped
    assert history.grad_norm == pytest.approx(norms, rel=1e-5) and min(norms) > config.grad_clip


def test_without_clipping_the_gradient_norm_is_recorded_and_the_run_is_unchanged():
    unclipped = train(Transformer(CONFIG), TRAIN, VAL, _quick(grad_clip=None))
    huge_clip = train(Transformer(CONFIG), TRAIN, VAL, _quick(grad_clip=1e9))
    assert unclipped.train_loss == huge_clip.train_loss and unclipped.grad_norm == huge_clip.grad_norm
    assert len(unclipped.grad_norm) == 24 and all(math.isfinite(n) and n > 0 for n in unclipped.grad_norm)


def test_optimizer_decays_matrices_only_and_uses_the_fused_kernel_where_torch_has_one():
    model = Transformer(CONFIG)
    opt = optimizer_for(model, _quick(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    version = tuple(int(part) for part in torch.__version__.split(".")[:2])
    assert bool(opt.defaults["fused"]) == (version >= (2, 4))  # CPU fused AdamW came in PyTorch 2.4
    assert bool(opt.defaults["foreach"]) == (version < (2, 4))
    with pytest.raises(ValueError, match="no trainable parameters"):
        optimizer_for(torch.nn.ReLU(), _quick())


def _steps_with(model: torch.nn.Module, optimizer: torch.optim.Optimizer, clear, steps: int = 8) -> list[float]:
    """A learner's loop over one fixed batch: clear the gradients with `clear`, backward, step."""
    x, y = random_batch(TRAIN, 16, 8, torch.Generator().manual_seed(0))
    losses = []
    for _ in range(steps):
        clear()
        loss = model.loss(x, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


CLEARS = {
    "model.zero_grad()": lambda model, optimizer: model.zero_grad(),
    "model.zero_grad(set_to_none=True)": lambda model, optimizer: model.zero_grad(set_to_none=True),
    "optimizer.zero_grad()": lambda model, optimizer: optimizer.zero_grad(),
}


@pytest.mark.parametrize("clear", list(CLEARS))
def test_clearing_gradients_any_usual_way_between_steps_keeps_training(clear):
    model = Transformer(CONFIG)
    optimizer = optimizer_for(model, _quick(lr=1e-2, weight_decay=0.0))
    before = [p.detach().clone() for p in model.parameters()]
    losses = _steps_with(model, optimizer, lambda: CLEARS[clear](model, optimizer))
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert losses[-1] < losses[0] - 0.3


def test_converting_the_model_after_building_the_optimizer_still_trains_the_model():
    model = Transformer(CONFIG)
    optimizer = optimizer_for(model, _quick(lr=1e-2, weight_decay=0.0))
    model.double()  # the optimizer holds the same parameters, now in float64
    before = [p.detach().clone() for p in model.parameters()]
    losses = _steps_with(model, optimizer, optimizer.zero_grad)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert losses[-1] < losses[0] - 0.3


def _half_masked_windows(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch source: random windows whose first 8 targets are left out of the loss."""
    x, y = random_batch(TRAIN, 16, 4, generator)
    return x, torch.cat([torch.full((4, 8), IGNORE_INDEX), y[:, 8:]], dim=1)


def test_a_token_stream_trains_on_random_windows_like_its_batch_source():
    plain = train(Transformer(CONFIG), TRAIN, VAL, _quick())
    sourced = train(Transformer(CONFIG), random_windows(TRAIN, 16, 4), VAL, _quick(batch_size=99))
    assert sourced.train_loss == plain.train_loss and sourced.val_loss == plain.val_loss


def test_a_batch_source_with_ignored_targets_counts_only_the_others():
    model = Transformer(CONFIG)
    x, y = _half_masked_windows(torch.Generator().manual_seed(0))
    with torch.no_grad():
        log_p = torch.log_softmax(model(x)[:, 8:], -1).gather(-1, y[:, 8:, None])
    h = train(model, _half_masked_windows, VAL, _quick(iterations=8, eval_every=8))
    assert h.train_loss[0] == pytest.approx(-log_p[:, :, 0].mean().item(), rel=1e-5)
    assert h.tokens_per_second > 0 and h.train_loss[-1] < h.train_loss[0]


def test_a_batch_source_run_repeats_and_resumes_bit_for_bit(tmp_path):
    straight_model = Transformer(CONFIG)
    straight = train(straight_model, _half_masked_windows, VAL, _quick())
    assert train(Transformer(CONFIG), _half_masked_windows, VAL, _quick()).train_loss == straight.train_loss
    path = str(tmp_path / "source.pt")
    train(Transformer(CONFIG), _half_masked_windows, VAL, _quick(checkpoint_path=path, checkpoint_every=8,
                                                                 stop_after=11))
    resumed_model = Transformer(CONFIG, seed=5)
    resumed = train(resumed_model, _half_masked_windows, VAL, _quick(checkpoint_path=path, checkpoint_every=8),
                    resume=True)
    assert resumed.train_loss == straight.train_loss and resumed.val_loss == straight.val_loss
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_validation_function_scores_the_model_in_eval_mode_at_each_evaluation():
    seen = []

    def validate(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return 10.0 - len(seen)

    h = train(Transformer(CONFIG), TRAIN, validate, _quick(iterations=20, eval_every=8))
    assert h.val_steps == [8, 16, 20] and h.val_loss == [9.0, 8.0, 7.0]
    assert seen == [(False, False)] * 3
    stopped = train(Transformer(CONFIG), TRAIN, lambda m: 1.0, _quick(iterations=20, eval_every=8, target_loss=1.0))
    assert stopped.reached_target and stopped.steps[-1] == 8


@pytest.mark.parametrize(
    "source, message",
    [(lambda g: random_batch(TRAIN, 16, 4, g)[0], "must return \\(inputs, targets\\)"),
     (lambda g: (TRAIN[:16], TRAIN[1:17]), "must return \\(inputs, targets\\)"),
     (lambda g: (*random_batch(TRAIN, 16, 4, g), None), "must return"),
     (lambda g: random_batch(TRAIN + 7, 16, 4, g), "outside the model's vocabulary"),
     (lambda g: (torch.zeros(2, 16), torch.zeros(2, 16)), "integer token ids"),
     (lambda g: (torch.zeros(2, 17, dtype=torch.long),) * 2, "longer than the model's context"),
     (lambda g: (torch.zeros(2, 16, dtype=torch.long), torch.full((2, 16), IGNORE_INDEX)), "nothing to learn")],
)
def test_a_bad_batch_source_is_named_before_training(source, message):
    model = Transformer(CONFIG)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=message):
        train(model, source, VAL, _quick())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_data_and_validation_of_the_wrong_kind_are_named():
    with pytest.raises(ValueError, match="data must be a 1-D tensor of token ids or a batch source"):
        train(Transformer(CONFIG), TRAIN.tolist(), VAL, _quick())
    with pytest.raises(ValueError, match="val must be a 1-D tensor of token ids or a function"):
        train(Transformer(CONFIG), TRAIN, 1.5, _quick())


def test_presets_build_valid_configurations():
    from course_utils.presets import preset

    for name in ("cpu", "cpu-fp32", "cpu-reference", "gpu"):
        p = preset(name)
        TransformerConfig(vocab_size=100, **p["model"])
        TrainConfig(**p["train"])
    ref = preset("cpu-reference")
    assert ref["model"] == {"n_layers": 4, "n_heads": 4, "d_model": 128, "context": 64}
    assert (ref["train"]["iterations"], ref["train"]["batch_size"], ref["train"]["lr"], ref["train"]["min_lr"],
            ref["train"]["warmup"], ref["train"]["betas"]) == (2000, 12, 1e-3, 1e-4, 100, (0.9, 0.99))
    assert preset("gpu")["model"] == {"n_layers": 6, "n_heads": 6, "d_model": 384, "context": 256, "dropout": 0.1}
    preset("cpu")["train"]["lr"] = 1.0  # a fresh copy each time
    assert preset("cpu")["train"]["lr"] != 1.0
    with pytest.raises(ValueError, match="unknown preset 'tiny'"):
        preset("tiny")


def test_precision_auto_is_float32_on_the_cpu_and_bf16_is_recorded():
    fp32 = train(Transformer(CONFIG), TRAIN, VAL, _quick())
    assert fp32.precision == "fp32"
    bf16 = train(Transformer(CONFIG), TRAIN, VAL, _quick(precision="bf16"))
    assert bf16.precision == "bf16"
    assert bf16.train_loss != fp32.train_loss  # the matrix products really ran in bf16
    # bf16 rounds every product to 8 bits of mantissa, but learns the same thing.
    assert abs(bf16.val_loss[-1] - fp32.val_loss[-1]) < 0.05
    assert bf16.val_loss[-1] < math.log(7) - 0.3


def test_a_bf16_run_repeats_and_resumes_bit_for_bit_on_the_cpu(tmp_path):
    straight = train(Transformer(CONFIG), TRAIN, VAL, _quick(precision="bf16"))
    again = train(Transformer(CONFIG), TRAIN, VAL, _quick(precision="bf16"))
    assert again.train_loss == straight.train_loss
    path = str(tmp_path / "bf16.pt")
    train(Transformer(CONFIG), TRAIN, VAL,
          _quick(precision="bf16", checkpoint_path=path, checkpoint_every=8, stop_after=13))
    resumed = train(Transformer(CONFIG), TRAIN, VAL,
                    _quick(precision="bf16", checkpoint_path=path, checkpoint_every=8), resume=True)
    assert resumed.train_loss == straight.train_loss and resumed.val_loss == straight.val_loss
    with pytest.raises(ValueError, match="different settings: precision"):
        train(Transformer(CONFIG), TRAIN, VAL, _quick(checkpoint_path=path), resume=True)


def test_evaluate_in_bf16_is_close_to_float32():
    model = Transformer(CONFIG)
    fp32 = evaluate(model, VAL, context=16, max_windows=8)
    bf16 = evaluate(model, VAL, context=16, max_windows=8, precision="bf16")
    assert fp32 == evaluate(model, VAL, context=16, max_windows=8, precision="fp32")
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, abs=0.02)


def test_an_unknown_precision_is_named():
    with pytest.raises(ValueError, match="precision must be one of .auto., .bf16., .fp16., .fp32., got .half."):
        TrainConfig(precision="half")
    with pytest.raises(ValueError, match="precision must be one of"):
        evaluate(Transformer(CONFIG), VAL, context=16, precision="float16")


def test_the_default_preset_trains_in_bf16_only_on_cpus_with_bf16_matrix_units():
    from course_utils.presets import cpu_preset_name, preset
    from course_utils.runtime import cpu_has_bf16_matrix_units

    assert preset("cpu")["train"]["precision"] == "bf16"
    assert preset("cpu-fp32")["train"]["precision"] == "fp32"
    assert preset("cpu-reference")["train"]["precision"] == "fp32"
    assert "precision" not in preset("gpu")["train"]  # "auto": bf16 autocast on CUDA
    if torch.cuda.is_available():
        assert preset(None) == preset("gpu")
    else:
        assert preset(None) == preset(cpu_preset_name())
    assert cpu_preset_name() == ("cpu" if cpu_has_bf16_matrix_units() else "cpu-fp32")
