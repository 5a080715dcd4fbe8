"""Reproducible set-up: seeds, deterministic algorithms, thread count, printing, device choice."""

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
        return f"cuda ({torch.cuda.get_device_name(dev)})"
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
