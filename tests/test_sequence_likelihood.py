"""Chapter 02's sequence maths in `course_utils.sequences`, and the one temperature function."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.sequences import (
    bits_from_log_probs,
    bits_per_token,
    dataset_log_likelihood,
    perplexity,
    perplexity_from_bits,
    perplexity_from_log_probs,
    response_log_prob,
    sequence_log_prob,
    sum_log_probs,
    temperature_distribution,
    two_sequence_objective,
    within_term_bound,
)


def test_chain_rule_equals_log_of_the_joint():
    conditionals = [0.5, 0.25, 0.8]
    assert sequence_log_prob(conditionals) == pytest.approx(math.log(0.5 * 0.25 * 0.8), abs=1e-12)
    assert sequence_log_prob(torch.tensor(conditionals)) == pytest.approx(math.log(0.1), abs=1e-7)


def test_long_sequences_do_not_underflow():
    # the product 0.5**2000 is 0 in float64; the sum of logs is exact
    assert math.prod([0.5] * 2000) == 0.0
    assert sequence_log_prob([0.5] * 2000) == pytest.approx(2000 * math.log(0.5), rel=1e-12)


def test_one_impossible_token_makes_the_sequence_impossible():
    assert sequence_log_prob([0.9, 0.0, 0.9]) == -math.inf
    assert sequence_log_prob([0.9, 1e-12, 0.9]) < -27


@pytest.mark.parametrize("bad", [[], [0.5, 1.5], [-0.1], "0.5", [[0.5]], [float("nan")]])
def test_sequence_log_prob_rejects_non_probabilities(bad):
    with pytest.raises(ValueError):
        sequence_log_prob(bad)


def test_conditional_log_likelihood_of_the_seed_example():
    assert sum_log_probs([-0.7, -0.4]) == pytest.approx(-1.1, abs=1e-12)
    with pytest.raises(ValueError, match="<= 0"):
        sum_log_probs([-0.7, 0.4])


def test_two_sequence_objective_has_all_five_terms():
    p = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert two_sequence_objective(*p) == pytest.approx(sum(math.log(v) for v in p), abs=1e-12)
    # each term matters: changing any one probability changes the objective by its log-ratio
    for i in range(5):
        q = list(p)
        q[i] = p[i] / 2
        assert two_sequence_objective(*q) == pytest.approx(two_sequence_objective(*p) - math.log(2))


def test_dataset_objective_and_the_2_5_change():
    data = [[0.5, 0.4], [0.9, 0.3, 0.05], [0.6]]
    total = dataset_log_likelihood(data)
    assert total == pytest.approx(sum(sequence_log_prob(s) for s in data))
    improved = [[0.5, 0.4], [0.9, 0.3, 0.05 * math.exp(2.5)], [0.6]]  # only sequence 2 gains 2.5
    assert dataset_log_likelihood(improved) - total == pytest.approx(2.5, abs=1e-12)


def test_dataset_objective_sums_every_token():
    data = [[0.5], [0.5] * 9]
    assert dataset_log_likelihood(data) == pytest.approx(10 * math.log(0.5))
    with pytest.raises(ValueError, match="non-empty list"):
        dataset_log_likelihood([])


def test_perplexity_and_bits():
    assert perplexity(math.log(4)) == pytest.approx(4.0)
    assert perplexity_from_log_probs([math.log(0.25)] * 3) == pytest.approx(4.0)
    assert perplexity_from_log_probs([math.log(0.5), math.log(0.125)]) == pytest.approx(4.0)
    assert bits_per_token(math.log(8)) == pytest.approx(3.0)
    assert perplexity_from_bits(3.0) == pytest.approx(perplexity(math.log(8)))
    assert perplexity(0.0) == 1.0
    for f in (perplexity, bits_per_token, perplexity_from_bits):
        with pytest.raises(ValueError):
            f(-0.1)
    with pytest.raises(ValueError, match="<= 0"):
        perplexity_from_log_probs([0.3])


def test_temperature_distribution():
    p = [0.5, 0.3, 0.2]
    assert temperature_distribution(p, 1.0).tolist() == pytest.approx(p)
    assert temperature_distribution(p, 0).tolist() == [1.0, 0.0, 0.0]
    t = temperature_distribution(p, 2.0)
    root = torch.tensor(p, dtype=torch.float64) ** 0.5
    assert torch.allclose(t, root / root.sum())
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="temperature must be a"):
            temperature_distribution(p, bad)
    with pytest.raises(ValueError, match="probs must sum to 1, but sums to 1.1"):
        temperature_distribution([0.5, 0.6], 1.0)
    with pytest.raises(ValueError, match="probs must sum to 1 along its last axis"):
        temperature_distribution([[0.5, 0.5], [0.5, 0.6]], 1.0)
    with pytest.raises(ValueError, match="negative"):
        temperature_distribution([1.5, -0.5], 1.0)


def test_temperature_works_row_by_row_along_the_last_axis():
    g = torch.Generator().manual_seed(0)
    table = torch.softmax(torch.randn(3, 4, 6, generator=g, dtype=torch.float64), -1)
    table[0, 0] = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0, 0.0])  # zeros stay zero; a tie goes to the first
    for t in (0.0, 0.3, 1.0, 2.5):
        whole = temperature_distribution(table, t)
        assert whole.shape == table.shape and whole.dtype == torch.float64
        for i in range(3):
            for j in range(4):
                torch.testing.assert_close(whole[i, j], temperature_distribution(table[i, j], t), rtol=0, atol=1e-15)
    assert temperature_distribution(table[0, 0], 0).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert temperature_distribution(table[0, 0], 0.5).tolist() == [0.0, 0.5, 0.0, 0.5, 0.0, 0.0]


def test_temperature_of_softmax_is_softmax_of_scaled_logits():
    z = torch.randn(5, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    for t in (0.05, 0.7, 1.0, 3.0):
        torch.testing.assert_close(temperature_distribution(torch.softmax(z, -1), t), torch.softmax(z / t, -1),
                                   rtol=1e-12, atol=1e-12)


def test_temperature_is_stable_near_zero():
    p = [0.5, 0.3, 0.2]
    # at T = 1e-3, p^(1/T) underflows to 0 for every entry (0/0); the ratios to the largest do not
    assert temperature_distribution(p, 1e-3).tolist() == pytest.approx([1.0, 0.6**1000, 0.4**1000], rel=1e-9, abs=0)
    for t in (1e-30, 1e-300):
        assert temperature_distribution(p, t).tolist() == [1.0, 0.0, 0.0]
    assert temperature_distribution([0.25, 0.25, 0.5], 1e-300).tolist() == [0.0, 0.0, 1.0]


def _generate_with_scaled_logits(model, idx, n_new, generator, temperature):
    """Sampling as `generate` did before it used `temperature_distribution`: softmax(z / T), argmax at 0."""
    for _ in range(n_new):
        logits = model(idx[:, -model.config.context:])[:, -1].float()
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            nxt = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)
        idx = torch.cat([idx, nxt], dim=1)
    return idx


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
def test_generate_samples_the_same_tokens_as_softmax_of_scaled_logits(temperature):
    from course_utils.models import Transformer, TransformerConfig

    model = Transformer(TransformerConfig(vocab_size=23, context=16, n_layers=2, n_heads=2, d_model=32), seed=3)
    with torch.no_grad():  # logits 5× those at initialisation: about 2 nats of entropy per step, not log 23
        model.head.weight.mul_(5.0)
    model.eval()
    prompt = torch.randint(23, (4, 5), generator=torch.Generator().manual_seed(0))
    ours = model.generate(prompt, 40, torch.Generator().manual_seed(11), temperature=temperature)
    with torch.no_grad():
        ref = _generate_with_scaled_logits(model, prompt, 40, torch.Generator().manual_seed(11), temperature)
    assert ours.shape == (4, 45)
    assert torch.equal(ours, ref)
    if temperature > 0:  # the draws really are random: another seed gives other tokens
        other = model.generate(prompt, 40, torch.Generator().manual_seed(12), temperature=temperature)
        assert not torch.equal(other, ours)


def test_a_total_is_never_closer_to_zero_than_any_of_its_terms():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):  # the rule holds for every true total
        terms = torch.log(torch.rand(int(torch.randint(1, 8, (1,), generator=g)), generator=g, dtype=torch.float64))
        assert within_term_bound(float(terms.sum()), terms)
    steps = [-0.7, -0.4]
    assert within_term_bound(sum_log_probs(steps), steps)
    # the flawed calculations each break it, including ones that look plausible because they are negative
    assert not within_term_bound(steps[0] * steps[1], steps)  # 0.28
    assert not within_term_bound(-0.7 * -0.4 * -0.5, [-0.7, -0.4, -0.5])  # -0.14
    assert not within_term_bound(math.log(0.1 + 0.2), [math.log(0.1), math.log(0.2)])  # -1.20
    assert not within_term_bound(sum(steps) / 2, steps)  # a mean, -0.55
    assert within_term_bound(steps[0], steps)  # forgetting the -0.4 term is not caught: the rule is necessary only
    with pytest.raises(ValueError, match="log-probabilities <= 0"):
        within_term_bound(-1.0, [0.5])
    with pytest.raises(ValueError, match="NaN"):
        within_term_bound(float("nan"), steps)


def test_response_log_prob_is_the_joint_minus_the_prompt():
    terms = [-1.2, -0.9, -0.7, -0.4]
    assert response_log_prob(terms, 2) == pytest.approx(-1.1)
    assert response_log_prob(terms, 0) == pytest.approx(sum(terms))  # no prompt: conditional = joint
    assert sum(terms[:2]) + response_log_prob(terms, 2) == pytest.approx(sum(terms))
    for bad, message in [(4, "at least one response token"), (-1, "prompt_length"), (1.0, "prompt_length")]:
        with pytest.raises(ValueError, match=message):
            response_log_prob(terms, bad)


def test_bits_from_log_probs_is_log2_of_the_perplexity():
    lp = [math.log(0.5), math.log(0.125), -0.3]
    assert bits_from_log_probs([math.log(0.25)] * 3) == pytest.approx(2.0)
    assert 2 ** bits_from_log_probs(lp) == pytest.approx(perplexity_from_log_probs(lp), rel=1e-12)
    with pytest.raises(ValueError, match="log-probabilities"):
        bits_from_log_probs([0.1])
