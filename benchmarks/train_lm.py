"""Training speed of the course Transformer: tokens/s, MFU, time to a target validation loss; prints JSON.

CPU (the default without a GPU): on the course corpus at the reference shape (4 layers, 4 heads,
128 dims, context 64, batch 12) it runs, side by side in one process,
  1. a plain PyTorch GPT of that shape (GPT-2 initialisation, per-tensor AdamW, float32) trained
     with the reference recipe (AdamW 1e-3 → 1e-4 by cosine over 2000 steps, warm-up 100,
     β2 0.99, weight decay 0.1, clipping 1.0): its tokens/s, wall time and best validation loss;
  2. the course's loop at the reference shape and recipe, for throughput only, in the default
     CPU precision (bf16 autocast where the CPU has bf16 matrix units, else float32) and in float32;
  3. each preset named by --preset (default: both CPU recipes, "cpu" and "cpu-fp32", on a CPU with
     bf16 matrix units; "cpu-fp32" alone elsewhere, where bf16 is emulated), stopped as soon as its
     validation loss reaches the plain GPT's best,
and reports the throughputs, the wall times (validation excluded, the same fixed windows for
every run), each preset's time ratio to the reference, and the peak memory of the process. The
throughputs are medians of short runs of the three loops taken in turn, so that all meet the same
conditions on a machine that other programs share.

GPU: the `gpu` preset (6 layers, 6 heads, 384 dims, context 256, dropout 0.1, batch 64, on the
documentation and the standard library's docstrings), in the GPU's precision (bf16 from compute
capability 8.0, else fp16 with a gradient scaler), fused AdamW and `torch.compile`: tokens/s,
achieved TFLOP/s, MFU against the GPU's dense peak in that precision, time to `--target`.

    python benchmarks/train_lm.py [--device cpu|cuda] [--threads N] [--preset NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models import Transformer, TransformerConfig
from course_utils.presets import available_presets, cpu_preset_name, preset
from course_utils.runtime import cpu_has_bf16_matrix_units, describe, device
from course_utils.text import CharTokenizer, corpus, python_docs_text, random_batch, train_val_split
from course_utils.throughput import format_mfu
from course_utils.train import TrainConfig, evaluate, learning_rate, train

EVAL_WINDOWS = 256  # 16 384 validation tokens at context 64, identical for every run
THROUGHPUT_TARGET = 29_000  # tokens/s the issue gives for a plain PyTorch GPT of the reference shape here


class PlainGPT(nn.Module):
    """A straightforward GPT: the usual modules, GPT-2 initialisation, float32, no tricks."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int, seed: int = 0) -> None:
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
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.ndim == 1:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)  # norm scales 1, shifts and biases 0
                else:
                    residual = name.endswith(("proj.weight", "out.weight"))
                    std = 0.02 / math.sqrt(2 * layers) if residual else 0.02
                    p.copy_(torch.randn(p.shape, generator=g) * std)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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


def train_plain(tokens, val, vocab: int, recipe: dict, windows: int = EVAL_WINDOWS) -> dict:
    """PlainGPT trained with `recipe` (always in float32): seconds and tokens/s (validation excluded),
    the validation curve.

    tokens/s leaves out the first 3 steps (cold caches), as the course loop's does.
    """
    config = TrainConfig(**recipe, progress=False)
    model = PlainGPT(vocab, 128, 4, 4, 64)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=config.betas)
    generator = torch.Generator().manual_seed(config.seed)
    val_steps, val_loss, seconds, warm = [], [], 0.0, 0.0
    for step in range(config.iterations):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, config)
        x, y = random_batch(tokens, 64, config.batch_size, generator)
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        seconds += time.perf_counter() - t0
        if step == 2:
            warm = seconds
        if (step + 1) % config.eval_every == 0 or step + 1 == config.iterations:
            val_steps.append(step + 1)
            val_loss.append(evaluate(model, val, 64, windows, precision="fp32"))
    return {
        "steps": config.iterations,
        "tokens": config.iterations * config.batch_size * 64,
        "tokens_per_second": round((config.iterations - 3) * config.batch_size * 64 / (seconds - warm)),
        "seconds": round(seconds, 2),
        "best_val_loss": round(min(val_loss), 4),
        "final_val_loss": round(val_loss[-1], 4),
        "val_curve": [[s, round(v, 4)] for s, v in zip(val_steps, val_loss, strict=True)],
        "_best": min(val_loss),
        "_seconds": seconds,
    }


def run(model_kwargs: dict, train_kwargs: dict, vocab: int, tr, va, dev: torch.device,
        windows: int = EVAL_WINDOWS) -> tuple:
    model = Transformer(TransformerConfig(vocab_size=vocab, **model_kwargs), seed=0)
    config = TrainConfig(**{**train_kwargs, "device": str(dev), "progress": False, "eval_windows": windows})
    return model, train(model, tr, va, config)


def summary(model: Transformer, h, config: dict) -> dict:
    return {
        "model": {k: getattr(model.config, k) for k in ("n_layers", "n_heads", "d_model", "context")},
        "parameters": model.n_params(),
        "recipe": {k: v for k, v in config.items() if k not in ("eval_every", "target_loss")},
        "precision": h.precision,
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


def throughputs(ref: dict, precision: str, steps: int, rounds: int, vocab: int, tr, va, dev,
                names: list[str] = ()) -> dict:
    """Median tokens/s of the plain GPT and of the course loop at the reference shape and recipe (in
    `precision` and in float32), and of each preset in `names` with its own model and recipe, from
    `rounds` interleaved runs of `steps` steps each, so that all of them meet the same conditions on
    a machine that other programs share."""
    recipe = {**ref["train"], "iterations": steps, "eval_every": steps}
    samples: dict[str, list[float]] = {"plain": [], precision: [], "fp32": [], **{f"preset {n}": [] for n in names}}
    for _ in range(rounds):
        samples["plain"].append(train_plain(tr, va, vocab, recipe, windows=16)["tokens_per_second"])
        for p in dict.fromkeys((precision, "fp32")):
            h = run(ref["model"], {**recipe, "precision": p}, vocab, tr, va, dev, windows=16)[1]
            samples[p].append(h.tokens_per_second)
        for name in names:
            own = preset(name)
            h = run(own["model"], {**own["train"], "iterations": steps, "eval_every": steps}, vocab, tr, va, dev,
                    windows=16)[1]
            samples[f"preset {name}"].append(h.tokens_per_second)
    return {k: statistics.median(v) for k, v in samples.items()}


def cpu_model_name() -> str:
    """The CPU's model name as the kernel reports it (what `lscpu` prints), else what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_presets() -> list[str]:
    """The CPU presets to time by default: both where the CPU has bf16 matrix units, else 'cpu-fp32'."""
    return ["cpu", "cpu-fp32"] if cpu_has_bf16_matrix_units() else ["cpu-fp32"]


def comparable(name: str) -> bool:
    """Whether a preset trains on the reference's corpus and context, so that its time to target compares."""
    p = preset(name)
    return p["data"]["corpus"] == "python-docs" and p["model"]["context"] == 64


def time_to_target(name: str, target: float, ref_seconds: float, ref_tokens: int, quick: bool, vocab: int,
                   tr, va, dev, windows: int) -> dict:
    """Train preset `name` until its validation loss reaches `target`; time and tokens against the reference."""
    p = preset(name)
    if quick:  # a smoke run: a few per cent of the work, same code paths
        p["train"].update(iterations=60, warmup=5, eval_every=5)
    p["train"]["target_loss"] = target
    p["train"]["eval_every"] = min(p["train"]["eval_every"], 20)  # find the crossing closely
    model, h = run(p["model"], p["train"], vocab, tr, va, dev, windows)
    # The run validated in its own precision; the target was set in float32, so check it there too.
    final_fp32 = evaluate(model, va, model.config.context, windows, precision="fp32")
    ratio = h.seconds / ref_seconds
    tokens = h.steps[-1] * p["train"]["batch_size"] * model.config.context
    return {**summary(model, h, p["train"]), "target_val_loss": round(target, 4),
            "reached_target": h.reached_target, "seconds_to_target": round(h.seconds, 2),
            "final_val_loss_fp32": round(final_fp32, 4), "reached_target_in_fp32": final_fp32 <= target,
            "flops_per_token": model.flops_per_token(),
            "time_ratio_vs_reference": round(ratio, 3), "token_ratio_vs_reference": round(tokens / ref_tokens, 3),
            "meets_time_ratio_0.5": bool(h.reached_target and final_fp32 <= target and ratio <= 0.5)}


def bench_cpu(args, dev) -> dict:
    text = python_docs_text()
    tok = CharTokenizer.from_text(text)
    tr, va = train_val_split(tok.encode(text), 0.1)
    ref = preset("cpu-reference")
    names = args.preset or default_presets()
    for name in names:
        if not comparable(name):
            raise SystemExit(f"preset {name!r} trains on another corpus or context than the reference: "
                             "time it on its own device (--device cuda for 'gpu')")
    throughput_steps, rounds, windows = 100, 5, EVAL_WINDOWS
    if args.quick:  # a smoke run: a few per cent of the work, same code paths
        ref["train"].update(iterations=100, warmup=10, eval_every=20)
        throughput_steps, rounds, windows = 10, 2, 16
    load_before = os.getloadavg()
    plain = train_plain(tr, va, tok.vocab_size, ref["train"], windows)
    precision = preset(cpu_preset_name())["train"]["precision"]
    speed = throughputs(ref, precision, throughput_steps, rounds, tok.vocab_size, tr, va, dev, names)
    course_tps, plain_tps = speed[precision], speed["plain"]

    target = plain["_best"]
    ref_tokens = plain["steps"] * ref["train"]["batch_size"] * 64
    timed = {name: time_to_target(name, target, plain["_seconds"], ref_tokens, args.quick, tok.vocab_size,
                                  tr, va, dev, windows) for name in names}
    for name, r in timed.items():
        # The same ratio from throughputs measured side by side: tokens to target at the preset's
        # tokens/s against the reference's tokens at the plain GPT's. Less exposed to other programs.
        r["tokens_per_second_interleaved"] = round(speed[f"preset {name}"])
        r["time_ratio_from_interleaved_throughput"] = round(
            r["token_ratio_vs_reference"] * plain_tps / speed[f"preset {name}"], 3)
    memory = peak_memory_mb(dev)
    reference_model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, **ref["model"]))
    default = timed.get(cpu_preset_name())
    return {
        "benchmark": "train_lm",
        "device": describe(dev),
        "cpu": cpu_model_name(),
        "cpu_bf16_matrix_units": cpu_has_bf16_matrix_units(),
        "machine_default_preset": cpu_preset_name(),
        "threads": torch.get_num_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
        "corpus": {"name": "Python documentation", "train_tokens": len(tr), "val_tokens": len(va),
                   "vocab_size": tok.vocab_size, "val_windows": windows},
        "parameters": reference_model.n_params(),
        "flops_per_token": reference_model.flops_per_token(),
        "throughput_runs": f"median of {rounds} interleaved runs of {throughput_steps} steps each",
        "plain_pytorch_tokens_per_second": round(plain_tps),
        "tokens_per_second": round(course_tps),
        "tokens_per_second_precision": precision,
        "tokens_per_second_fp32": round(speed["fp32"]),
        "speedup_vs_plain": round(course_tps / plain_tps, 3),
        "mfu": "unknown",  # a CPU has no agreed peak in the course's table
        "reference_plain_gpt": {k: v for k, v in plain.items() if not k.startswith("_")},
        "presets": timed,
        "time_ratios": {name: r["time_ratio_vs_reference"] for name, r in timed.items()},
        "time_ratios_from_interleaved_throughput": {name: r["time_ratio_from_interleaved_throughput"]
                                                    for name, r in timed.items()},
        "default": default,
        "time_ratio_default_vs_reference": default["time_ratio_vs_reference"] if default else None,
        "note": "seconds exclude validation (the same fixed windows for every run); the machine's "
                "load average is reported because other processes change every timing",
        "peak_memory_mb": round(memory, 1),
        "targets_met": {
            f"tokens_per_second >= {THROUGHPUT_TARGET}": course_tps >= THROUGHPUT_TARGET,
            "tokens_per_second >= plain": course_tps >= plain_tps,
            **{f"time_ratio <= 0.5 ({name})": r["meets_time_ratio_0.5"] for name, r in timed.items()},
            "peak_memory < 1.5 GB": memory < 1536,
        },
    }


def bench_gpu(args, dev) -> dict:
    p = preset((args.preset or ["gpu"])[-1])
    text = corpus(p["data"]["corpus"])
    tok = CharTokenizer.from_text(text)
    tr, va = train_val_split(tok.encode(text), 0.1)
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
        "precision": h.precision,
        "compiled": h.compiled,
        "tokens_per_second": round(h.tokens_per_second),
        "achieved_tflops": round(h.flops_per_second / 1e12, 2),
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
    parser.add_argument("--preset", action="append", choices=available_presets(),
                        help="a preset to time (repeat for several; default: 'cpu' and 'cpu-fp32' on a CPU with "
                             "bf16 matrix units, else 'cpu-fp32'; 'gpu' on CUDA)")
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
