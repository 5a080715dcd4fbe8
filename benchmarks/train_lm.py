"""Training speed of the course Transformer: tokens/s, MFU, time to a target validation loss; prints JSON.

CPU (the default without a GPU): on the course corpus at the reference shape (4 layers, 4 heads,
128 dims, context 64, batch 12) it runs, side by side in one process,
  1. a plain PyTorch GPT of that shape (the yardstick for throughput),
  2. the course's loop with the reference recipe (AdamW 1e-3 → 1e-4 by cosine over 2000 steps,
     warm-up 100, β2 0.99, weight decay 0.1, clipping 1.0), recording its best validation loss,
  3. the course's default CPU recipe (`runtime.preset("cpu")`), stopped as soon as its validation
     loss reaches that best loss,
and reports throughput, both wall times (validation excluded, the same fixed windows for both)
and their ratio, and the peak memory of the process.

GPU: the `gpu` preset (6 layers, 6 heads, 384 dims, context 256, batch 64), bf16 autocast, fused
AdamW and `torch.compile`: tokens/s, MFU against the GPU's bf16 dense peak, time to `--target`.

    python benchmarks/train_lm.py [--device cpu|cuda] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import CharTokenizer, python_docs_text, random_batch, train_val_split
from course_utils.models import Transformer, TransformerConfig
from course_utils.runtime import describe, device, preset
from course_utils.train import TrainConfig, format_mfu, train

EVAL_WINDOWS = 256  # 16 384 validation tokens at context 64, identical for every run
THROUGHPUT_TARGET = 29_000  # tokens/s of a plain PyTorch GPT of the reference shape on the 2-core machine


class PlainGPT(nn.Module):
    """A straightforward GPT: the usual modules, per-tensor AdamW, no tricks."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"ln1": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d), "proj": nn.Linear(d, d),
                           "ln2": nn.LayerNorm(d), "fc": nn.Linear(d, 4 * d), "out": nn.Linear(4 * d, d)})
            for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, t = x.shape
        h = self.tok(x) + self.pos(torch.arange(t))
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["ln1"](h)).split(h.shape[-1], dim=2)
            q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, -1)
            h = h + blk["proj"](a)
            h = h + blk["out"](F.gelu(blk["fc"](blk["ln2"](h))))
        logits = self.head(self.ln(h))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))


def plain_tokens_per_second(tokens, vocab: int, steps: int, generator: torch.Generator) -> float:
    """Throughput of PlainGPT at the reference shape and recipe (timed after 10 warm-up steps)."""
    model = PlainGPT(vocab, 128, 4, 4, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    for i in range(steps + 10):
        if i == 10:
            start = time.perf_counter()
        x, y = random_batch(tokens, 64, 12, generator)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return steps * 12 * 64 / (time.perf_counter() - start)


def run(model_kwargs: dict, train_kwargs: dict, vocab: int, tr, va, dev: torch.device) -> tuple:
    model = Transformer(TransformerConfig(vocab_size=vocab, **model_kwargs), seed=0)
    config = TrainConfig(**{**train_kwargs, "device": str(dev), "progress": False, "eval_windows": EVAL_WINDOWS})
    return model, train(model, tr, va, config)


def summary(model: Transformer, h, config: dict) -> dict:
    return {
        "recipe": {k: v for k, v in config.items() if k not in ("eval_every", "target_loss")},
        "steps": h.steps[-1],
        "tokens": h.steps[-1] * config["batch_size"] * model.config.context,
        "tokens_per_second": round(h.tokens_per_second),
        "seconds": round(h.seconds, 2),
        "best_val_loss": round(h.best_val_loss, 4),
        "final_val_loss": round(h.val_loss[-1], 4),
        "val_curve": [[s, round(v, 4)] for s, v in zip(h.val_steps, h.val_loss, strict=True)],
    }


def peak_memory_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def bench_cpu(args, dev) -> dict:
    text = python_docs_text()
    tok = CharTokenizer.from_text(text)
    tr, va = train_val_split(tok.encode(text), 0.1)
    ref, default = preset("cpu-reference"), preset("cpu")
    # The lesson's 600-step schedule ends before the reference's best loss; the same recipe on a
    # schedule twice as long is given the chance to reach it (and stops as soon as it does).
    default["train"]["iterations"] *= 2
    if args.quick:  # a smoke run: a tenth of the work, same code paths
        ref["train"].update(iterations=200, warmup=10, eval_every=20)
        default["train"].update(iterations=120, warmup=5, eval_every=5)
    load_before = os.getloadavg()
    plain = plain_tokens_per_second(tr, tok.vocab_size, 30 if args.quick else 300, torch.Generator().manual_seed(1))

    ref_model, ref_h = run(ref["model"], ref["train"], tok.vocab_size, tr, va, dev)
    target = ref_h.best_val_loss
    default["train"]["target_loss"] = target
    default["train"]["eval_every"] = min(default["train"]["eval_every"], 20)  # find the crossing closely
    model, h = run(default["model"], default["train"], tok.vocab_size, tr, va, dev)
    ratio = h.seconds / ref_h.seconds
    memory = peak_memory_mb(dev)
    return {
        "benchmark": "train_lm",
        "device": describe(dev),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
        "corpus": {"name": "Python documentation", "train_tokens": len(tr), "val_tokens": len(va),
                   "vocab_size": tok.vocab_size, "val_windows": EVAL_WINDOWS},
        "parameters": ref_model.n_params(),
        "flops_per_token": ref_model.flops_per_token(),
        "plain_pytorch_tokens_per_second": round(plain),
        "tokens_per_second": round(ref_h.tokens_per_second),
        "speedup_vs_plain": round(ref_h.tokens_per_second / plain, 3),
        "mfu": format_mfu(ref_h.mfu),
        "reference": summary(ref_model, ref_h, ref["train"]),
        "default": {**summary(model, h, default["train"]), "target_val_loss": round(target, 4),
                    "reached_target": h.reached_target, "seconds_to_target": round(h.seconds, 2)},
        "wall_time_to_target_seconds": round(h.seconds, 2),
        "final_val_loss": round(h.val_loss[-1], 4),
        "time_ratio_default_vs_reference": round(ratio, 3),
        "token_ratio_default_vs_reference": round(h.steps[-1] * default["train"]["batch_size"]
                                                  / (ref_h.steps[-1] * ref["train"]["batch_size"]), 3),
        "note": "seconds exclude validation (the same fixed windows for every run); the machine's "
                "load average is reported because other processes change every timing",
        "peak_memory_mb": round(memory, 1),
        "targets_met": {
            f"tokens_per_second >= {THROUGHPUT_TARGET}": ref_h.tokens_per_second >= THROUGHPUT_TARGET,
            "tokens_per_second >= plain": ref_h.tokens_per_second >= plain,
            "time_ratio <= 0.5": h.reached_target and ratio <= 0.5,
            "peak_memory < 1.5 GB": memory < 1536,
        },
    }


def bench_gpu(args, dev) -> dict:
    text = python_docs_text()
    tok = CharTokenizer.from_text(text)
    tr, va = train_val_split(tok.encode(text), 0.1)
    p = preset("gpu")
    if args.quick:
        p["train"].update(iterations=200, warmup=20, eval_every=50)
    p["train"].update(target_loss=args.target, eval_every=50, compile=not args.no_compile)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, **p["model"]), seed=0)
    h = train(model, tr, va, TrainConfig(**{**p["train"], "device": str(dev), "progress": False}))
    return {
        "benchmark": "train_lm",
        "device": describe(dev),
        "quick": args.quick,
        "parameters": model.n_params(),
        "flops_per_token": model.flops_per_token(),
        "tokens_per_second": round(h.tokens_per_second),
        "mfu": format_mfu(h.mfu),
        "target_val_loss": args.target,
        "reached_target": h.reached_target,
        "wall_time_to_target_seconds": round(h.seconds, 2) if h.reached_target else None,
        "train_seconds": round(h.seconds, 2),
        "total_seconds_including_compile_and_validation": round(time.perf_counter() - start, 2),
        "final_val_loss": round(h.val_loss[-1], 4),
        "val_curve": [[s, round(v, 4)] for s, v in zip(h.val_steps, h.val_loss, strict=True)],
        "peak_memory_mb": round(peak_memory_mb(dev), 1),
        "recipe": p,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--target", type=float, default=1.45, help="GPU: target validation loss (nats/token)")
    parser.add_argument("--no-compile", action="store_true", help="GPU: skip torch.compile")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be positive")
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = device(args.device)
    result = bench_gpu(args, dev) if dev.type == "cuda" else bench_cpu(args, dev)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
