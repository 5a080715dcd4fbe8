"""Chapter 02 assignment: the autoregressive decomposition of a sequence's likelihood."""

from __future__ import annotations

import math

import torch

from ...ngram import as_sequences, bigram_counts, bigram_probabilities
from ...sequences import (
    bits_from_log_probs,
    perplexity_from_log_probs,
    response_log_prob,
    sequence_log_prob,
    sum_log_probs,
    temperature_distribution,
    two_sequence_objective,
)
from ...validate import (
    as_tensor,
    int_at_least,
    non_negative_float,
    positive_float,
    positive_int,
    probability_rows,
    token_id,
)
from ..items import NUMBER, AnswerItem, Assignment, Case, FunctionItem


def most_likely_sequence(sequences) -> int:
    """Index of the sequence with the highest log-probability Σ_i log Pr(x_i | x_<i) (first on ties)."""
    if len(sequences) == 0:
        raise ValueError("sequences is empty: at least one sequence is needed")
    scores = [sequence_log_prob(s) for s in sequences]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def bigram_by_gradient(tokens, vocab_size: int, steps: int, lr: float) -> torch.Tensor:
    """softmax(W) after `steps` plain gradient steps of size `lr` from W = 0 on the mean NLL of the pairs.

    The mean NLL is −(1/N) Σ_(a,b) C[a, b] log softmax(W[a])_b over the N adjacent pairs, so the
    gradient of row a is (C[a, ·].sum() · softmax(W[a]) − C[a, ·]) / N: the closed form of what
    autograd computes through one_hot(previous) @ W. Rows never seen get no gradient and stay uniform.
    """
    seq = as_sequences(tokens, vocab_size)
    if len(seq) != 1 or seq[0].numel() < 2:
        raise ValueError("tokens must be one sequence of at least 2 token ids (one pair)")
    steps, lr = int_at_least(steps, "steps", 0), positive_float(lr, "lr")
    counts = bigram_counts(seq, vocab_size)[1]
    n_pairs, totals = counts.sum(), counts.sum(1, keepdim=True)
    w = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    for _ in range(steps):
        w = w - lr * (totals * torch.softmax(w, 1) - counts) / n_pairs
    return torch.softmax(w, 1)


def heldout_best_smoothing(train_tokens, heldout_tokens, vocab_size: int, ks) -> float:
    """The add-k constant whose bigram model (fitted on `train_tokens`) gives the held-out pairs the highest
    log-likelihood Σ log P_k(b | a); the first such k on a tie."""
    ks_t = as_tensor(ks, "ks")
    candidates = [non_negative_float(float(k), "each k in ks") for k in ks_t]
    held = as_sequences(heldout_tokens, vocab_size)
    if len(held) != 1 or held[0].numel() < 2:
        raise ValueError("heldout_tokens must be one sequence of at least 2 token ids (one pair)")
    x = held[0]
    scores = [float(torch.log(bigram_probabilities(train_tokens, vocab_size, k)[x[:-1], x[1:]]).sum())
              for k in candidates]
    return candidates[max(range(len(scores)), key=lambda i: (scores[i], -i))]


def sample_bigram(transition, first: int, n_tokens: int, seed: int) -> list[int]:
    """`n_tokens` ids starting with `first`, each next one drawn from the row of the previous one.

    One generator, `torch.Generator().manual_seed(seed)`, makes every draw: one
    `torch.multinomial(transition[previous], 1, generator=generator)` per new token.
    """
    table = probability_rows(transition, "transition")
    if table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"transition must be a square (V, V) matrix, got shape {tuple(table.shape)}")
    out = [token_id(first, table.shape[0], "first")]
    n_tokens, seed = positive_int(n_tokens, "n_tokens"), int_at_least(seed, "seed", 0)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_tokens - 1):
        out.append(int(torch.multinomial(table[out[-1]], 1, generator=generator)))
    return out


# the sampler's public cases: a table whose rows and columns differ, so that a column is not a row
_TABLE = ((0.1, 0.6, 0.3), (0.7, 0.1, 0.2), (0.2, 0.2, 0.6))


def _table() -> torch.Tensor:
    return torch.tensor(_TABLE, dtype=torch.float64)


PUBLIC = Assignment(
    key="02_autoregressive",
    title="Autoregressive decomposition of sequence likelihood",
    items=(
        FunctionItem(
            name="sequence_log_prob", points=2, reference=sequence_log_prob,
            public=(Case(([0.5, 0.25],)), Case((torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64),)),
                    Case(([0.5] * 2000,))),  # the product underflows to 0; the sum of logs does not
            rtol=1e-6, atol=1e-6,
            hint="add log Pr(x_i | x_<i) over every position, the first included; never multiply "
                 "log-probabilities, and never take the log of the product (it underflows).",
            non_finite_hint="your answer underflows: the product of 2000 probabilities of 0.5 is 0 in floating "
                            "point, and log 0 = -inf. Sum the logs instead.",
        ),
        FunctionItem(
            name="objective_two_sequences", points=2, reference=two_sequence_objective,
            public=(Case((0.5, 0.4, 0.9, 0.3, 0.2)),),
            rtol=1e-6, atol=1e-6,
            hint="five terms: log Pr(x_0) + log Pr(x_1|x_0) + log Pr(y_0) + log Pr(y_1|y_0) + "
                 "log Pr(y_2|y_0,y_1). The objective adds the two sequences' log-probabilities.",
        ),
        AnswerItem(
            name="ANSWER_OBJECTIVE_CHANGE", points=1, form=NUMBER,
            hint="the objective is a plain sum over sequences; only one term changed.",
        ),
        AnswerItem(
            name="ANSWER_LONG_SEQUENCES", points=1, choices=("A", "B", "C", "D"),
            hint="count the terms each sequence adds to the objective, and their sign.",
        ),
        AnswerItem(
            name="ANSWER_CHAIN_RULE", points=1, choices=("A", "B", "C", "D"),
            hint="which rule writes Pr(x) as a product of conditionals?",
        ),
        AnswerItem(
            name="ANSWER_LOG_CLAIM", points=1, choices=(True, False),
            hint="log(a · b) = log a + log b: which way round does the logarithm convert?",
        ),
        FunctionItem(
            name="conditional_log_likelihood", points=1, reference=sum_log_probs,
            public=(Case(([-0.7, -0.4],)),),
            rtol=1e-6, atol=1e-6,
            hint="the steps are already log-probabilities: add them (do not multiply them, "
                 "and do not add the probabilities).",
        ),
        FunctionItem(
            name="response_log_likelihood", points=1, reference=response_log_prob,
            public=(Case(([-1.2, -0.9, -0.7, -0.4], 2)), Case(([-2.0, -0.5, -0.3], 1))),
            rtol=1e-6, atol=1e-9,
            hint="log Pr(y | x) adds only the response's terms, those from position prompt_length on "
                 "(0-based); the prompt's own terms belong to log Pr(x), and their sum with log Pr(y | x) "
                 "is the joint log Pr(x, y).",
        ),
        AnswerItem(
            name="ANSWER_FLAWED_CALCULATION", points=1, choices=("A", "B", "C", "D"),
            hint="compute what each described mistake would give and compare with the reported 0.28.",
        ),
        FunctionItem(
            name="most_likely_sequence", points=1, reference=most_likely_sequence,
            public=(Case(([[0.5, 0.5], [0.9, 0.1], [0.6, 0.6]],)),
                    # summed probabilities favour the long one; its log-probability is lower
                    Case(([[0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [0.5]],))),
            hint="score each sequence by the sum of the logs of its conditionals and return the "
                 "index (0-based) of the highest score.",
        ),
        FunctionItem(
            name="bigram_mle", points=2, reference=bigram_probabilities,
            public=(Case(([0, 1, 1, 2, 0, 1], 3)),
                    Case(([0, 0, 1], 3))),  # tokens 1 and 2 are never followed by anything: uniform rows
            rtol=1e-6, atol=1e-7,
            hint="count pairs C[a, b] = #(a followed by b) and divide each row by its total; a row "
                 "with no counts is uniform, 1 / vocab_size. Return a (V, V) tensor.",
            non_finite_hint="a token that is never followed by anything has a row of zero counts, and 0 / 0 "
                            "is NaN: give that row the uniform distribution 1 / vocab_size.",
        ),
        FunctionItem(
            name="fit_bigram_by_gradient", points=2, reference=bigram_by_gradient,
            # few steps: the count table is where gradient descent is heading, not where it is yet
            public=(Case(([0, 1, 1, 2, 0, 1], 3, 5, 1.0)), Case(([0, 0, 1], 3, 3, 2.0))),
            rtol=1e-5, atol=1e-6,
            hint="start from W = 0 (a (V, V) tensor with requires_grad); each of exactly `steps` torch.optim.SGD "
                 "steps with learning rate `lr` minimises the MEAN negative log-likelihood of the pairs, "
                 "-log_softmax(one_hot(previous) @ W, dim=1)[i, next]; return softmax(W, dim=1).",
        ),
        FunctionItem(
            name="choose_smoothing", points=2, reference=heldout_best_smoothing,
            public=(Case(([0, 1, 0, 1, 0, 2, 0, 1], [0, 1, 0, 2, 2, 0, 1], 3, [0.0, 0.01, 0.1, 1.0, 10.0])),),
            rtol=1e-9, atol=1e-12,
            hint="fit (C + k) / (row total + k·V) on the TRAINING tokens for each k, score the HELD-OUT pairs "
                 "by Σ log P_k(b | a), and return the k (not its score) with the highest held-out score.",
        ),
        FunctionItem(
            name="perplexity_from_log_probs", points=1, reference=perplexity_from_log_probs,
            public=(Case(([math.log(0.25)] * 3,)),),
            rtol=1e-6, atol=1e-9,
            hint="perplexity = exp(mean negative log-probability per token), in nats: use the mean, "
                 "not the sum, and exp, not 2**.",
        ),
        FunctionItem(
            name="bits_from_log_probs", points=1, reference=bits_from_log_probs,
            public=(Case(([math.log(0.25)] * 3,)), Case(([-0.2, -1.9, -0.6, -1.4],))),
            rtol=1e-6, atol=1e-9,
            hint="bits per token = (mean negative log-probability in nats) / ln 2; a model that gives every "
                 "token probability 1/4 needs 2 bits per token.",
        ),
        FunctionItem(
            name="temperature_probs", points=1, reference=temperature_distribution,
            public=(Case(([0.5, 0.3, 0.2], 1.0)), Case(([0.5, 0.3, 0.2], 0.5))),
            rtol=1e-6, atol=1e-9,
            hint="raise each probability to the power 1/T and renormalise (or softmax(log p / T)); "
                 "T = 0 means greedy: probability 1 on the most probable token. Return a tensor.",
        ),
        FunctionItem(
            name="sample_bigram", points=2, reference=sample_bigram,
            public=(Case(lambda: (_table(), 0, 12, 0)), Case(lambda: (_table(), 2, 8, 5))),
            hint="one generator for the whole sample, torch.Generator().manual_seed(seed); start the list with "
                 "`first`, then draw each next id with torch.multinomial(transition[previous], 1, "
                 "generator=generator), where previous is the id just drawn, until the list holds n_tokens ids.",
        ),
    ),
    notes={"lesson": "notebooks/02_autoregressive.ipynb"},
)
