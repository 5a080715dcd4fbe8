"""Chapter 02 assignment: the autoregressive decomposition of a sequence's likelihood."""

from __future__ import annotations

import math

import torch

from ...ngram import bigram_probabilities
from ...sequences import (
    perplexity_from_log_probs,
    sequence_log_prob,
    sum_log_probs,
    temperature_distribution,
    two_sequence_objective,
)
from ..items import NUMBER, AnswerItem, Assignment, Case, FunctionItem


def most_likely_sequence(sequences) -> int:
    """Index of the sequence with the highest log-probability Σ_i log Pr(x_i | x_<i) (first on ties)."""
    if len(sequences) == 0:
        raise ValueError("sequences is empty: at least one sequence is needed")
    scores = [sequence_log_prob(s) for s in sequences]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


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
            name="perplexity_from_log_probs", points=1, reference=perplexity_from_log_probs,
            public=(Case(([math.log(0.25)] * 3,)),),
            rtol=1e-6, atol=1e-9,
            hint="perplexity = exp(mean negative log-probability per token), in nats: use the mean, "
                 "not the sum, and exp, not 2**.",
        ),
        FunctionItem(
            name="temperature_probs", points=1, reference=temperature_distribution,
            public=(Case(([0.5, 0.3, 0.2], 1.0)), Case(([0.5, 0.3, 0.2], 0.5))),
            rtol=1e-6, atol=1e-9,
            hint="raise each probability to the power 1/T and renormalise (or softmax(log p / T)); "
                 "T = 0 means greedy: probability 1 on the most probable token. Return a tensor.",
        ),
    ),
    notes={"lesson": "notebooks/02_autoregressive.ipynb"},
)
