"""runtime: seeding, threads, device choice."""

import pytest
import torch

from course_utils import runtime


def test_setup_returns_a_seeded_generator_and_reseeds_torch():
    g1 = runtime.setup(seed=3)
    a = torch.rand(5, generator=g1), torch.rand(5)
    g2 = runtime.setup(seed=3)
    b = torch.rand(5, generator=g2), torch.rand(5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.get_num_threads() == 1


def test_setup_threads_none_keeps_torch_choice():
    torch.set_num_threads(2)
    runtime.setup(threads=None)
    assert torch.get_num_threads() == 2
    runtime.setup()


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 1.5}, {"seed": True}, {"threads": 0}])
def test_setup_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        runtime.setup(**kwargs)


def test_device_defaults_to_an_available_device():
    dev = runtime.device()
    assert dev.type in ("cpu", "cuda", "mps")
    assert runtime.device("cpu") == torch.device("cpu")
    assert runtime.describe(torch.device("cpu")) == "cpu"


def test_device_rejects_unknown_or_missing_devices():
    with pytest.raises(ValueError, match="unknown device"):
        runtime.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            runtime.device("cuda")


def test_model_device_reads_the_first_parameter_or_buffer():
    assert runtime.model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert runtime.model_device(torch.nn.ReLU()) == torch.device("cpu")  # nothing to read: the CPU
    assert runtime.model_device(lambda ids: ids) == torch.device("cpu")  # not a module: the CPU
    buffers_only = torch.nn.BatchNorm1d(3, affine=False)
    assert runtime.model_device(buffers_only) == torch.device("cpu")
    meta = torch.nn.Linear(2, 2, device="meta")
    assert runtime.model_device(meta) == torch.device("meta")
    meta_buffer = torch.nn.Module()
    meta_buffer.register_buffer("table", torch.zeros(3, device="meta"))
    assert runtime.model_device(meta_buffer) == torch.device("meta")
