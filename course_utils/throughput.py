"""Speed as a fraction of the hardware: peak FLOP/s, model-FLOPs utilisation, timing helpers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .validate import non_negative_float, positive_float, positive_int

# bf16 dense tensor-core peaks (FLOP/s) from the vendor's data sheets, matched on
# `torch.cuda.get_device_name()`. A GPU not listed gets no MFU ("unknown"), not a guess.
GPU_BF16_PEAKS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIE"), 756e12),
    (("H100", "HBM3"), 989e12),  # H100 SXM5 reports "NVIDIA H100 80GB HBM3"
    (("H100", "SXM"), 989e12),
    (("H200",), 989e12),
    (("A100",), 312e12),
)


def peak_flops(device_name: str) -> float | None:
    """The bf16 dense peak of a GPU by its name, or None when the course does not know it."""
    name = str(device_name).upper()
    for keys, peak in GPU_BF16_PEAKS:
        if all(k in name for k in keys):
            return peak
    return None


def mfu(tokens_per_second: float, flops_per_token: float, peak: float | None) -> float | None:
    """Model-FLOPs utilisation: achieved model FLOP/s divided by the hardware peak (None if unknown)."""
    non_negative_float(tokens_per_second, "tokens_per_second")
    positive_float(flops_per_token, "flops_per_token")
    if peak is None:
        return None
    positive_float(peak, "peak")
    return tokens_per_second * flops_per_token / peak


def format_mfu(value: float | None) -> str:
    """MFU as a percentage, or "unknown"."""
    return "unknown" if value is None else f"{100 * value:.1f} %"


def attention_cost(lengths: list[int], d: int = 64, heads: int = 4, batch: int = 1,
                   repeats: int = 3) -> dict[str, list[float]]:
    """Time (best of `repeats`) and score-matrix memory of explicit causal self-attention at each length.

    The scores Q·Kᵀ form a (batch, heads, T, T) tensor: its bytes are read off the tensor itself.
    """
    if not lengths:
        raise ValueError("lengths is empty: give at least one sequence length")
    lengths = [positive_int(t, "each length") for t in lengths]
    positive_int(repeats, "repeats")
    g = torch.Generator().manual_seed(0)
    seconds, mbytes = [], []
    for t in lengths:
        q, k, v = (torch.randn(batch, heads, t, d // heads, generator=g) for _ in range(3))
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
            mask = torch.ones(t, t, dtype=torch.bool).tril()
            out = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v
            best = min(best, time.perf_counter() - start)
        assert out.shape == v.shape
        seconds.append(best)
        mbytes.append(scores.element_size() * scores.nelement() / 2**20)
    return {"length": [int(t) for t in lengths], "seconds": seconds, "score_mib": mbytes}


def best_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """The shortest wall-clock time of `repeats` calls of `fn` (seconds): robust to a busy machine."""
    positive_int(repeats, "repeats")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
