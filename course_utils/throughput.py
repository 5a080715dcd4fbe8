"""Speed as a fraction of the hardware: peak FLOP/s, model-FLOPs utilisation, timing helpers."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .validate import non_negative_float, positive_float, positive_int

# Dense 16-bit tensor-core peaks (FLOP/s, no structured sparsity, products accumulated in float32, as
# autocast computes them), matched on the words of `torch.cuda.get_device_name()`. Rows are tried in
# order, so a specific model (H100 PCIe) comes before its family (H100). A row's second number is
# its bf16 peak, None where the GPU has no bf16 tensor cores (compute capability < 8.0).
# A GPU not listed gets no MFU ("unknown"), never a guess; laptop parts are left out (their clocks
# depend on the machine's power limit).
GPU_PEAKS: tuple[tuple[tuple[str, ...], float, float | None], ...] = (
    # words in the name       fp16 peak  bf16 peak
    (("H100", "PCIE"), 756e12, 756e12),  # H100 data sheet: PCIe 1,513 TFLOP/s with sparsity
    (("H100", "NVL"), 835e12, 835e12),  # H100 data sheet: NVL 1,671 with sparsity
    (("H100",), 989e12, 989e12),  # H100 data sheet: SXM 1,979 with sparsity ("H100 80GB HBM3")
    (("GH200",), 989e12, 989e12),  # GH200 data sheet: the H100 SXM's tensor cores
    (("H200", "NVL"), 835e12, 835e12),  # H200 data sheet: NVL 1,671 with sparsity
    (("H200",), 989e12, 989e12),  # H200 data sheet: SXM 1,979 with sparsity
    (("A100",), 312e12, 312e12),  # A100 data sheet: 312 dense, every form factor and memory size
    (("A10G",), 70e12, 70e12),  # AWS's A10G (no NVIDIA data sheet): 70 dense, as cloud vendors list it
    (("A10",), 125e12, 125e12),  # A10 data sheet: 250 with sparsity
    (("L40S",), 362e12, 362e12),  # L40S data sheet: 733 with sparsity
    (("L4",), 121e12, 121e12),  # L4 data sheet: 242 with sparsity
    (("T4",), 65e12, None),  # T4 data sheet: 65 TFLOP/s mixed precision (FP16/FP32); no bf16
    (("V100",), 125e12, None),  # V100 data sheet: 125 tensor TFLOP/s (SXM2; PCIe 112); no bf16
    (("RTX", "A6000"), 154.8e12, 154.8e12),  # RTX A6000 data sheet: 309.7 with sparsity
    (("RTX", "4090"), 165.2e12, 165.2e12),  # Ada whitepaper: FP16/BF16 tensor, FP32 accumulate
    (("RTX", "4080"), 97.5e12, 97.5e12),  # Ada whitepaper: FP16/BF16 tensor, FP32 accumulate
    (("RTX", "3090"), 71e12, 71e12),  # GA102 whitepaper: FP16/BF16 tensor, FP32 accumulate
    (("RTX", "3080"), 59.5e12, 59.5e12),  # GA102 whitepaper: FP16/BF16 tensor, FP32 accumulate
)


def peak_flops(device_name: str, precision: str = "bf16") -> float | None:
    """The dense tensor-core peak (FLOP/s) of a GPU by its name in `precision` ("bf16" or "fp16").

    None when the course does not know the GPU, when it lacks that precision's tensor cores, and for
    "fp32" (MFU is quoted against the 16-bit peak that mixed-precision training targets).
    """
    words = set(re.split(r"[^A-Z0-9]+", str(device_name).upper()))
    if precision not in ("bf16", "fp16") or "LAPTOP" in words:
        return None
    for keys, fp16, bf16 in GPU_PEAKS:
        if all(k in words for k in keys):
            return fp16 if precision == "fp16" else bf16
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


def format_speed(tokens_per_second: float, flops_per_second: float, utilisation: float | None) -> str:
    """One line: tokens/s, achieved model TFLOP/s (always) and MFU (where the peak is known)."""
    non_negative_float(tokens_per_second, "tokens_per_second")
    non_negative_float(flops_per_second, "flops_per_second")
    return (f"{tokens_per_second:,.0f} tokens/s · {flops_per_second / 1e12:.3g} TFLOP/s achieved · "
            f"MFU {format_mfu(utilisation)}")


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
