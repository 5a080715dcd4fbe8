"""Chapter 05 assignment: training a Transformer language model (attention, the block, the loss, the recipe)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models import Block, Transformer, TransformerConfig
from ...train import TrainConfig, learning_rate
from ...validate import int_at_least, positive_float, positive_int
from ..items import NUMBER, ORDER, AnswerItem, Assignment, Case, FunctionItem


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


def lr_schedule(step: int, lr: float, min_lr: float, warmup: int, iterations: int) -> float:
    """The learning rate at 0-based `step`: linear warm-up to `lr` over `warmup` steps, then cosine to `min_lr`."""
    step = int_at_least(step, "step", 0)
    return learning_rate(step, TrainConfig(iterations=iterations, lr=lr, min_lr=min_lr, warmup=warmup))


def clip_gradients(grads: list[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], float]:
    """The gradients scaled together so that their global L2 norm is at most `max_norm`, and that norm before."""
    max_norm = positive_float(max_norm, "max_norm")
    holders = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for holder, g in zip(holders, grads, strict=True):
        holder.grad = g.detach().clone()
    norm = torch.nn.utils.clip_grad_norm_(holders, max_norm)
    return [h.grad for h in holders], float(norm)


def prenorm_block(x: torch.Tensor, params: dict) -> torch.Tensor:
    """`models.Block` with the weights in `params` (its state-dict names and "n_heads") applied to x (B, T, d)."""
    if x.ndim != 3:
        raise ValueError(f"x must have shape (batch, time, d_model), got {tuple(x.shape)}")
    weights = {name: w for name, w in params.items() if name != "n_heads"}
    config = TransformerConfig(vocab_size=1, context=x.shape[1], n_layers=1, n_heads=params["n_heads"],
                               d_model=x.shape[2], d_ff=weights["ff.fc.weight"].shape[0])
    with torch.random.fork_rng(devices=[]):  # building layers draws from the global generator
        block = Block(config).to(x.dtype)
    block.load_state_dict(weights)
    with torch.no_grad():
        return block.eval()(x)


def training_flops_per_token(n_params: int, n_layers: int, context: int, d_model: int) -> float:
    """Training FLOPs per token: 6 per weight of the matrix products, plus attention's 12·layers·context·d_model."""
    for value, name in ((n_params, "n_params"), (n_layers, "n_layers"), (context, "context"), (d_model, "d_model")):
        positive_int(value, name)
    return float(6 * n_params + 12 * n_layers * context * d_model)


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


def _schedule(step: int, iterations: int = 100, warmup: int = 10) -> tuple:
    """A step of a schedule from 1e-3 down to 1e-4."""
    return step, 1e-3, 1e-4, warmup, iterations


def _grads(shapes: tuple[tuple[int, ...], ...], seed: int, scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(shape, generator=g, dtype=torch.float64) for shape in shapes]


_SHAPES = ((3, 4), (4,), (2, 2, 3))


def _block_case(b: int, t: int, d: int, heads: int, seed: int, ff: int | None = None) -> tuple:
    """An input (b, t, d) and a block's weights drawn at a scale where every part of the block matters."""
    g = torch.Generator().manual_seed(seed)

    def draw(*shape: int, scale: float, mean: float = 0.0) -> torch.Tensor:
        return mean + scale * torch.randn(shape, generator=g, dtype=torch.float64)

    ff = ff or 4 * d
    params = {
        "norm1.weight": draw(d, scale=0.2, mean=1.0), "norm1.bias": draw(d, scale=0.2),
        "attn.qkv.weight": draw(3 * d, d, scale=1.5 / d**0.5), "attn.qkv.bias": draw(3 * d, scale=0.2),
        "attn.proj.weight": draw(d, d, scale=1 / d**0.5), "attn.proj.bias": draw(d, scale=0.2),
        "norm2.weight": draw(d, scale=0.2, mean=1.0), "norm2.bias": draw(d, scale=0.2),
        "ff.fc.weight": draw(ff, d, scale=1 / d**0.5), "ff.fc.bias": draw(ff, scale=0.2),
        "ff.proj.weight": draw(d, ff, scale=1 / ff**0.5), "ff.proj.bias": draw(d, scale=0.2),
        "n_heads": heads,
    }
    return draw(b, t, d, scale=1.0, mean=0.5), params


PUBLIC = Assignment(
    key="05_transformer_training",
    title="Training a Transformer language model",
    items=(
        AnswerItem(
            name="ANSWER_STEP_ORDER", points=1, form=ORDER, choices=("A", "B", "C", "D", "E"),
            hint="what must exist before a gradient can be computed, and what must exist before the "
                 "optimizer can use it? Gradients are cleared once the update has used them.",
        ),
        FunctionItem(
            name="causal_mask", points=1, reference=causal_mask,
            public=(Case((4,)),),
            hint="row i is the query position, column j the key position: True on and below the "
                 "diagonal (torch.tril of a matrix of ones, as booleans).",
        ),
        FunctionItem(
            name="causal_attention", points=2, reference=causal_attention,
            public=(Case(lambda: _qkv((4, 3), 51)), Case(lambda: _qkv((2, 2, 5, 4), 52))),
            rtol=1e-6, atol=1e-9,
            hint="scores = q @ kᵀ / √d (d = q.shape[-1]); set the scores above the diagonal to -inf "
                 "before the softmax over the last dimension; then multiply by v.",
        ),
        FunctionItem(
            name="next_token_loss", points=2, reference=next_token_loss,
            public=(Case(lambda: _logits_tokens(1, 4, 3, 56)), Case(lambda: _logits_tokens(2, 6, 5, 57))),
            rtol=1e-6, atol=1e-9,
            hint="the logits at position t predict token t + 1: pair logits[:, :-1] with tokens[:, 1:], "
                 "flatten both, and average the cross-entropy over all B·(T-1) predictions.",
        ),
        AnswerItem(
            name="ANSWER_PARALLEL_TRAINING", points=1, choices=("A", "B", "C", "D"),
            hint="during training the true previous tokens are known; what stops position t from "
                 "seeing token t + 1 when all positions are processed at once?",
        ),
        FunctionItem(
            name="training_steps", points=2, reference=training_steps,
            public=(Case(lambda: _model_and_batches(61, 3, 0.5)),),  # 3 steps: stale gradients show at the 3rd
            rtol=1e-5, atol=1e-7,
            hint="for each batch: loss = model.loss(x, y); loss.backward(); optimizer.step(); "
                 "optimizer.zero_grad(); record loss.item() — with one torch.optim.SGD made before the loop.",
        ),
        AnswerItem(
            name="ANSWER_FALLING_LOSS", points=1, choices=("A", "B", "C", "D"),
            hint="the training loss is measured on the data the parameters were fitted to.",
        ),
        AnswerItem(
            name="ANSWER_LONG_INPUTS", points=1, choices=("A", "B", "C", "D"),
            hint="count the pairs of tokens self-attention compares, and the steps a recurrent model "
                 "needs to carry information from the first token to the last.",
        ),
        FunctionItem(
            name="lr_schedule", points=1, reference=lr_schedule,
            # the first warm-up step, the peak, the middle of the cosine, its end and a step past it
            public=tuple(Case(_schedule(step)) for step in (0, 9, 10, 55, 100, 150)),
            rtol=1e-9, atol=1e-15,
            hint="warm-up: lr·(step + 1)/warmup while step < warmup, so step warmup − 1 is the peak; after it "
                 "progress = (step − warmup)/(iterations − warmup), capped at 1, and "
                 "min_lr + ½(lr − min_lr)(1 + cos(π·progress)).",
        ),
        FunctionItem(
            name="clip_gradients", points=2, reference=clip_gradients,
            public=(Case(lambda: (_grads(_SHAPES, 71, 1.0), 1.0)),  # norm about 6.5: scaled down
                    Case(lambda: (_grads(_SHAPES, 72, 0.1), 1.0))),  # norm about 0.66: left alone
            rtol=1e-5, atol=1e-9,
            hint="one norm for all the gradients together: √(Σ over every tensor of Σ g²). When it is above "
                 "max_norm, multiply every tensor by max_norm / norm; otherwise leave them as they are. "
                 "Return the list and the norm measured before clipping.",
        ),
        FunctionItem(
            name="prenorm_block", points=2, reference=prenorm_block,
            public=(Case(lambda: _block_case(2, 5, 8, 2, 81)), Case(lambda: _block_case(1, 6, 12, 3, 82, ff=20))),
            rtol=1e-6, atol=1e-9,
            hint="h = x + attention(LayerNorm₁(x)), then h + MLP(LayerNorm₂(h)); a linear layer is u @ Wᵀ + b; "
                 "split q, k, v from the qkv output, then each into n_heads heads of width d/n_heads; scores "
                 "scaled by 1/√(d/n_heads), the future masked out; LayerNorm with eps = 1e-5; exact GELU.",
        ),
        FunctionItem(
            name="training_flops_per_token", points=1, reference=training_flops_per_token,
            public=(Case((123_532_032, 12, 1024, 768)),  # GPT-2 small: 124M weights, 12 blocks of width 768
                    Case((1_000_000, 2, 256, 128))),  # a small model, where attention is a large share
            rtol=1e-9, atol=0.0,
            hint="forward: 2 FLOPs (a multiply and an add) per weight per token, plus 2·T·d for the scores "
                 "and 2·T·d for the weighted sum in each layer; the backward pass costs twice the forward.",
        ),
        AnswerItem(
            name="ANSWER_MFU", points=1, form=NUMBER,
            hint="FLOPs per token from your training_flops_per_token × tokens per second = achieved FLOP/s; "
                 "divide by the peak (989 × 10¹² FLOP/s) and give a fraction, not a percentage.",
        ),
        AnswerItem(
            name="ANSWER_CURVES", points=2, form=ORDER, choices=("A", "B", "C", "D"),
            hint="when in the run does the trouble start, does the held-out loss follow the training loss, and "
                 "what did the gradient norm do?",
        ),
    ),
    notes={"lesson": "notebooks/05_transformer_training.ipynb"},
)
