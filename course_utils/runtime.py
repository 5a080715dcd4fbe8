"""Reproducible set-up: seeds, threads, printing, device choice, and what a GPU can do (precision, compilation)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .validate import int_at_least, positive_int

_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def setup(seed: int = 0, threads: int | None = 1, deterministic: bool = True) -> torch.Generator:
    """Seed every random source, fix the thread count and print precision; return a seeded generator.

    `threads=None` leaves PyTorch's own choice (all cores). The returned `torch.Generator`
    lives on the CPU; pass it to every random draw so a cell gives the same result each run.
    """
    int_at_least(seed, "seed", 0)
    if threads is not None:  # None: PyTorch's own choice
        positive_int(threads, "threads")
    # Needed by cuBLAS for deterministic results; harmless without a GPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    return torch.Generator().manual_seed(seed)


def device(prefer: str | None = None) -> torch.device:
    """The best available device (cuda, then mps, then cpu), or `prefer` if it is available."""
    if prefer is not None:
        kind = str(prefer).split(":")[0]
        if kind not in _KNOWN_DEVICES:
            raise ValueError(f"unknown device {prefer!r}; use one of {', '.join(_KNOWN_DEVICES)}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but no CUDA GPU is available")
        if kind == "mps" and not _mps_available():
            raise ValueError("device 'mps' was asked for, but Apple's MPS backend is not available")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: object) -> torch.device:
    """Where a module's first parameter (or buffer) lives: its inputs must go there.

    The CPU for a module with neither, and for anything that is not a module (a plain function).
    """
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe(dev: torch.device | None = None) -> str:
    """A one-line description of the device, for a notebook's first cell."""
    dev = dev or device()
    if dev.type == "cuda":
        major, minor = gpu_capability(dev)
        return f"cuda ({torch.cuda.get_device_name(dev)}, compute capability {major}.{minor})"
    return dev.type


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX), several times faster than float32.

    Elsewhere bf16 arithmetic on the CPU is emulated and slower than float32, so `preset` picks a
    bf16 recipe only where this is true.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


# ---------------------------------------------------------------- what a GPU can do
# bf16 tensor cores arrived with Ampere (compute capability 8.0: A100, A10G, RTX 30xx, L4, H100).
# Older GPUs (a Colab T4 is 7.5, a V100 7.0) run bf16 only by slow emulation, although
# `torch.cuda.is_bf16_supported()` answers True for them, so the course asks for the capability.
BF16_MIN_CAPABILITY = (8, 0)
# torch.compile generates GPU code with Triton, which needs compute capability 7.0 (Volta) or newer.
COMPILE_MIN_CAPABILITY = (7, 0)


def gpu_capability(dev: torch.device) -> tuple[int, int]:
    """The CUDA compute capability (major, minor) of `dev`; a clear error for a device that is not CUDA."""
    if dev.type != "cuda":
        raise ValueError(f"compute capability is a CUDA notion; {dev} is not a CUDA device")
    major, minor = torch.cuda.get_device_capability(dev)
    return int(major), int(minor)


def supports_bf16(dev: torch.device) -> bool:
    """Whether `dev` computes bf16 matrix products in hardware, or at least correctly enough to choose it.

    CUDA: compute capability 8.0 or newer. CPU: yes (Intel AMX in hardware, elsewhere emulated and slow:
    see `cpu_has_bf16_matrix_units`). Apple MPS: not chosen by the course.
    """
    if dev.type == "cuda":
        return gpu_precision(gpu_capability(dev)) == "bf16"
    return dev.type == "cpu"


def gpu_precision(capability: tuple[int, int]) -> str:
    """The precision a CUDA GPU of this compute capability trains in: "bf16" from 8.0 on, else "fp16"."""
    return "bf16" if tuple(capability) >= BF16_MIN_CAPABILITY else "fp16"


def gpu_compiles(capability: tuple[int, int]) -> bool:
    """Whether `torch.compile` can generate code for a CUDA GPU of this compute capability (7.0 or newer)."""
    return tuple(capability) >= COMPILE_MIN_CAPABILITY


def default_precision(dev: torch.device) -> str:
    """What training computes its matrix products in on `dev` when asked for "auto".

    "bf16" on a CUDA GPU with bf16 tensor cores; "fp16" (with a gradient scaler) on an older CUDA
    GPU; "fp32" on a CPU and on Apple MPS.
    """
    if dev.type != "cuda":
        return "fp32"
    return gpu_precision(gpu_capability(dev))


def compile_plan(requested: bool, dev: torch.device) -> tuple[bool, str | None]:
    """Whether to try `torch.compile` on `dev`, and the one line to print when a request is declined."""
    if not requested:
        return False, None
    if dev.type == "mps":
        return False, "torch.compile is not used on Apple MPS; training runs eagerly"
    if dev.type == "cuda" and not gpu_compiles(gpu_capability(dev)):
        major, minor = gpu_capability(dev)
        return False, (f"torch.compile needs compute capability 7.0 or newer; {torch.cuda.get_device_name(dev)} "
                       f"has {major}.{minor}: training runs eagerly")
    return True, None
