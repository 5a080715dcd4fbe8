"""Data-parallel training: sharded global batches, the global mean NLL, gradient all-reduce, a torchrun launcher."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .losses import IGNORE_INDEX
from .validate import as_tensor, index, positive_float, positive_int

Batch = tuple[torch.Tensor, torch.Tensor]
# A batch source draws one training batch (inputs, targets), taking its randomness only from the
# generator it is given. Targets equal to IGNORE_INDEX (-100) are not counted in the loss.
BatchSource = Callable[[torch.Generator], Batch]
LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- the global objective

def global_mean_nll(means, counts) -> float:
    """The mean NLL of the global batch from each worker's mean NLL and token count: Σ nᵢ·mᵢ / Σ nᵢ.

    With equal counts this is the plain mean of the workers' means; with unequal shards it is not.
    """
    m, n = as_tensor(means, "means"), as_tensor(counts, "counts")
    if m.shape != n.shape:
        raise ValueError(f"means and counts need one entry per worker, got {m.numel()} and {n.numel()}")
    if (n < 0).any() or (n != n.round()).any() or n.sum() == 0:
        raise ValueError(f"counts must be whole numbers >= 0 with a positive total, got {n.tolist()}")
    return float((m * n).sum() / n.sum())


def target_count(targets: torch.Tensor) -> int:
    """The number of targets that count in a mean NLL: those not equal to IGNORE_INDEX."""
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"targets must be a tensor of token ids, got {type(targets).__name__}")
    return int((targets != IGNORE_INDEX).sum())


# ---------------------------------------------------------------- shards of one global batch

def shard(batch: Batch, rank: int, world_size: int) -> Batch:
    """Worker `rank`'s rows of a global batch: the rank-th of `world_size` equal consecutive blocks."""
    x, y = batch_pair(batch)
    world_size = positive_int(world_size, "world_size")
    rank = index(rank, world_size, "rank", "a worker rank")
    if x.shape[0] % world_size:
        raise ValueError(f"a global batch of {x.shape[0]} rows does not split evenly across {world_size} workers; "
                         "make the batch size a multiple of the number of workers")
    rows = x.shape[0] // world_size
    return x[rank * rows:(rank + 1) * rows], y[rank * rows:(rank + 1) * rows]


def sharded(source: BatchSource, rank: int | None = None, world_size: int | None = None) -> BatchSource:
    """A batch source for one worker: every worker draws the same global batch and keeps its own shard.

    All workers advance their generators identically, so `world_size` workers see together exactly
    the batches one process with `source` sees. Rank and world size default to the process group's.
    """
    if not callable(source):
        raise ValueError(f"source must be a batch source (a function of a torch.Generator), "
                         f"got {type(source).__name__}")
    world_size = get_world_size() if world_size is None else positive_int(world_size, "world_size")
    rank = get_rank() if rank is None else index(rank, world_size, "rank", "a worker rank")
    return lambda generator: shard(source(generator), rank, world_size)


def split_rows(batch: Batch, sizes: Sequence[int]) -> list[Batch]:
    """A global batch cut into consecutive shards of `sizes` rows (unequal shards allowed)."""
    x, y = batch_pair(batch)
    sizes = [positive_int(s, "each shard size") for s in sizes]
    if sum(sizes) != x.shape[0]:
        raise ValueError(f"shard sizes {sizes} add up to {sum(sizes)}, not to the batch's {x.shape[0]} rows")
    return list(zip(x.split(sizes), y.split(sizes), strict=True))


# ---------------------------------------------------------------- gradient all-reduce, simulated

def batch_gradient(model: torch.nn.Module, batch: Batch, loss_fn: LossFn | None = None) -> list[torch.Tensor]:
    """The gradient of the batch's mean NLL with respect to the model's trainable parameters."""
    x, y = batch_pair(batch)
    params = _trainable(model)
    loss = model.loss(x, y) if loss_fn is None else loss_fn(model, x, y)
    return [g.detach() for g in torch.autograd.grad(loss, params)]


def simulate_all_reduce(model: torch.nn.Module, shards: Sequence[Batch], loss_fn: LossFn | None = None,
                        weighted: bool = False) -> list[torch.Tensor]:
    """What k workers holding `shards` get after averaging their gradients (DDP's all-reduce), in one process.

    Each worker differentiates its own shard's mean NLL; the average is plain (what DDP does) or,
    with `weighted`, by each shard's share of the counted targets (the gradient of the global mean).
    """
    if len(shards) == 0:
        raise ValueError("shards is empty: at least one worker is needed")
    counts = torch.tensor([target_count(batch_pair(s)[1]) for s in shards], dtype=torch.float64)
    if weighted and counts.sum() == 0:
        raise ValueError("no shard has a counted target: the weighted mean is undefined")
    weights = counts / counts.sum() if weighted else torch.full((len(shards),), 1.0 / len(shards), dtype=torch.float64)
    grads = [batch_gradient(model, s, loss_fn) for s in shards]
    return [sum(float(w) * g[i] for w, g in zip(weights, grads, strict=True)) for i in range(len(grads[0]))]


def max_difference(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """The largest absolute difference between two lists of tensors of matching shapes."""
    if len(a) != len(b) or any(s.shape != t.shape for s, t in zip(a, b, strict=True)):
        raise ValueError("the two gradient lists must hold tensors of the same shapes, in the same order")
    return max(float((s.double() - t.double()).abs().max()) for s, t in zip(a, b, strict=True))


# ---------------------------------------------------------------- inside a process group

def is_initialized() -> bool:
    """Whether this process belongs to a torch.distributed process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def get_rank() -> int:
    """This worker's rank (0 outside a process group)."""
    return torch.distributed.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of workers (1 outside a process group)."""
    return torch.distributed.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """Whether this is the worker that writes files and prints: rank 0, or the only process."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every worker (nothing outside a process group)."""
    if is_initialized():
        torch.distributed.barrier()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if is_data_parallel(model) else model


def is_data_parallel(model: torch.nn.Module) -> bool:
    """Whether `model` is wrapped in DistributedDataParallel."""
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)


def token_weighted(loss: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the local loss to differentiate, the global batch's mean NLL) for a worker holding `targets`.

    DDP averages the workers' gradients, so each worker's mean loss is scaled by k·nᵢ / Σ n: the
    average is then the gradient of the global mean NLL, also when shards hold unequal numbers of
    counted targets (the scale is exactly 1 when they are equal). One all-reduce of two numbers.
    """
    count = (targets != IGNORE_INDEX).sum().to(torch.float64)
    stats = torch.stack([count, loss.detach().double() * count])
    if is_initialized():
        torch.distributed.all_reduce(stats)
    total_count, total_nll = stats[0], stats[1]
    scale = (get_world_size() * count / total_count).to(loss.dtype)
    return loss * scale, total_nll / total_count


# ---------------------------------------------------------------- launching workers

def launch(script: str | Path, nproc: int = 2, args: Sequence[str] = (), timeout: float = 120.0,
           port: int | None = None, launcher: str | None = None, threads: int = 1) -> str:
    """Run `script` on `nproc` local worker processes with torchrun; return its log (stdout and stderr).

    The launcher is `python -m torch.distributed.run` (what `torchrun` runs) unless `launcher` names
    another command, e.g. "torchrun". A free port is chosen unless `port` is given; each worker runs
    `threads` torch threads. A missing launcher, a taken port, a failed worker or a run longer than
    `timeout` seconds raises an error that names the problem and ends with the log's last lines.
    """
    path = Path(script)
    if not path.is_file():
        raise ValueError(f"script {str(script)!r} does not exist")
    nproc, threads = positive_int(nproc, "nproc"), positive_int(threads, "threads")
    timeout = positive_float(timeout, "timeout")
    port = free_port() if port is None else _free(port)
    command = [*_launcher(launcher), f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
               f"--master_port={port}", "--monitor_interval=0.1", str(path), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    returncode, log = _run(command, env, timeout)
    if returncode != 0:
        raise RuntimeError(_failure(returncode, log, port))
    return log


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` of 127.0.0.1 now."""
    port = index(port, 65536, "port", "a TCP port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as torch's TCPStore does
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free(port: int) -> int:
    port = index(port, 65536, "port", "a TCP port")
    if port < 1024 or not port_is_free(port):
        raise ValueError(f"port {port} is already in use (or reserved); choose another or pass port=None "
                         "to let the launcher pick a free one")
    return port


def _launcher(launcher: str | None) -> list[str]:
    """The command that starts the workers: python -m torch.distributed.run, or `launcher` found on PATH."""
    if not torch.distributed.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed: data-parallel training needs it")
    if launcher is None:
        return [sys.executable, "-m", "torch.distributed.run"]
    found = shutil.which(launcher)
    if found is None:
        raise RuntimeError(f"the launcher {launcher!r} was not found on PATH; install PyTorch in this environment "
                           "or use launcher=None (python -m torch.distributed.run)")
    return [found]


def _run(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `command` in its own session, its output captured; on timeout stop it (and its workers) and raise."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out = _stop(proc)
            raise RuntimeError(f"the workers did not finish within {timeout:g} s and were stopped; "
                               f"last lines of the log:\n{_tail(out)}") from None
    return proc.returncode, out


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM to the launcher (it stops its workers), SIGKILL to its group after 5 s; what it printed."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out or ""


def _failure(returncode: int, log: str, port: int) -> str:
    lower = log.lower()
    if "address already in use" in lower or "eaddrinuse" in lower:
        return f"port {port} was taken by another program before the workers could use it; launch again"
    return (f"a worker failed (the launcher exited with code {returncode}); last lines of the log:\n"
            f"{_tail(_workers_part(log))}")


def _workers_part(log: str) -> str:
    """The log up to the launcher's own failure report (its traceback and summary), and that report's first line."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "torch/distributed/elastic" in line or "torch.distributed.elastic" in line:
            return "\n".join(lines[:i + 1])
    return log


def _tail(log: str, lines: int = 20) -> str:
    return "\n".join(log.strip().splitlines()[-lines:])


# ---------------------------------------------------------------- guards

def batch_pair(batch: Batch, what: str = "a batch must be") -> Batch:
    """`batch` as (inputs, targets) if it is two tensors of one shape (batch, time); the error starts with `what`."""
    shaped = (isinstance(batch, (tuple, list)) and len(batch) == 2
              and all(isinstance(t, torch.Tensor) and t.ndim == 2 for t in batch))
    if not shaped or batch[0].shape != batch[1].shape:
        raise ValueError(f"{what} (inputs, targets): two tensors of one shape (batch, time)")
    return batch[0], batch[1]


def _trainable(model: torch.nn.Module) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return params

