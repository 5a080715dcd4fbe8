"""Reproducible set-up: seeds, deterministic algorithms, thread count, printing, device choice."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def setup(seed: int = 0, threads: int | None = 1, deterministic: bool = True) -> torch.Generator:
    """Seed every random source, fix the thread count and print precision; return a seeded generator.

    `threads=None` leaves PyTorch's own choice (all cores). The returned `torch.Generator`
    lives on the CPU; pass it to every random draw so a cell gives the same result each run.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
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


# ---------------------------------------------------------------- size presets for chapter 05
# Each preset holds a Transformer shape ("model", keyword arguments of `TransformerConfig`
# without the vocabulary) and a training recipe ("train", keyword arguments of `TrainConfig`).
_PRESETS: dict[str, dict[str, dict]] = {
    # The course's default CPU recipe where the CPU multiplies bf16 matrices in hardware: a wider,
    # shallower model than the reference shape (the products are cheap there; the per-step work
    # around them is not), a higher peak learning rate, a shorter schedule, bf16 autocast.
    # benchmarks/train_lm.py compares it with the reference recipe.
    "cpu": {
        "model": {"n_layers": 3, "n_heads": 6, "d_model": 192, "context": 64},
        "train": {"iterations": 1000, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup": 50,
                  "betas": (0.9, 0.99), "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 100,
                  "precision": "bf16"},
    },
    # The reference recipe: AdamW 1e-3 → 1e-4 by cosine over 2000 steps, in float32.
    "cpu-reference": {
        "model": {"n_layers": 4, "n_heads": 4, "d_model": 128, "context": 64},
        "train": {"iterations": 2000, "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100,
                  "betas": (0.9, 0.99), "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 100,
                  "precision": "fp32"},
    },
    # A GPU-sized model: bf16 autocast and fused AdamW come with the device, compilation is asked for.
    "gpu": {
        "model": {"n_layers": 6, "n_heads": 6, "d_model": 384, "context": 256},
        "train": {"iterations": 2000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100,
                  "betas": (0.9, 0.99), "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 250,
                  "compile": True},
    },
}

# The same model on other CPUs, in float32, on a schedule short enough for a lesson there.
_PRESETS["cpu-fp32"] = {
    "model": dict(_PRESETS["cpu"]["model"]),
    "train": {**_PRESETS["cpu"]["train"], "iterations": 600, "eval_every": 50, "precision": "fp32"},
}


def cpu_preset_name() -> str:
    """The CPU preset for this machine: 'cpu' where it has bf16 matrix units, else 'cpu-fp32'."""
    return "cpu" if cpu_has_bf16_matrix_units() else "cpu-fp32"


def preset(name: str | None = None) -> dict[str, dict]:
    """A model shape and training recipe by name ('cpu', 'cpu-fp32', 'cpu-reference', 'gpu').

    None picks by device: 'gpu' on CUDA; on a CPU, 'cpu' where it has bf16 matrix units and
    'cpu-fp32' elsewhere. Returns a fresh dict {"model": {...}, "train": {...}} to pass as
    `TransformerConfig(vocab_size=V, **p["model"])` and `TrainConfig(**p["train"])`.
    """
    if name is None:
        name = "gpu" if device().type == "cuda" else cpu_preset_name()
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; use one of {', '.join(_PRESETS)}")
    return {part: dict(values) for part, values in _PRESETS[name].items()}
