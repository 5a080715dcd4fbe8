"""The GPU policy, checked on a CPU with the CUDA queries mocked: precision, gradient scaling, compilation, peaks."""

import math

import pytest
import torch

from course_utils import runtime, train
from course_utils.models import Transformer, TransformerConfig
from course_utils.throughput import format_speed, peak_flops
from course_utils.train import TrainConfig, compiled, gradient_scaler, resolve_precision

CUDA = torch.device("cuda")

# name as torch.cuda.get_device_name() reports it, compute capability, what "auto" picks,
# whether torch.compile is tried, the fp16 and bf16 peaks the course quotes MFU against
GENERATIONS = [
    ("Tesla P100-PCIE-16GB", (6, 0), "fp16", False, None, None),
    ("Tesla V100-SXM2-16GB", (7, 0), "fp16", True, 125e12, None),
    ("Tesla T4", (7, 5), "fp16", True, 65e12, None),
    ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16", True, 312e12, 312e12),
    ("NVIDIA A100 80GB PCIe", (8, 0), "bf16", True, 312e12, 312e12),
    ("NVIDIA A10G", (8, 6), "bf16", True, 70e12, 70e12),
    ("NVIDIA A10", (8, 6), "bf16", True, 125e12, 125e12),
    ("NVIDIA GeForce RTX 3090", (8, 6), "bf16", True, 71e12, 71e12),
    ("NVIDIA L4", (8, 9), "bf16", True, 121e12, 121e12),
    ("NVIDIA GeForce RTX 4090", (8, 9), "bf16", True, 165.2e12, 165.2e12),
    ("NVIDIA H100 PCIe", (9, 0), "bf16", True, 756e12, 756e12),
    ("NVIDIA H100 80GB HBM3", (9, 0), "bf16", True, 989e12, 989e12),
    ("NVIDIA H200", (9, 0), "bf16", True, 989e12, 989e12),
]


def fake_gpu(monkeypatch, name: str, capability: tuple[int, int]) -> None:
    """Make the CUDA queries answer as `name` would; `is_bf16_supported` says True as it does on a T4."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


@pytest.mark.parametrize("name, capability, auto, compiles, fp16_peak, bf16_peak", GENERATIONS)
def test_each_gpu_generation_gets_its_precision_compilation_and_peak(
        monkeypatch, name, capability, auto, compiles, fp16_peak, bf16_peak):
    fake_gpu(monkeypatch, name, capability)
    assert runtime.default_precision(CUDA) == auto == resolve_precision("auto", CUDA)
    assert runtime.supports_bf16(CUDA) == (auto == "bf16")
    assert resolve_precision("fp16", CUDA) == "fp16" and resolve_precision("fp32", CUDA) == "fp32"
    if auto == "bf16":
        assert resolve_precision("bf16", CUDA) == "bf16"
    else:  # bf16 is refused where it would be emulated, although is_bf16_supported() says True
        with pytest.raises(ValueError, match=rf"needs compute capability 8.0 or newer; {name} has "
                                             rf"{capability[0]}.{capability[1]}: use 'fp16'"):
            resolve_precision("bf16", CUDA)
    use, reason = runtime.compile_plan(True, CUDA)
    assert use == compiles and (reason is None) == compiles
    if not compiles:
        assert "compute capability 7.0 or newer" in reason and name in reason
    assert runtime.compile_plan(False, CUDA) == (False, None)
    assert peak_flops(name, "fp16") == fp16_peak and peak_flops(name, "bf16") == bf16_peak
    assert peak_flops(name, "fp32") is None
    assert runtime.describe(CUDA) == f"cuda ({name}, compute capability {capability[0]}.{capability[1]})"


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
@pytest.mark.parametrize("name, capability", [("Tesla T4", (7, 5)), ("NVIDIA H100 80GB HBM3", (9, 0))])
def test_a_gradient_scaler_comes_with_fp16_only(monkeypatch, name, capability):
    fake_gpu(monkeypatch, name, capability)
    scaler = gradient_scaler("auto", CUDA)
    assert (scaler is not None) == (capability < (8, 0))
    assert gradient_scaler("fp32", CUDA) is None and gradient_scaler("bf16", torch.device("cpu")) is None
    assert isinstance(gradient_scaler("fp16", torch.device("cpu")), torch.amp.GradScaler)


def test_cpu_and_mps_default_to_float32_and_mps_is_not_compiled():
    for kind in ("cpu", "mps"):
        assert runtime.default_precision(torch.device(kind)) == "fp32"
    assert runtime.compile_plan(True, torch.device("cpu")) == (True, None)
    use, reason = runtime.compile_plan(True, torch.device("mps"))
    assert not use and "MPS" in reason
    with pytest.raises(ValueError, match="not a CUDA device"):
        runtime.gpu_capability(torch.device("cpu"))


@pytest.mark.parametrize("name", ["Some Future Accelerator", "NVIDIA GeForce RTX 4090 Laptop GPU", "NVIDIA A1000"])
def test_a_gpu_the_course_does_not_know_gets_no_peak(name):
    assert peak_flops(name, "bf16") is None and peak_flops(name, "fp16") is None


CONFIG = TransformerConfig(vocab_size=7, context=16, n_layers=1, n_heads=2, d_model=16)
TOKENS = torch.arange(400) % 7


def _quick(**kwargs) -> TrainConfig:
    settings = {"iterations": 12, "batch_size": 4, "warmup": 2, "eval_every": 6, "eval_windows": 4,
                "device": "cpu", "progress": False, "lr": 3e-3}
    return TrainConfig(**{**settings, **kwargs})


def _broken_compile(exc: Exception, at_call: bool):
    """A stand-in for torch.compile failing when called (no compiler) or at the first call (code generation)."""
    def fake(fn, *args, **kwargs):
        if not at_call:
            raise exc

        def run(*a, **k):
            raise exc
        return run
    return fake


@pytest.mark.parametrize("at_call", [False, True])
def test_a_failing_compile_falls_back_to_eager_with_one_printed_line(monkeypatch, capsys, at_call):
    eager = train.train(Transformer(CONFIG), TOKENS, TOKENS, _quick())
    capsys.readouterr()
    monkeypatch.setattr(torch, "compile", _broken_compile(RuntimeError("no C compiler\nmore detail"), at_call))
    fallen = train.train(Transformer(CONFIG), TOKENS, TOKENS, _quick(compile=True))
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == ["torch.compile failed (RuntimeError: no C compiler); training runs eagerly"]
    assert fallen.train_loss == eager.train_loss and not fallen.compiled and not eager.compiled


def test_a_working_compile_is_used_and_recorded(monkeypatch):
    calls = []

    def fake(fn, *args, **kwargs):
        def run(*a, **k):
            calls.append(1)
            return fn(*a, **k)
        return run
    monkeypatch.setattr(torch, "compile", fake)
    fn, in_use = compiled(lambda x: x + 1, True, torch.device("cpu"))
    assert fn(1) == 2 and calls == [1] and in_use()
    history = train.train(Transformer(CONFIG), TOKENS, TOKENS, _quick(compile=True))
    assert history.compiled and len(calls) == 1 + 12


def test_fp16_training_with_a_gradient_scaler_learns_repeats_and_resumes_exactly(tmp_path):
    fp32 = train.train(Transformer(CONFIG), TOKENS, TOKENS, _quick())
    fp16 = train.train(Transformer(CONFIG), TOKENS, TOKENS, _quick(precision="fp16"))
    assert fp16.precision == "fp16" and fp16.train_loss != fp32.train_loss
    assert fp16.val_loss[-1] == pytest.approx(fp32.val_loss[-1], abs=0.05)
    assert fp16.val_loss[-1] < math.log(7) - 0.3
    # the recorded gradient norms are the true ones (unscaled), close to float32's
    assert fp16.grad_norm[0] == pytest.approx(fp32.grad_norm[0], rel=0.05)
    path = str(tmp_path / "fp16.pt")
    train.train(Transformer(CONFIG), TOKENS, TOKENS,
                _quick(precision="fp16", checkpoint_path=path, checkpoint_every=4, stop_after=7))
    resumed = train.train(Transformer(CONFIG), TOKENS, TOKENS,
                          _quick(precision="fp16", checkpoint_path=path, checkpoint_every=4), resume=True)
    assert resumed.train_loss == fp16.train_loss and resumed.val_loss == fp16.val_loss


def test_speed_line_always_has_achieved_tflops_and_mfu_where_known():
    assert format_speed(2e4, 1.7e11, None) == "20,000 tokens/s · 0.17 TFLOP/s achieved · MFU unknown"
    assert format_speed(1e5, 6e14, 6e14 / 989e12) == "100,000 tokens/s · 600 TFLOP/s achieved · MFU 60.7 %"
    history = train.train(Transformer(CONFIG), TOKENS, TOKENS, _quick())
    per_token = Transformer(CONFIG).flops_per_token()
    assert history.flops_per_second == pytest.approx(history.tokens_per_second * per_token)
    assert history.mfu is None
    with pytest.raises(ValueError, match="flops_per_second"):
        format_speed(1.0, -1.0, None)
