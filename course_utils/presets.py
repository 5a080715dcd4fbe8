"""Named model shapes and training recipes for the CPU and the GPU; `preset()` picks one for this machine."""

from __future__ import annotations

from .runtime import cpu_has_bf16_matrix_units, device

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
