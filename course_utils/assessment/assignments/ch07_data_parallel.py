"""Chapter 07 assignment: data-parallel training optimises the same global objective as one process."""

from __future__ import annotations

import torch

from ...distributed import global_mean_nll
from ...validate import as_tensor, positive_int
from ..items import NUMBER, AnswerItem, Assignment, Case, FunctionItem


def _pairs(table, prev, nxt, world_size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    w = torch.as_tensor(table, dtype=torch.float64)
    p, n = torch.as_tensor(prev, dtype=torch.long), torch.as_tensor(nxt, dtype=torch.long)
    k = positive_int(world_size, "world_size")
    if w.ndim != 2 or w.shape[0] != w.shape[1] or p.ndim != 1 or p.shape != n.shape:
        raise ValueError(f"table must be (V, V) and prev, nxt two 1-D tensors of one length, got "
                         f"{tuple(w.shape)}, {tuple(p.shape)} and {tuple(n.shape)}")
    if len(p) % k:
        raise ValueError(f"{len(p)} pairs do not split evenly across {k} workers")
    return w, p, n, k


def data_parallel_gradient(table, prev, nxt, world_size: int) -> torch.Tensor:
    """The mean over k workers of each one's gradient of its shard's mean bigram NLL (the all-reduce's result)."""
    return _shard_gradients(*_pairs(table, prev, nxt, world_size)).mean(0)


def _shard_gradients(table: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor, world_size: int,
                     reduction: str = "mean") -> torch.Tensor:
    """(k, V, V): each worker's gradient of its shard's bigram NLL (its mean, or its sum), consecutive equal shards."""
    grads = []
    for ps, ns in zip(prev.chunk(world_size), nxt.chunk(world_size), strict=True):
        v = table.clone().requires_grad_(True)
        terms = -torch.log_softmax(v[ps], dim=-1).gather(1, ns[:, None])
        grads.append(torch.autograd.grad(terms.mean() if reduction == "mean" else terms.sum(), v)[0])
    return torch.stack(grads)


def loss_scales(counts) -> torch.Tensor:
    """Per worker, k·nᵢ / Σ n: scaled by it, DDP's plain gradient average is the global mean NLL's gradient."""
    n = as_tensor(counts, "counts")
    if (n < 0).any() or n.sum() == 0:
        raise ValueError(f"counts must be >= 0 with a positive total, got {n.tolist()}")
    return len(n) * n / n.sum()


def _bigram_case(vocab: int, pairs: int, world_size: int, seed: int) -> tuple:
    """(table, prev, nxt, world_size): random bigram logits and a global batch of (previous, next) pairs."""
    g = torch.Generator().manual_seed(seed)
    table = 1.5 * torch.randn(vocab, vocab, generator=g, dtype=torch.float64)
    return table, torch.randint(vocab, (pairs,), generator=g), torch.randint(vocab, (pairs,), generator=g), world_size


PUBLIC = Assignment(
    key="07_data_parallel",
    title="Data-parallel training is still maximum likelihood",
    items=(
        FunctionItem(
            name="global_mean_nll", points=2, reference=global_mean_nll,
            # unequal shards: the plain mean of the workers' means is 1.5 here, the global mean 1.75
            public=(Case(([2.0, 1.0], [300, 100])), Case(([1.8, 2.4, 2.1], [512, 96, 512]))),
            rtol=1e-9, atol=1e-12,
            hint="the global mean is a sum over all tokens divided by their number: Σ nᵢ·mᵢ / Σ nᵢ. The plain "
                 "mean of the workers' means is right only when every worker holds the same number of tokens.",
        ),
        AnswerItem(
            name="ANSWER_MEAN_OF_MEANS", points=1, choices=("A", "B", "C", "D"),
            hint="write the global mean as Σ nᵢ·mᵢ / Σ nᵢ: when do all the weights nᵢ / Σ n equal 1/k?",
        ),
        FunctionItem(
            name="data_parallel_gradient", points=3, reference=data_parallel_gradient,
            public=(Case(lambda: _bigram_case(5, 8, 2, 71)),),
            rtol=1e-9, atol=1e-12,
            hint="cut the pairs into world_size consecutive equal shards; for each, the gradient of its MEAN NLL "
                 "−log softmax(table[prev])[nxt] with respect to the table (autograd); then the mean of those "
                 "gradients, as the all-reduce (a sum) divided by the number of workers gives.",
        ),
        FunctionItem(
            name="loss_scales", points=2, reference=loss_scales,
            public=(Case(([300, 100],)), Case(([512, 96, 512, 512],))),
            rtol=1e-9, atol=1e-12,
            hint="DDP computes (1/k)·Σ sᵢ∇mᵢ; the global gradient is Σ (nᵢ / Σ n)∇mᵢ. Match the weights: "
                 "sᵢ = k·nᵢ / Σ n (all ones when the shards are equal).",
        ),
        AnswerItem(
            name="ANSWER_SAME_DATA", points=1, choices=("A", "B", "C", "D"),
            hint="one process draws B windows per step; two workers together must see exactly those B windows.",
        ),
        AnswerItem(
            name="ANSWER_CHECKPOINT", points=1, choices=("A", "B", "C", "D"),
            hint="after an optimizer step, what do the workers' parameters and optimizer states look like?",
        ),
        AnswerItem(
            name="ANSWER_RING_BYTES", points=2, form=NUMBER,
            hint="S = 4 bytes × 124 × 10⁶ parameters; each worker sends 2(k − 1)/k · S bytes; give gigabytes "
                 "(10⁹ bytes).",
        ),
        AnswerItem(
            name="ANSWER_WHAT_SCALES", points=1, choices=("A", "B", "C", "D"),
            hint="the global batch, and so every step's gradient, is the same; what changes is who computes it.",
        ),
    ),
    notes={"lesson": "notebooks/07_data_parallel.ipynb"},
)
