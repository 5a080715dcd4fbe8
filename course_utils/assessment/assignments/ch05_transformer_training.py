"""Chapter 05 assignment: training a Transformer language model (causal mask, next-token loss, one step)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...models import Transformer, TransformerConfig
from ...validate import positive_int
from ..items import AnswerItem, Assignment, Case, FunctionItem, Mistake


def causal_mask(t: int) -> torch.Tensor:
    """Boolean (t, t): entry [i, j] is True when position i may attend to position j, i.e. j ≤ i."""
    t = positive_int(t, "t")
    return torch.ones(t, t, dtype=torch.bool).tril()


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d with the future masked out) v, for tensors of shape (..., T, d)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> float:
    """Mean NLL of tokens[:, 1:] under the predictions logits[:, :-1] made at the positions before them."""
    v = logits.shape[-1]
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, v), tokens[:, 1:].reshape(-1)))


def training_steps(model: torch.nn.Module, batches: list, lr: float) -> list[float]:
    """One SGD step per (x, y) batch in the order forward → loss → backward → step → zero; the losses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for x, y in batches:
        loss = model.loss(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


# ---------------------------------------------------------------- fixed cases

def _qkv(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))


def _logits_tokens(b: int, t: int, v: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(b, t, v, generator=g, dtype=torch.float64), torch.randint(v, (b, t), generator=g)


def _model_and_batches(seed: int, n_batches: int, lr: float, layers: int = 1) -> tuple:
    """A tiny Transformer with fixed weights, a few fixed batches, and a learning rate."""
    config = TransformerConfig(vocab_size=7, context=8, n_layers=layers, n_heads=2, d_model=8)
    model = Transformer(config, seed=seed)
    g = torch.Generator().manual_seed(seed + 1000)
    batches = []
    for _ in range(n_batches):
        w = torch.randint(7, (3, 9), generator=g)
        batches.append((w[:, :-1], w[:, 1:]))
    return model, batches, lr


# ---------------------------------------------------------------- the mistakes each item must reject

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


ASSIGNMENT = Assignment(
    key="05_transformer_training",
    title="Training a Transformer language model",
    items=(
        AnswerItem(
            name="ANSWER_STEP_ORDER", points=1, expected="CADBE",
            # the reset may come anywhere it does not throw away the gradients before the update uses them
            also_accepted=("ECADB", "CEADB", "CAEDB"),
            why_not=(("CADEB", "resetting between the backward pass and the update throws the gradients away "
                               "before the optimizer uses them."),),
            hint="what must exist before a gradient can be computed, and what must exist before the "
                 "optimizer can use it? Gradients are cleared once the update has used them.",
        ),
        FunctionItem(
            name="causal_mask", points=1, reference=causal_mask,
            public=(Case((4,)),),
            hidden=(Case((1,)), Case((7,)), Case((16,))),
            hint="row i is the query position, column j the key position: True on and below the "
                 "diagonal (torch.tril of a matrix of ones, as booleans).",
            mistakes=(
                Mistake("True above the diagonal (the future)", lambda t: torch.ones(t, t, dtype=torch.bool).triu(),
                        pitfall=True),
                Mistake("floats, not booleans", lambda t: torch.ones(t, t).tril()),
                Mistake("a position cannot see itself", lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1)),
            ),
        ),
        FunctionItem(
            name="causal_attention", points=2, reference=causal_attention,
            public=(Case(lambda: _qkv((4, 3), 51)), Case(lambda: _qkv((2, 2, 5, 4), 52))),
            hidden=(Case(lambda: _qkv((1, 6), 53)),  # one position: it attends to itself only
                    Case(lambda: _qkv((3, 2, 9, 8), 54, scale=3.0)),  # large scores: stable softmax
                    Case(lambda: _qkv((2, 12, 16), 55))),
            rtol=1e-6, atol=1e-9,
            hint="scores = q @ kᵀ / √d (d = q.shape[-1]); set the scores above the diagonal to -inf "
                 "before the softmax over the last dimension; then multiply by v.",
            mistakes=(
                Mistake("attends to the future", lambda q, k, v: _attention(q, k, v, mask_fn=torch.triu),
                        pitfall=True),
                Mistake("no mask at all", lambda q, k, v: _attention(q, k, v, mask_fn=lambda m: m)),
                Mistake("forgets the 1/√d scale", lambda q, k, v: _attention(q, k, v, scale=False)),
                Mistake("library attention without is_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
            ),
        ),
        FunctionItem(
            name="next_token_loss", points=2, reference=next_token_loss,
            public=(Case(lambda: _logits_tokens(1, 4, 3, 56)), Case(lambda: _logits_tokens(2, 6, 5, 57))),
            hidden=(Case(lambda: _logits_tokens(4, 2, 7, 58)),  # one prediction per sequence
                    Case(lambda: _logits_tokens(3, 10, 4, 59)),
                    Case(lambda: _logits_tokens(5, 7, 11, 60))),
            rtol=1e-6, atol=1e-9,
            hint="the logits at position t predict token t + 1: pair logits[:, :-1] with tokens[:, 1:], "
                 "flatten both, and average the cross-entropy over all B·(T-1) predictions.",
            mistakes=(
                Mistake("no shift: each position predicts itself", lambda z, y: _ce(z, y), pitfall=True),
                Mistake("shifted the wrong way", lambda z, y: _ce(z[:, 1:], y[:, :-1])),
                Mistake("sum, not mean", lambda z, y: _ce(z[:, :-1], y[:, 1:], "sum")),
                Mistake("rows and targets misaligned", lambda z, y: _ce(z[:, :-1].transpose(0, 1), y[:, 1:])),
            ),
        ),
        AnswerItem(
            name="ANSWER_PARALLEL_TRAINING", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="during training the true previous tokens are known; what stops position t from "
                 "seeing token t + 1 when all positions are processed at once?",
            why_not=(("A", "the prediction at a position does depend on the earlier tokens: attention reads them."),
                     ("C", "every position uses the same parameters; what keeps the predictions apart is the mask."),
                     ("D", "position embeddings make order visible to the model; order matters throughout.")),
        ),
        FunctionItem(
            name="training_steps", points=2, reference=training_steps,
            public=(Case(lambda: _model_and_batches(61, 3, 0.5)),),  # 3 steps: stale gradients show at the 3rd
            hidden=(Case(lambda: _model_and_batches(62, 4, 0.3)),  # stale gradients would pile up here
                    Case(lambda: _model_and_batches(63, 1, 1.0)),
                    Case(lambda: _model_and_batches(64, 3, 0.1, layers=2))),
            rtol=1e-5, atol=1e-7,
            hint="for each batch: loss = model.loss(x, y); loss.backward(); optimizer.step(); "
                 "optimizer.zero_grad(); record loss.item() — with one torch.optim.SGD made before the loop.",
            mistakes=(
                Mistake("never resets the gradients", lambda m, b, lr: _loop(m, b, lr, "lbs"), pitfall=True),
                Mistake("resets between backward and step", lambda m, b, lr: _loop(m, b, lr, "lbzs")),
                Mistake("records the loss after the update", lambda m, b, lr: _loop(m, b, lr, "lbszr")),
            ),
        ),
        AnswerItem(
            name="ANSWER_FALLING_LOSS", points=1, expected="D", choices=("A", "B", "C", "D"),
            hint="the training loss is measured on the data the parameters were fitted to.",
            why_not=(("A", "the training loss is measured on the training data; it cannot tell how the model "
                           "does on text it has never seen."),
                     ("B", "a loss that is still falling has not converged, and a falling loss alone does not show "
                           "that the learning rate is the best one."),
                     ("C", "overfitting shows as a gap between training and held-out loss; the training loss alone "
                           "cannot show it starting or stopping.")),
        ),
        AnswerItem(
            name="ANSWER_LONG_INPUTS", points=1, expected="A", choices=("A", "B", "C", "D"),
            hint="count the pairs of tokens self-attention compares, and the steps a recurrent model "
                 "needs to carry information from the first token to the last.",
            why_not=(("B", "a recurrent model must pass early information through many state updates, where it "
                           "tends to fade: it does lose information."),
                     ("C", "self-attention compares every pair of tokens: its cost grows with the square of the "
                           "length."),
                     ("D", "their costs differ: linear in the length for recurrence, quadratic for attention.")),
        ),
    ),
    notes={"lesson": "notebooks/05_transformer_training.ipynb"},
)
