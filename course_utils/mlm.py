"""Masked language modelling: the masking procedure, the MLM objective, pseudo-log-likelihood scoring."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .losses import IGNORE_INDEX  # the course's one; lesson 03 reads it as mlm.IGNORE_INDEX
from .runtime import model_device
from .validate import (
    int_at_least,
    non_negative_float,
    number_in,
    one_of,
    positive_int,
    token_id,
    token_ids,
    torch_generator,
)

SPLIT = (0.8, 0.1, 0.1)
"""Of the selected positions: shares replaced by the mask token, by a random token, left unchanged."""

# Codes of a masking plan, one per position.
UNTOUCHED, MASKED, RANDOM, KEPT = 0, 1, 2, 3

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


KIND_NAMES = {MASKED: "[MASK]", RANDOM: "random", KEPT: "kept"}
"""How the lesson names the three kinds of predicted position."""


class Masked(NamedTuple):
    """A corrupted batch: `inputs` (x̄) and `targets` (the original token where predicted, else ignore)."""

    inputs: torch.Tensor
    targets: torch.Tensor


# ---------------------------------------------------------------- the masking procedure

def masking_plan(
    shape: Sequence[int] | torch.Size,
    generator: torch.Generator,
    rate: float = 0.15,
    split: Sequence[float] = SPLIT,
    eligible: torch.Tensor | None = None,
) -> torch.Tensor:
    """What happens at each position (int64 codes UNTOUCHED, MASKED, RANDOM, KEPT).

    Each eligible position is selected independently with probability `rate`; a selected one
    becomes MASKED, RANDOM or KEPT with the probabilities in `split`. Positions where `eligible`
    is False (special tokens) are never selected. Two uniform draws per position, both from
    `generator`, so one seed gives one plan.
    """
    torch_generator(generator)
    rate, (p_mask, p_random, _) = _check_rate(rate), _check_split(split)
    shape = torch.Size(shape)
    if eligible is None:
        eligible = torch.ones(shape, dtype=torch.bool)
    if eligible.dtype != torch.bool or eligible.shape != shape:
        raise ValueError(f"eligible must be a boolean tensor of shape {tuple(shape)}, "
                         f"got {eligible.dtype} of shape {tuple(eligible.shape)}")
    u_select = torch.rand(shape, generator=generator, dtype=torch.float64)
    u_kind = torch.rand(shape, generator=generator, dtype=torch.float64)
    return decisions_from_uniforms(u_select, u_kind, rate, eligible, (p_mask, p_random))


def decisions_from_uniforms(
    u_select: torch.Tensor, u_kind: torch.Tensor, rate: float, eligible: torch.Tensor,
    shares: tuple[float, float] = SPLIT[:2],
) -> torch.Tensor:
    """Plan codes from two uniform numbers per position: select if u_select < rate, then split by u_kind."""
    if u_select.shape != u_kind.shape or eligible.shape != u_select.shape:
        raise ValueError(f"u_select, u_kind and eligible must have one shape, got {tuple(u_select.shape)}, "
                         f"{tuple(u_kind.shape)} and {tuple(eligible.shape)}")
    p_mask, p_random = shares
    selected = (u_select < rate) & eligible.bool()
    codes = torch.full(u_select.shape, KEPT, dtype=torch.long)
    codes[u_kind < p_mask + p_random] = RANDOM
    codes[u_kind < p_mask] = MASKED
    codes[~selected] = UNTOUCHED
    return codes


def apply_plan(
    tokens: torch.Tensor, plan: torch.Tensor, mask_id: int, random_ids: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
) -> Masked:
    """Corrupt `tokens` by a plan: MASKED → mask_id, RANDOM → the token in `random_ids`, KEPT → itself.

    Targets hold the original token at every selected position (MASKED, RANDOM or KEPT) and
    `ignore_index` at the others.
    """
    if plan.shape != tokens.shape or random_ids.shape != tokens.shape:
        raise ValueError(f"tokens, plan and random_ids must have one shape, got {tuple(tokens.shape)}, "
                         f"{tuple(plan.shape)} and {tuple(random_ids.shape)}")
    inputs = tokens.clone()
    inputs[plan == MASKED] = mask_id
    inputs[plan == RANDOM] = random_ids[plan == RANDOM]
    targets = torch.where(plan != UNTOUCHED, tokens, torch.full_like(tokens, ignore_index))
    return Masked(inputs, targets)


def mask_tokens(
    tokens: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
    rate: float = 0.15,
    special_ids: Sequence[int] = (),
    split: Sequence[float] = SPLIT,
    ignore_index: int = IGNORE_INDEX,
) -> Masked:
    """BERT-style corruption of a batch of token ids for masked language modelling.

    About `rate` of the positions are selected (never a special token or the mask token); of
    those, by default 80 % become `mask_id`, 10 % a random non-special token, 10 % stay. The
    targets are the original tokens at the selected positions and `ignore_index` elsewhere.
    Every random draw comes from `generator`.
    """
    vocab_size = int_at_least(vocab_size, "vocab_size", 2)
    x = _check_tokens(tokens, vocab_size)
    mask_id = token_id(mask_id, vocab_size, "mask_id")
    special = {token_id(int(s), vocab_size, "special id") for s in special_ids} | {mask_id}
    if not isinstance(ignore_index, int) or 0 <= ignore_index < vocab_size:
        raise ValueError(f"ignore_index must be an integer that is not a token id, got {ignore_index!r}")
    pool = torch.tensor([i for i in range(vocab_size) if i not in special], dtype=torch.long)
    if len(pool) == 0:
        raise ValueError("every id is special: no token is left to predict or to draw at random")
    eligible = ~torch.isin(x, torch.tensor(sorted(special)))
    plan = masking_plan(x.shape, generator, rate, split, eligible)
    random_ids = pool[torch.randint(len(pool), x.shape, generator=generator)]
    return apply_plan(x, plan, mask_id, random_ids, ignore_index)


# ---------------------------------------------------------------- the objective

def masked_log_likelihood(logits: torch.Tensor, targets: torch.Tensor,
                          ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Σ_{i∈A(x)} log Pr(x_i | x̄), summed over the batch: by hand, position by masked position.

    `logits[..., i, :]` are the model's scores for position i given the corrupted input; A(x)
    is where `targets != ignore_index`. Differentiable; 0 when nothing is masked.
    """
    flat_logits, flat_targets = _check_logits_targets(logits, targets, ignore_index)
    total = flat_logits.new_zeros(())
    for i in (flat_targets != ignore_index).nonzero().flatten().tolist():
        log_probs = flat_logits[i] - torch.logsumexp(flat_logits[i], dim=0)  # log-softmax
        total = total + log_probs[flat_targets[i]]
    return total


def mlm_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX,
             reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the masked positions only: `F.cross_entropy` with `ignore_index`.

    With reduction="sum" it equals −`masked_log_likelihood`; "mean" divides by |A|.
    """
    one_of(reduction, ("mean", "sum"), "reduction")
    flat_logits, flat_targets = _check_logits_targets(logits, targets, ignore_index)
    if reduction == "mean" and not (flat_targets != ignore_index).any():
        raise ValueError("no position is masked: the mean loss over zero positions is undefined")
    return F.cross_entropy(flat_logits, flat_targets, ignore_index=ignore_index, reduction=reduction)


def unigram_log_probs(tokens: torch.Tensor, vocab_size: int, smoothing: float = 1.0) -> torch.Tensor:
    """log q(v) of token frequencies with add-`smoothing` counts: the best context-free prediction."""
    x = _check_tokens(tokens, vocab_size)
    counts = torch.bincount(x.reshape(-1), minlength=vocab_size).double() + non_negative_float(smoothing, "smoothing")
    return torch.log(counts / counts.sum())


def unigram_masked_loss(log_q: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean −log q(x_i) over masked positions: the loss of a model that ignores the context."""
    logits = log_q.to(torch.float64).expand(*targets.shape, log_q.shape[-1])
    return float(mlm_loss(logits, targets, ignore_index))


def position_kinds(inputs: torch.Tensor, targets: torch.Tensor, mask_id: int,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Each position's kind as the model saw it: UNTOUCHED (not predicted), MASKED, RANDOM or KEPT.

    A predicted position is MASKED where the input holds `mask_id`, KEPT where the input shows
    the target itself, RANDOM otherwise. A random replacement that happened to draw the original
    token counts as KEPT: the input shows the answer there.
    """
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor) or inputs.shape != targets.shape:
        raise ValueError("inputs and targets must be tensors of one shape, got "
                         f"{tuple(getattr(inputs, 'shape', ()))} and {tuple(getattr(targets, 'shape', ()))}")
    predicted = targets != ignore_index
    codes = torch.full(targets.shape, UNTOUCHED, dtype=torch.long)
    codes[predicted & (inputs == targets)] = KEPT
    codes[predicted & (inputs != targets)] = RANDOM
    codes[predicted & (inputs == mask_id)] = MASKED
    return codes


class KindLoss(NamedTuple):
    """Mean loss (nats) over the predicted positions of one kind, and how many there were."""

    loss: float
    count: int


def loss_by_kind(logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, mask_id: int,
                 ignore_index: int = IGNORE_INDEX) -> dict[str, KindLoss]:
    """The masked-LM loss split by position kind: {"[MASK]": …, "random": …, "kept": …}.

    Each entry is the mean −log Pr(x_i | x̄) over that kind's positions (see `position_kinds`)
    and their count; a kind with no position has loss NaN and count 0. The counts add up to |A|
    and the count-weighted mean of the losses is `mlm_loss`.
    """
    flat_logits, flat_targets = _check_logits_targets(logits, targets, ignore_index)
    kinds = position_kinds(inputs, targets, mask_id, ignore_index).reshape(-1)
    log_probs = torch.log_softmax(flat_logits.double(), dim=-1)
    nll = -log_probs.gather(1, flat_targets.clamp(min=0)[:, None])[:, 0]
    out = {}
    for code, name in KIND_NAMES.items():
        where = kinds == code
        count = int(where.sum())
        out[name] = KindLoss(float(nll[where].mean()) if count else float("nan"), count)
    return out


# ---------------------------------------------------------------- pseudo-log-likelihood

def pll_from_masked_logits(logits: torch.Tensor, tokens: torch.Tensor) -> float:
    """Σ_i log Pr(x_i | x with position i masked), from logits of shape (n, n, V).

    Row i of `logits` is the model's output on the copy of `tokens` with position i masked;
    only its position i counts.
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor of shape (n, n, vocab_size)")
    n = logits.shape[0]
    x = _check_tokens(tokens, logits.shape[-1])
    if x.ndim != 1 or logits.shape[:2] != (n, n) or len(x) != n:
        raise ValueError(f"for {tuple(x.shape)} tokens the logits must have shape (n, n, V), "
                         f"got {tuple(logits.shape)}")
    idx = torch.arange(n)
    return float(torch.log_softmax(logits[idx, idx].double(), dim=-1)[idx, x].sum())


@torch.no_grad()
def pseudo_log_likelihood(
    logits_fn: LogitsFn, tokens: torch.Tensor, mask_id: int, positions: Sequence[int] | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """log Pr(x_i | x with only position i masked) for each scored position (float64, one per position).

    Their sum is the pseudo-log-likelihood of the sequence. `logits_fn` maps token ids of shape
    (batch, n) to logits (batch, n, V), as a bidirectional model does. This takes one forward
    pass per scored position and is *not* a log-probability of the sequence: the conditionals
    come from different contexts and do not multiply to a distribution over sequences.
    """
    x, where = _sequence_and_positions(tokens, positions)
    batch_size = positive_int(batch_size, "batch_size")
    dev = model_device(logits_fn)
    out = []
    for start in range(0, len(where), batch_size):
        chunk = torch.tensor(where[start:start + batch_size])
        copies = x.repeat(len(chunk), 1)
        copies[torch.arange(len(chunk)), chunk] = mask_id
        logits = logits_fn(copies.to(dev)).cpu()
        if logits.ndim != 3 or logits.shape[:2] != copies.shape:
            raise ValueError(f"logits_fn must return shape (batch, n, V), got {tuple(logits.shape)}")
        log_probs = torch.log_softmax(logits[torch.arange(len(chunk)), chunk].double(), dim=-1)
        out.append(log_probs[torch.arange(len(chunk)), x[chunk]])
    return torch.cat(out)


def _sequence_and_positions(tokens: torch.Tensor, positions: Sequence[int] | None) -> tuple[torch.Tensor, list[int]]:
    """The token ids as a long 1-D tensor and the positions to score (all of them by default), checked."""
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 1:
        raise ValueError("tokens must be a 1-D tensor of token ids")
    x = tokens.long()
    where = list(range(len(x))) if positions is None else [int(p) for p in positions]
    if not where or any(not 0 <= p < len(x) for p in where):
        raise ValueError(f"positions must be a non-empty list of indices in 0..{len(x) - 1}")
    return x, where


@torch.no_grad()
def left_only_log_probs(logits_fn: LogitsFn, tokens: torch.Tensor, mask_id: int,
                        positions: Sequence[int] | None = None) -> torch.Tensor:
    """log Pr(x_i | x_<i) from a bidirectional model shown only x_1 … x_{i-1} [MASK] (float64, one per position).

    The input is cut after position i, so the model sees the left side alone, as a causal model
    would; compared with `pseudo_log_likelihood` on the same positions it measures what the
    right side adds for this one model. One forward pass per position.
    """
    x, where = _sequence_and_positions(tokens, positions)
    dev = model_device(logits_fn)
    out = []
    for i in where:
        prefix = x[: i + 1].clone()
        prefix[i] = mask_id
        logits = logits_fn(prefix[None].to(dev)).cpu()
        if logits.ndim != 3 or logits.shape[:2] != (1, i + 1):
            raise ValueError(f"logits_fn must return shape (1, n, V), got {tuple(logits.shape)}")
        out.append(torch.log_softmax(logits[0, i].double(), dim=-1)[x[i]])
    return torch.stack(out)


@torch.no_grad()
def causal_log_probs(logits_fn: LogitsFn, tokens: torch.Tensor) -> torch.Tensor:
    """log Pr(x_i | x_<i) for i = 1 … n-1 under a causal model whose logits at t predict token t + 1.

    Their sum is the exact log-probability of x_2 … x_n given x_1 (chain rule).
    """
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 1 or len(tokens) < 2:
        raise ValueError("tokens must be a 1-D tensor of at least two token ids")
    x = tokens.long()
    logits = logits_fn(x[None, :-1].to(model_device(logits_fn))).cpu()
    if logits.ndim != 3 or logits.shape[:2] != (1, len(x) - 1):
        raise ValueError(f"logits_fn must return shape (1, n, V), got {tuple(logits.shape)}")
    log_probs = torch.log_softmax(logits[0].double(), dim=-1)
    return log_probs[torch.arange(len(x) - 1), x[1:]]


# ---------------------------------------------------------------- training a bidirectional model

class MaskedLMLoss:
    """The MLM training loss as `loss_fn(model, x, y)`: corrupt the window x, score the selected positions.

    `y` (next-token targets) is ignored: a masked model predicts its input's own tokens. `split`
    is the (mask, random, keep) shares of the selected positions, as in `mask_tokens`. In
    training mode the masks come from `generator`; in eval mode every call masks with a fresh
    generator seeded `eval_seed`, so a validation set is corrupted the same way at every evaluation.
    """

    def __init__(self, mask_id: int, vocab_size: int, generator: torch.Generator, rate: float = 0.15,
                 special_ids: Sequence[int] = (), eval_seed: int = 0, split: Sequence[float] = SPLIT) -> None:
        self.vocab_size = int_at_least(vocab_size, "vocab_size", 2)
        self.mask_id = token_id(mask_id, vocab_size, "mask_id")
        self.generator, self.rate = torch_generator(generator), _check_rate(rate)
        self.eval_seed = int_at_least(eval_seed, "eval_seed", 0)
        self.special_ids = tuple(token_id(int(s), vocab_size, "special id") for s in special_ids)
        self.split = _check_split(split)

    def corrupt(self, x: torch.Tensor, training: bool = True) -> Masked:
        """The masked batch this loss would use (training masks advance the generator)."""
        g = self.generator if training else torch.Generator().manual_seed(self.eval_seed)
        return mask_tokens(x.cpu(), self.mask_id, self.vocab_size, g, self.rate, self.special_ids, self.split)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        config = getattr(model, "config", None)
        if config is not None and getattr(config, "causal", False):
            raise ValueError("a masked-LM loss needs a bidirectional model (causal=False)")
        masked = self.corrupt(x, model.training)
        logits = model(masked.inputs.to(x.device))
        return mlm_loss(logits.float(), masked.targets.to(x.device))


# ---------------------------------------------------------------- guards

def _check_tokens(tokens: torch.Tensor, vocab_size: int, name: str = "tokens") -> torch.Tensor:
    x = token_ids(tokens, vocab_size, name)
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D or 2-D tensor, got shape {tuple(x.shape)}")
    return x


def _check_rate(rate: float) -> float:
    return number_in(rate, "rate (the mask rate)", 0.0, 1.0, include_low=False)


def _check_split(split: Sequence[float]) -> tuple[float, float, float]:
    try:
        parts = tuple(float(s) for s in split)
    except (TypeError, ValueError):
        raise ValueError(f"split must be three numbers (mask, random, keep), got {split!r}") from None
    if len(parts) != 3 or any(not math.isfinite(p) or p < 0 for p in parts):
        raise ValueError(f"split must be three non-negative numbers (mask, random, keep), got {split!r}")
    if abs(sum(parts) - 1.0) > 1e-9:
        raise ValueError(f"split must sum to 1, but sums to {sum(parts):.6g}")
    return parts  # type: ignore[return-value]


def _check_logits_targets(logits: torch.Tensor, targets: torch.Tensor,
                          ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, V), targets (N,)) flattened, after checking that they fit together."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim == 0:
        raise ValueError("logits must be a floating-point tensor of shape (..., vocab_size)")
    t = token_ids(targets, logits.shape[-1], "targets", ignore_index=ignore_index)
    if logits.ndim < 2 or logits.shape[:-1] != t.shape:
        raise ValueError(f"logits must have shape targets.shape + (vocab_size,), got {tuple(logits.shape)} "
                         f"for targets of shape {tuple(t.shape)}")
    return logits.reshape(-1, logits.shape[-1]), t.reshape(-1)
