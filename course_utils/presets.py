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
    # A GPU-sized model (10.7M parameters at V ≈ 114): "auto" precision (bf16 on a GPU with bf16 tensor
    # cores, fp16 with a gradient scaler on an older one), fused AdamW, compilation asked for.
    # Passes over the data: 1000 steps × 64 windows × 256 tokens = 16.4M tokens; the corpus of
    # Python's documentation and the standard library's docstrings has 2.02M training characters on
    # Python 3.11 and 1.73M on 3.12, so 8-10 passes. With dropout 0.1 the validation loss still falls at
    # every evaluation there (measured on an H200 with Python 3.12: 2.67 at step 100, 1.23 at step 1000)
    # (on the documentation alone, 418k characters, it would be 39 passes, and the model would overfit).
    "gpu": {
        "data": {"corpus": "python-docs+docstrings"},
        "model": {"n_layers": 6, "n_heads": 6, "d_model": 384, "context": 256, "dropout": 0.1},
        "train": {"iterations": 1000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100,
                  "betas": (0.9, 0.99), "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 100,
                  "compile": True},
    },
}


# Other CPUs, in float32: a 2-block model of width 128 (half the reference's depth; in float32 the
# cost per token follows the layers) at a higher peak rate on a shorter schedule. Tuned so that it
# reaches the reference recipe's best validation loss in under half its time (benchmarks/train_lm.py
# measures it with `--preset cpu-fp32`): ~1,000 steps of 16 windows, 1.0M tokens at 2.6 MFLOPs each,
# against the reference's 1.5M tokens at 5.2 MFLOPs each, about a third of the reference's compute.
_PRESETS["cpu-fp32"] = {
    "model": {"n_layers": 2, "n_heads": 4, "d_model": 128, "context": 64},
    "train": {"iterations": 1200, "batch_size": 16, "lr": 6e-3, "min_lr": 6e-4, "warmup": 50,
              "betas": (0.9, 0.99), "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 100,
              "precision": "fp32"},
}
for _recipe in _PRESETS.values():  # the corpus: Python's documentation unless a preset names another
    _recipe.setdefault("data", {"corpus": "python-docs"})


def cpu_preset_name() -> str:
    """The CPU preset for this machine: 'cpu' where it has bf16 matrix units, else 'cpu-fp32'."""
    return "cpu" if cpu_has_bf16_matrix_units() else "cpu-fp32"


def available_presets() -> list[str]:
    """The names `preset` accepts."""
    return list(_PRESETS)


def preset(name: str | None = None) -> dict[str, dict]:
    """A model shape and training recipe by name ('cpu', 'cpu-fp32', 'cpu-reference', 'gpu').

    None picks by device: 'gpu' on CUDA; on a CPU, 'cpu' where it has bf16 matrix units and
    'cpu-fp32' elsewhere. Returns a fresh dict {"data": {...}, "model": {...}, "train": {...}}: pass
    `text.corpus(p["data"]["corpus"])`, `TransformerConfig(vocab_size=V, **p["model"])` and
    `TrainConfig(**p["train"])`.
    """
    if name is None:
        name = "gpu" if device().type == "cuda" else cpu_preset_name()
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; use one of {', '.join(_PRESETS)}")
    return {part: dict(values) for part, values in _PRESETS[name].items()}
