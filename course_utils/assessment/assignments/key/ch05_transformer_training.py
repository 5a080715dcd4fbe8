"""Instructor key for chapter 05: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch05_transformer_training import (
    _SHAPES,
    _block_case,
    _grads,
    _logits_tokens,
    _model_and_batches,
    _qkv,
    _schedule,
)


def _attention(q, k, v, mask_fn=torch.tril, scale=True) -> torch.Tensor:
    t = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    allowed = mask_fn(torch.ones(t, t, dtype=torch.bool))
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


def _ce(z: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> float:
    return float(F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), reduction=reduction))


def _loop(model, batches, lr, order: str) -> list[float]:
    """A training loop doing, per batch, the steps named by the letters of `order` (l b s z, r: loss after)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for x, y in batches:
        loss = None
        for step in order:
            if step == "l":
                loss = model.loss(x, y)
            elif step == "b":
                loss.backward()
            elif step == "s":
                optimizer.step()
            elif step == "z":
                optimizer.zero_grad()
            elif step == "r":  # records the loss after the update, not the one trained on
                loss = model.loss(x, y)
        out.append(loss.item())
    return out


def _lr(step, lr, min_lr, warmup, iterations, first=1, cosine_from=None, floor=None, cap=True) -> float:
    """The schedule with one thing changed: the warm-up's first factor, where the cosine starts, its floor, the cap."""
    floor = min_lr if floor is None else floor
    if step < warmup:
        return lr * (step + first) / warmup
    start = warmup if cosine_from is None else cosine_from
    progress = (step - start) / max(1, iterations - start)
    progress = min(1.0, progress) if cap else progress
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))


def _clip(grads, max_norm, per_tensor=False, clamp=False, scale_up=False, norm_after=False) -> tuple:
    """Clipping with one thing changed: tensor by tensor, element by element, always rescaled, the norm reported."""
    norm = float(torch.sqrt(sum((g * g).sum() for g in grads)))
    if clamp:
        return [g.clamp(-max_norm, max_norm) for g in grads], norm
    if per_tensor:
        return [g * min(1.0, max_norm / float(g.norm())) for g in grads], norm
    factor = max_norm / norm if scale_up else min(1.0, max_norm / norm)
    clipped = [g * factor for g in grads]
    return clipped, (min(norm, max_norm) if norm_after else norm)


def _block(x, p, post_norm=False, residual=True, scale=True, causal=True, heads=True) -> torch.Tensor:
    """A Transformer block with one thing changed: norms after the sums, no residual, no scale, no mask, one head."""
    b, t, d = x.shape
    n = p["n_heads"] if heads else 1

    def norm(u, i):
        return F.layer_norm(u, (d,), p[f"norm{i}.weight"], p[f"norm{i}.bias"], 1e-5)

    def attend(u):
        q, k, v = (u @ p["attn.qkv.weight"].T + p["attn.qkv.bias"]).view(b, t, 3, n, d // n).permute(2, 0, 3, 1, 4)
        y = _attention(q, k, v, mask_fn=torch.tril if causal else (lambda m: m), scale=scale)
        return y.transpose(1, 2).reshape(b, t, d) @ p["attn.proj.weight"].T + p["attn.proj.bias"]

    def mlp(u):
        return F.gelu(u @ p["ff.fc.weight"].T + p["ff.fc.bias"]) @ p["ff.proj.weight"].T + p["ff.proj.bias"]

    keep = 1.0 if residual else 0.0
    if post_norm:
        h = norm(keep * x + attend(x), 1)
        return norm(keep * h + mlp(h), 2)
    h = keep * x + attend(norm(x, 1))
    return keep * h + mlp(norm(h, 2))


def _flops(n, layers, t, d, weights=6, attention=12) -> float:
    """FLOPs per token with other factors per weight and per attention entry."""
    return float(weights * n + attention * layers * t * d)


KEY = {
    "ANSWER_STEP_ORDER": AnswerKey(
        expected="CADBE",
        # the reset may come anywhere it does not throw away the gradients before the update uses them
        also_accepted=("ECADB", "CEADB", "CAEDB"),
        why_not=(("CADEB", "resetting between the backward pass and the update throws the gradients away "
                           "before the optimizer uses them."),),
    ),
    "causal_mask": FunctionKey(
        hidden=(Case((1,)), Case((7,)), Case((16,))),
        mistakes=(
            Mistake("True above the diagonal (the future)", lambda t: torch.ones(t, t, dtype=torch.bool).triu(),
                    pitfall=True),
            Mistake("floats, not booleans", lambda t: torch.ones(t, t).tril()),
            Mistake("a position cannot see itself", lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1)),
        ),
    ),
    "causal_attention": FunctionKey(
        hidden=(Case(lambda: _qkv((1, 6), 53)),  # one position: it attends to itself only
                Case(lambda: _qkv((3, 2, 9, 8), 54, scale=3.0)),  # large scores: stable softmax
                Case(lambda: _qkv((2, 12, 16), 55))),
        mistakes=(
            Mistake("attends to the future", lambda q, k, v: _attention(q, k, v, mask_fn=torch.triu),
                    pitfall=True),
            Mistake("no mask at all", lambda q, k, v: _attention(q, k, v, mask_fn=lambda m: m)),
            Mistake("forgets the 1/√d scale", lambda q, k, v: _attention(q, k, v, scale=False)),
            Mistake("library attention without is_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
        ),
    ),
    "next_token_loss": FunctionKey(
        hidden=(Case(lambda: _logits_tokens(4, 2, 7, 58)),  # one prediction per sequence
                Case(lambda: _logits_tokens(3, 10, 4, 59)),
                Case(lambda: _logits_tokens(5, 7, 11, 60))),
        mistakes=(
            Mistake("no shift: each position predicts itself", lambda z, y: _ce(z, y), pitfall=True),
            Mistake("shifted the wrong way", lambda z, y: _ce(z[:, 1:], y[:, :-1])),
            Mistake("sum, not mean", lambda z, y: _ce(z[:, :-1], y[:, 1:], "sum")),
            Mistake("rows and targets misaligned", lambda z, y: _ce(z[:, :-1].transpose(0, 1), y[:, 1:])),
        ),
    ),
    "ANSWER_PARALLEL_TRAINING": AnswerKey(
        expected="B",
        why_not=(("A", "the prediction at a position does depend on the earlier tokens: attention reads them."),
                 ("C", "every position uses the same parameters; what keeps the predictions apart is the mask."),
                 ("D", "position embeddings make order visible to the model; order matters throughout.")),
    ),
    "training_steps": FunctionKey(
        hidden=(Case(lambda: _model_and_batches(62, 4, 0.3)),  # stale gradients would pile up here
                Case(lambda: _model_and_batches(63, 1, 1.0)),
                Case(lambda: _model_and_batches(64, 3, 0.1, layers=2))),
        mistakes=(
            Mistake("never resets the gradients", lambda m, b, lr: _loop(m, b, lr, "lbs"), pitfall=True),
            Mistake("resets between backward and step", lambda m, b, lr: _loop(m, b, lr, "lbzs")),
            Mistake("records the loss after the update", lambda m, b, lr: _loop(m, b, lr, "lbszr")),
        ),
    ),
    "ANSWER_FALLING_LOSS": AnswerKey(
        expected="D",
        why_not=(("A", "the training loss is measured on the training data; it cannot tell how the model "
                       "does on text it has never seen."),
                 ("B", "a loss that is still falling has not converged, and a falling loss alone does not show "
                       "that the learning rate is the best one."),
                 ("C", "overfitting shows as a gap between training and held-out loss; the training loss alone "
                       "cannot show it starting or stopping.")),
    ),
    "ANSWER_LONG_INPUTS": AnswerKey(
        expected="A",
        why_not=(("B", "a recurrent model must pass early information through many state updates, where it "
                       "tends to fade: it does lose information."),
                 ("C", "self-attention compares every pair of tokens: its cost grows with the square of the "
                       "length."),
                 ("D", "their costs differ: linear in the length for recurrence, quadratic for attention.")),
    ),
    "lr_schedule": FunctionKey(
        hidden=(Case(_schedule(0, iterations=50, warmup=0)),  # no warm-up: the cosine starts at the peak
                Case(_schedule(0, iterations=50, warmup=1)),  # a one-step warm-up is the peak at once
                Case(_schedule(3, iterations=20, warmup=5)),
                Case(_schedule(17, iterations=20, warmup=5)),
                Case(_schedule(7, iterations=8, warmup=8)),  # the whole run is warm-up
                Case((1234, 6e-4, 6e-5, 200, 5000))),
        mistakes=(
            Mistake("the warm-up starts at 0 (off by one)", lambda *a: _lr(*a, first=0)),
            Mistake("the cosine counted from step 0, not from the end of the warm-up",
                    lambda *a: _lr(*a, cosine_from=0)),
            Mistake("decays to 0 instead of min_lr", lambda *a: _lr(*a, floor=0.0)),
            Mistake("the cosine rises again after the last step", lambda *a: _lr(*a, cap=False)),
        ),
    ),
    "clip_gradients": FunctionKey(
        hidden=(Case(lambda: (_grads(((5,),), 73, 2.0), 0.5)),  # one tensor
                Case(lambda: (_grads(((8, 8), (8,), (8, 32), (32,)), 74, 0.05), 0.25)),
                Case(lambda: (_grads(_SHAPES, 75, 1e3), 1.0)),  # a gradient spike
                Case(lambda: (_grads(_SHAPES, 76, 0.2), 10.0))),
        mistakes=(
            Mistake("each tensor clipped on its own", lambda g, m: _clip(g, m, per_tensor=True)),
            Mistake("each element clamped to ±max_norm", lambda g, m: _clip(g, m, clamp=True)),
            Mistake("small gradients scaled up to max_norm", lambda g, m: _clip(g, m, scale_up=True)),
            Mistake("reports the norm after clipping", lambda g, m: _clip(g, m, norm_after=True)),
        ),
    ),
    "prenorm_block": FunctionKey(
        hidden=(Case(lambda: _block_case(3, 1, 8, 2, 83)),  # one position
                Case(lambda: _block_case(2, 7, 16, 1, 84)),  # one head
                Case(lambda: _block_case(2, 9, 16, 4, 85, ff=24))),
        mistakes=(
            Mistake("post-norm: the norms after the residual sums", lambda x, p: _block(x, p, post_norm=True)),
            Mistake("no residual connections", lambda x, p: _block(x, p, residual=False)),
            Mistake("forgets the 1/√d scale", lambda x, p: _block(x, p, scale=False)),
            Mistake("no causal mask: attends to the future", lambda x, p: _block(x, p, causal=False)),
            Mistake("one head of width d instead of n_heads", lambda x, p: _block(x, p, heads=False)),
        ),
    ),
    "training_flops_per_token": FunctionKey(
        hidden=(Case((1, 1, 1, 1)),
                Case((6_000_000, 6, 512, 256)),
                Case((354_000_000, 24, 1024, 1024)),  # GPT-2 medium
                Case((10_000, 4, 4096, 64))),  # a long context: attention dominates
        mistakes=(
            Mistake("forward pass only", lambda n, L, t, d: _flops(n, L, t, d, weights=2, attention=4), pitfall=True),
            Mistake("no attention term (6N alone)", lambda n, L, t, d: _flops(n, L, t, d, attention=0)),
            Mistake("attention counted for the forward pass only",
                    lambda n, L, t, d: _flops(n, L, t, d, attention=4)),
            Mistake("backward counted at the forward's cost", lambda n, L, t, d: _flops(n, L, t, d, 4, 8)),
        ),
    ),
    # 854 438 400 FLOPs per token × 400 000 tokens/s = 3.418e14 FLOP/s, over 989e12
    "ANSWER_MFU": AnswerKey(expected=0.3456, atol=0.002),
    "ANSWER_CURVES": AnswerKey(expected="CADB"),
}
