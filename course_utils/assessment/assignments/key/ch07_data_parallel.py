"""Instructor key for chapter 07: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import torch

from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch07_data_parallel import _bigram_case, _shard_gradients


def _nll(means, counts, weighted=True, divide_by="total") -> float:
    m, n = torch.as_tensor(means, dtype=torch.float64), torch.as_tensor(counts, dtype=torch.float64)
    if not weighted:
        return float(m.mean())
    total = (m * n).sum()
    return float(total / {"total": n.sum(), "workers": len(n), "nothing": 1.0}[divide_by])


def _gradient(table, prev, nxt, world_size, combine="mean", reduction="mean") -> torch.Tensor:
    stacked = _shard_gradients(table, prev, nxt, world_size, reduction)
    return {"mean": stacked.mean(0), "sum": stacked.sum(0), "first": stacked[0]}[combine]


def _scales(counts, form="right") -> torch.Tensor:
    n = torch.as_tensor(counts, dtype=torch.float64)
    return {"fraction": n / n.sum(), "ones": torch.ones_like(n), "inverse": n.sum() / (len(n) * n)}[form]


KEY = {
    "global_mean_nll": FunctionKey(
        hidden=(Case(([1.0, 3.0], [50, 50])),  # equal shards: the plain mean is right
                Case(([2.5, 9.9], [10, 0])),  # a worker whose shard is all padding counts for nothing
                Case(([1.234], [7])),
                Case(([0.7, 1.9, 3.2, 2.2, 0.4, 1.1, 2.8, 1.6], [64, 3, 128, 17, 90, 512, 1, 40]))),
        mistakes=(
            Mistake("the plain mean of the workers' means", lambda m, n: _nll(m, n, weighted=False), pitfall=True),
            Mistake("the weighted sum divided by the number of workers",
                    lambda m, n: _nll(m, n, divide_by="workers")),
            Mistake("the weighted sum, not divided by the token count", lambda m, n: _nll(m, n, divide_by="nothing")),
        ),
    ),
    "ANSWER_MEAN_OF_MEANS": AnswerKey(
        expected="B",
        why_not=(("A", "with 300 tokens at mean 2.0 and 100 at mean 1.0 the global mean is 1.75, not 1.5: the "
                       "plain mean gives each of the second worker's tokens three times the weight."),
                 ("C", "the global mean weighs each worker by its share of the tokens, which the global batch's size "
                       "does not fix; a power of two changes nothing."),
                 ("D", "equal batch rows are not equal token counts: padding and ignored targets (prompt tokens) "
                       "leave some rows with fewer counted targets.")),
    ),
    "data_parallel_gradient": FunctionKey(
        hidden=(Case(lambda: _bigram_case(4, 6, 1, 72)),  # one worker: the global batch itself
                Case(lambda: _bigram_case(7, 12, 4, 73)),
                Case(lambda: _bigram_case(3, 9, 3, 74)),
                Case(lambda: _bigram_case(6, 32, 8, 75))),
        mistakes=(
            Mistake("sums the workers' gradients (an all-reduce without dividing by k)",
                    lambda w, p, n, k: _gradient(w, p, n, k, combine="sum")),
            Mistake("keeps worker 0's gradient (no all-reduce)",
                    lambda w, p, n, k: _gradient(w, p, n, k, combine="first")),
            Mistake("each worker differentiates its shard's summed NLL",
                    lambda w, p, n, k: _gradient(w, p, n, k, reduction="sum")),
        ),
    ),
    "loss_scales": FunctionKey(
        hidden=(Case(([5, 5, 5],)),  # equal shards: no scaling
                Case(([1, 99],)),
                Case(([0, 10, 30],)),
                Case(([64, 3, 128, 17, 90, 512, 1, 40],))),
        mistakes=(
            Mistake("nᵢ / Σ n: forgets that DDP divides the sum of gradients by k", lambda n: _scales(n, "fraction"),
                    pitfall=True),
            Mistake("all ones: the plain mean of the workers' mean losses", lambda n: _scales(n, "ones")),
            Mistake("Σ n / (k·nᵢ): upside down", lambda n: _scales(n, "inverse")),
        ),
    ),
    "ANSWER_SAME_DATA": AnswerKey(
        expected="B",
        why_not=(("A", "seeding by rank gives each worker different random windows: together they see other data "
                       "than the single process, so the two runs cannot follow one loss curve."),
                 ("C", "with the same seed both workers draw the same B/2 windows: they duplicate each other's data, "
                       "and the global batch holds B/2 distinct windows instead of the single process's B."),
                 ("D", "worker 0 would see all B windows of the single process's batch and worker 1 a different "
                       "batch; the global batch would be 2B windows, half of them from another stream.")),
    ),
    "ANSWER_CHECKPOINT": AnswerKey(
        expected="A",
        why_not=(("B", "no worker's model is better: after the all-reduce every worker applies the same update to "
                       "the same parameters."),
                 ("C", "every worker holds a full optimizer state (AdamW's moments); under plain data parallelism "
                       "they are identical across workers."),
                 ("D", "each worker keeps its own generator, and because all of them draw the same global batches "
                       "their generators are in the same state: rank 0's copy serves every worker.")),
    ),
    "ANSWER_RING_BYTES": AnswerKey(expected=0.868, atol=0.005),
    "ANSWER_WHAT_SCALES": AnswerKey(
        expected="A",
        why_not=(("B", "each step's gradient is the gradient of the same global batch, so the loss per step is "
                       "the same; only the time per step can fall."),
                 ("C", "every worker's gradient is all-reduced into the gradient of the global objective: no worker "
                       "fits its own shard, so the optimum is unchanged."),
                 ("D", "the global batch is unchanged, so the same learning rate gives the same run; the learning "
                       "rate is retuned when the global batch grows, not when the work is split.")),
    ),
}
