"""The course's one training loop: source batches, AdamW, warm-up + cosine, clipping, validation, checkpoints, speed."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed
from .distributed import Batch, BatchSource, batch_pair
from .losses import IGNORE_INDEX
from .models import TransformerConfig, flops_per_token, next_token_nll
from .runtime import compile_plan, default_precision, gpu_capability, model_device, supports_bf16
from .runtime import device as choose_device
from .text import random_batch
from .throughput import mfu, peak_flops
from .validate import (
    int_at_least,
    non_negative_float,
    number_in,
    one_of,
    positive_float,
    positive_int,
)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# Held-out data: a 1-D tensor of token ids, or a function scoring the model (its held-out loss).
Validation = torch.Tensor | Callable[[torch.nn.Module], float]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: steps, batch, learning-rate schedule, AdamW, clipping, validation, device, checkpoints."""

    iterations: int = 2000
    batch_size: int = 12  # windows per batch when training on a token stream
    context: int | None = None  # window length on a token stream; None: the model's context
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.1
    grad_clip: float | None = 1.0  # None: no clipping
    eval_every: int = 100
    eval_windows: int = 64  # validation scores this many fixed windows of `context` tokens
    target_loss: float | None = None  # stop once the validation NLL is at or below this
    device: str | None = None  # None: cuda, then mps, then cpu
    compile: bool = False  # try torch.compile; a failure falls back to eager execution with one printed line
    # "auto": bf16 autocast on a GPU with bf16 tensor cores, fp16 with a gradient scaler on an older
    # GPU, float32 on a CPU and on Apple MPS (`runtime.default_precision`); or "bf16", "fp16", "fp32"
    precision: str = "auto"
    seed: int = 0  # seeds the batch generator (and dropout)
    checkpoint_path: str | None = None
    checkpoint_every: int | None = None
    stop_after: int | None = None  # end the run early after this many steps (simulates an interruption)
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "eval_every", "eval_windows"):
            positive_int(getattr(self, name), name)
        for name in ("context", "checkpoint_every", "stop_after"):  # None: not used
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name)
        int_at_least(self.warmup, "warmup", 0)
        int_at_least(self.seed, "seed", 0)
        number_in(self.min_lr, "min_lr", 0.0, positive_float(self.lr, "lr"))
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            number_in(beta, f"betas[{i}]", 0.0, 1.0, include_high=False)
        non_negative_float(self.weight_decay, "weight_decay")
        for name in ("grad_clip", "target_loss"):  # None: no clipping, no early stop
            if getattr(self, name) is not None:
                positive_float(getattr(self, name), name)
        if self.checkpoint_every is not None and self.checkpoint_path is None:
            raise ValueError("checkpoint_every needs a checkpoint_path to write to")
        _check_precision(self.precision)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Learning rate at `step` (0-based): linear warm-up to `lr`, then cosine decay to `min_lr`."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(1, config.iterations - config.warmup)
    progress = min(1.0, (step - config.warmup) / span)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))


@dataclass
class History:
    """What a run recorded: per-step training loss, learning rate and gradient norm, validation NLL, speed."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)  # before clipping (inf on an fp16 overflow)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    reached_target: bool = False
    tokens_per_second: float = float("nan")
    flops_per_second: float = float("nan")  # achieved model FLOP/s: tokens/s × training FLOPs per token
    mfu: float | None = None  # achieved FLOP/s over the GPU's peak in this precision; None where unknown
    seconds: float = 0.0  # training time of this process, validation excluded
    device: str = "cpu"
    precision: str = "fp32"  # what the forward pass computed its matrix products in
    compiled: bool = False  # whether the steps ran through torch.compile

    @property
    def best_val_loss(self) -> float:
        return min(self.val_loss) if self.val_loss else float("nan")


def optimizer_for(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW in two groups: weight decay on the matrices (the embeddings too), none on 1-D biases and norms.

    It uses PyTorch's fused kernel where this version of PyTorch has one for the model's device
    (CUDA; CPU from PyTorch 2.4), else the multi-tensor ("foreach") one: the same update either way.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    settings = {"lr": config.lr, "betas": config.betas}
    if _has_fused_adamw(model_device(model)):
        return torch.optim.AdamW(groups, **settings, fused=True)
    return torch.optim.AdamW(groups, **settings, foreach=True)


def _has_fused_adamw(dev: torch.device) -> bool:
    """Whether this PyTorch has a fused AdamW kernel for `dev` (CUDA; CPU from PyTorch 2.4)."""
    if dev.type == "cuda":
        return True
    if dev.type == "cpu":
        major, minor = (int(part) for part in torch.__version__.split(".")[:2])
        return (major, minor) >= (2, 4)
    return False


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    context: int,
    max_windows: int = 64,
    batch_size: int = 64,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    precision: str = "auto",
) -> float:
    """Mean next-token NLL (nats/token) over consecutive non-overlapping windows from the start of `tokens`.

    The windows are fixed, so every evaluation of a run scores the same text and draws no random numbers.
    `precision` is as in `TrainConfig` (the log-probabilities are always summed in float64).
    """
    n_windows = min((len(tokens) - 1) // context, max_windows)
    if n_windows < 1:
        raise ValueError(f"validation needs at least context + 1 = {context + 1} tokens, got {len(tokens)}")
    dev = model_device(model)
    precision = resolve_precision(precision, dev)
    was_training = model.training
    model.eval()
    total, count = torch.zeros((), dtype=torch.float64, device=dev), 0
    starts = torch.arange(n_windows) * context
    offsets = torch.arange(context + 1)
    for i in range(0, n_windows, batch_size):
        windows = tokens[starts[i:i + batch_size, None] + offsets].to(dev)
        with _autocast(dev, precision):
            x, y = windows[:, :-1], windows[:, 1:]
            loss = model.loss(x, y) if loss_fn is None else loss_fn(model, x, y)
        total += loss.double() * windows.shape[0]
        count += windows.shape[0]
    model.train(was_training)
    return float(total / count)


def _check_precision(precision: str) -> None:
    one_of(precision, PRECISIONS, "precision")


def resolve_precision(precision: str, dev: torch.device) -> str:
    """ "bf16", "fp16" or "fp32": what `precision` ("auto" or one of those) means on `dev`.

    "auto" follows `runtime.default_precision`; "bf16" on a CUDA GPU without bf16 tensor cores is an error.
    """
    _check_precision(precision)
    if precision == "auto":
        return default_precision(dev)
    if precision == "bf16" and dev.type == "cuda" and not supports_bf16(dev):
        major, minor = gpu_capability(dev)
        raise ValueError(f"precision 'bf16' needs compute capability 8.0 or newer; {torch.cuda.get_device_name(dev)} "
                         f"has {major}.{minor}: use 'fp16' (with a gradient scaler) or 'auto'")
    return precision


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(dev: torch.device, precision: str):
    """Autocast in bf16 or fp16 where `precision` asks for it (matrix products in 16 bits, the loss in float32).

    `precision` is what `resolve_precision` returned, so a step does not query the GPU again.
    Deterministic on a CPU: a run repeats bit for bit on the same machine in any precision.
    """
    dtype = _AUTOCAST_DTYPES.get(one_of(precision, ("bf16", "fp16", "fp32"), "precision"))
    return torch.autocast(device_type=dev.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def gradient_scaler(precision: str, dev: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training (its 5 exponent bits underflow small gradients), else None.

    The loss is multiplied by a large factor before the backward pass and the gradients divided by it
    before clipping and the step; a step whose gradients overflowed is skipped and the factor halved.
    """
    if resolve_precision(precision, dev) != "fp16":
        return None
    return torch.amp.GradScaler(dev.type)


def compiled(fn: Callable, requested: bool, dev: torch.device) -> tuple[Callable, Callable[[], bool]]:
    """`fn` through `torch.compile` where requested and supported, falling back to `fn` if compiling fails.

    Returns the function to call and a function saying whether compilation is in use. A declined
    request or a failure (no compiler, an unsupported GPU or Python) prints one line; training goes on.
    """
    use, reason = compile_plan(requested, dev)
    if reason is not None:
        print(reason)
    if not use:
        return fn, lambda: False
    state: dict[str, object] = {"fn": None, "ok": True}
    try:
        state["fn"] = torch.compile(fn)
    except Exception as exc:  # noqa: BLE001 - any failure to compile means: run eagerly
        _compile_failed(state, exc)

    def call(*args, **kwargs):
        if state["ok"]:
            try:
                return state["fn"](*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - compilation happens at the first call
                _compile_failed(state, exc)
        return fn(*args, **kwargs)

    return call, lambda: bool(state["ok"])


def _compile_failed(state: dict, exc: Exception) -> None:
    if state["ok"]:
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        print(f"torch.compile failed ({type(exc).__name__}: {first_line}); training runs eagerly")
    state["ok"] = False


def random_windows(tokens: torch.Tensor, context: int, batch_size: int) -> BatchSource:
    """The batch source of a token stream: `batch_size` random windows of `context` + 1 tokens each."""
    tokens = tokens.long()
    return lambda generator: random_batch(tokens, context, batch_size, generator)


def train(
    model: torch.nn.Module,
    data: torch.Tensor | BatchSource,
    val: Validation,
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> History:
    """Train `model` by maximum likelihood on batches from `data`; return its `History`.

    One step: draw a batch → forward pass → loss → backward pass → clip → optimizer step →
    zero the gradients. `data` is a 1-D tensor of token ids (random windows of `config.context`
    tokens, `config.batch_size` per batch) or a batch source: `source(generator)` returns
    (inputs, targets), two (B, T) tensors of ids, where a target equal to `losses.IGNORE_INDEX`
    does not count (prompt tokens and padding in fine-tuning). `val` is held-out token ids, scored
    on fixed windows, or a function of the model returning its held-out loss; it runs every
    `config.eval_every` steps and at the end, with the model in eval mode.
    With `resume=True` and an existing `config.checkpoint_path`, the run continues from the
    checkpoint and reproduces the uninterrupted run (bit for bit on CPU).
    `model` is a `Transformer` or any module with `.config.context`, `.config.vocab_size` and
    `.loss(x, y)`; `loss_fn(model, x, y)` replaces `model.loss` (for instance a masked-LM loss).
    Wrapped in `DistributedDataParallel`, the loss runs through the wrapper (`loss_fn(wrapper, x, y)`, or
    the next-token NLL of its logits) and is weighted so the averaged gradient is that of the global
    batch's mean NLL, which the history records; rank 0 alone writes checkpoints and shows progress.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    dev = choose_device(config.device)
    net = distributed.unwrap(model)  # the model itself, also inside a DistributedDataParallel wrapper
    model_context, vocab_size = net.config.context, net.config.vocab_size
    context = config.context or model_context
    if context > model_context:
        raise ValueError(f"context {context} is longer than the model's context of {model_context}")
    precision = resolve_precision(config.precision, dev)
    source = _batch_source(data, context, config.batch_size, vocab_size)
    validate = _validator(val, context, config.eval_windows, vocab_size, loss_fn, precision)

    net.to(dev)
    model.train()
    optimizer = optimizer_for(net, config)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    generator = torch.Generator().manual_seed(config.seed)  # batches are drawn on the CPU
    torch.manual_seed(config.seed)  # dropout
    history, start = History(device=str(dev), precision=precision), 0
    scaler = gradient_scaler(precision, dev)
    if resume and config.checkpoint_path and Path(config.checkpoint_path).exists():
        start = _load_checkpoint(config.checkpoint_path, net, optimizer, generator, history, config, scaler)
    base_loss = _loss_of(model, net, loss_fn)
    forward, is_compiled = compiled(base_loss, config.compile, dev)
    peak = peak_flops(torch.cuda.get_device_name(dev), precision) if dev.type == "cuda" else None

    end = config.iterations if config.stop_after is None else min(config.iterations, config.stop_after)
    skip = min(3, max(0, end - start - 1))  # steps left out of tokens/s: compilation, cold caches
    bar = tqdm(total=config.iterations, initial=start, disable=not (config.progress and distributed.is_main()),
               desc="training")
    pending: list[torch.Tensor] = []  # losses and gradient norms not yet copied to the host (no sync per step)
    paused = 0.0  # seconds spent validating and checkpointing
    t_start = t_skip = time.perf_counter()
    paused_at_skip = 0.0
    timed_tokens = timed_rows = 0  # what the steps after `skip` processed
    for step in range(start, end):
        lr = learning_rate(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = source(generator)
        if step == start:
            _check_batch(batch, model_context, vocab_size)
        x, y = (t.to(dev, non_blocking=True) for t in batch)
        with _autocast(dev, precision):
            loss = forward(x, y)
        # data-parallel: each worker differentiates its weighted loss and records the global batch's mean NLL
        weighted, loss = distributed.token_weighted(loss, y) if net is not model else (loss, loss)
        norm = _update(weighted, optimizer, params, config.grad_clip, scaler)
        done = step + 1
        history.steps.append(done)
        history.lr.append(lr)
        pending.append(torch.stack([loss.detach().float(), norm.float()]))
        if done - start > skip:
            timed_tokens, timed_rows = timed_tokens + x.numel(), timed_rows + x.shape[0]
        if done - start == skip:
            _sync(dev)
            t_skip, paused_at_skip = time.perf_counter(), paused

        evaluate_now = done % config.eval_every == 0 or done == config.iterations
        save_now = config.checkpoint_every is not None and done % config.checkpoint_every == 0
        if evaluate_now or save_now or done == end or len(pending) >= 10:
            losses, norms = torch.stack(pending).cpu().T.tolist()
            history.train_loss.extend(losses)
            history.grad_norm.extend(norms)
            pending.clear()
            bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", refresh=False)
        bar.update(1)
        if evaluate_now or save_now:
            t_pause = time.perf_counter()
            if evaluate_now:
                history.val_steps.append(done)
                history.val_loss.append(_held_out(net, validate, dev, precision))
                bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", val=f"{history.val_loss[-1]:.4f}",
                                refresh=False)
            if save_now:
                if distributed.is_main():  # every worker holds the same state
                    _save_checkpoint(config.checkpoint_path, net, optimizer, generator, history, done, config, scaler)
                distributed.barrier()
            paused += time.perf_counter() - t_pause
            if evaluate_now and config.target_loss is not None and history.val_loss[-1] <= config.target_loss:
                history.reached_target = True
                break
    _sync(dev)
    t_end = time.perf_counter()
    history.seconds = t_end - t_start - paused
    history.compiled = is_compiled()
    timed = (t_end - t_skip) - (paused - paused_at_skip)
    if timed_tokens > 0 and timed > 0:
        history.tokens_per_second = timed_tokens / timed
        flops = _flops_per_token(net, round(timed_tokens / timed_rows))
        if flops is not None:
            history.flops_per_second = history.tokens_per_second * flops
            history.mfu = mfu(history.tokens_per_second, flops, peak)
    bar.close()
    return history


def _update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
            grad_clip: float | None, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """Backward pass → clip → optimizer step → zero the gradients; returns the gradient norm before clipping.

    With a gradient scaler (fp16) the scaled loss is differentiated and the gradients unscaled first.
    """
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    # max_norm = inf measures the norm without changing a gradient (they are multiplied by exactly 1)
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip is not None else math.inf)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad()
    return norm.detach()


def _loss_of(model: torch.nn.Module, net: torch.nn.Module, loss_fn: Callable | None) -> Callable:
    """The step's loss of (x, y). A DistributedDataParallel wrapper's own forward must run (it prepares the
    gradient all-reduce), so there the default is the next-token NLL of the wrapper's logits
    (`models.next_token_nll`, as in `net.loss`)."""
    if loss_fn is not None:
        return lambda x, y: loss_fn(model, x, y)
    if net is model:
        return net.loss
    return lambda x, y: next_token_nll(model(x), y)


def _batch_source(data: torch.Tensor | BatchSource, context: int, batch_size: int, vocab_size: int) -> BatchSource:
    """`data` as a batch source: random windows of a token stream, or the caller's own source."""
    if isinstance(data, torch.Tensor):
        _check_tokens(data, "training", context, vocab_size)
        return random_windows(data, context, batch_size)
    if callable(data):
        return data
    raise ValueError(f"data must be a 1-D tensor of token ids or a batch source (a function of a "
                     f"torch.Generator), got {type(data).__name__}")


def _validator(val: Validation, context: int, windows: int, vocab_size: int,
               loss_fn: Callable | None, precision: str) -> Callable[[torch.nn.Module], float]:
    """`val` as a function of the model returning its held-out loss."""
    if isinstance(val, torch.Tensor):
        _check_tokens(val, "validation", context, vocab_size)
        return lambda model: evaluate(model, val, context, windows, loss_fn=loss_fn, precision=precision)
    if callable(val):
        return val
    raise ValueError(f"val must be a 1-D tensor of token ids or a function of the model, got {type(val).__name__}")


def _held_out(model: torch.nn.Module, validate: Callable[[torch.nn.Module], float],
              dev: torch.device, precision: str) -> float:
    """The held-out loss from `validate`, in eval mode, without gradients, in the run's precision."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), _autocast(dev, precision):
        value = float(validate(model))
    model.train(was_training)
    return value


def _check_tokens(tokens: torch.Tensor, name: str, context: int, vocab_size: int) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of token ids")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if len(tokens) < context + 1:
        raise ValueError(
            f"the {name} corpus has {len(tokens)} tokens, shorter than context + 1 = {context + 1}; "
            "use more text or a shorter context"
        )
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{name} holds token ids in {lo}..{hi}, outside the model's vocabulary 0..{vocab_size - 1}")


def _check_batch(batch: Batch, context: int, vocab_size: int) -> None:
    """A batch from a source: (B, T) integer inputs and targets, T within the model's context."""
    x, y = batch_pair(batch, "a batch source must return")
    if x.shape[1] > context:
        raise ValueError(f"a batch of {x.shape[1]} positions is longer than the model's context of {context}")
    for t, name in ((x, "inputs"), (y, "targets")):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"a batch's {name} must hold integer token ids, got dtype {t.dtype}")
    counted = y[y != IGNORE_INDEX]
    if ((x < 0) | (x >= vocab_size)).any() or ((counted < 0) | (counted >= vocab_size)).any():
        raise ValueError(f"a batch holds token ids outside the model's vocabulary 0..{vocab_size - 1} "
                         f"(targets may also be IGNORE_INDEX = {IGNORE_INDEX})")
    if counted.numel() == 0:
        raise ValueError(f"every target of the batch is IGNORE_INDEX = {IGNORE_INDEX}: nothing to learn from")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _flops_per_token(model: torch.nn.Module, context: int) -> float | None:
    """The model's training FLOPs per token at the context actually used, if it can tell."""
    config = getattr(model, "config", None)
    if not isinstance(config, TransformerConfig):
        return None
    return flops_per_token(replace(config, context=context), training=True)


def _save_checkpoint(path, model, optimizer, generator, history, step, config, scaler=None) -> None:
    """Everything a resumed run needs, written atomically (a crash never leaves half a file)."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "history": asdict(history),
        "config": asdict(config),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


_RESUMABLE_FIELDS = ("iterations", "batch_size", "context", "lr", "min_lr", "warmup", "betas",
                     "weight_decay", "grad_clip", "seed", "precision")


def _load_checkpoint(path, model, optimizer, generator, history, config, scaler=None) -> int:
    """Restore a run from `path`; the gradient scaler (fp16 runs) too when the checkpoint holds its state."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
    saved = state.get("config", {}) if isinstance(state, dict) else {}
    changed = [k for k in _RESUMABLE_FIELDS if k in saved and _same(saved[k], getattr(config, k)) is False]
    if changed:
        raise ValueError(f"checkpoint {path} was written with different settings: {', '.join(changed)}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    for key in ("steps", "train_loss", "lr", "grad_norm", "val_steps", "val_loss"):
        setattr(history, key, list(state["history"].get(key, [])))
    return int(state["step"])


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b
