"""Corpora, tokenizers, splits and the synthetic language of `course_utils.data`."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.synthetic import SyntheticLanguage
from course_utils.text import (
    CharTokenizer,
    WordTokenizer,
    load_text,
    python_docs_text,
    random_batch,
    split_words,
    train_val_split,
)

# ---------------------------------------------------------------- text and files

def test_python_docs_corpus_is_english_prose_of_useful_size():
    text = python_docs_text()
    assert 200_000 < len(text) < 5_000_000
    assert "the" in text.split() and "def" in text


def test_load_text_reads_utf8(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("héllo wörld\n", encoding="utf-8")
    assert load_text(p) == "héllo wörld\n"


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"  \n\t ", "empty"),
    (b"ok \xff\xfe bad", "not UTF-8"),
    (b"\x80abc", "not UTF-8"),
])
def test_load_text_rejects_empty_or_undecodable(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_text(p)


def test_load_text_drops_a_byte_order_mark_and_keeps_everything_else(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeffline one\r\nline two".encode())
    assert load_text(p) == "line one\r\nline two"
    p.write_bytes("\ufeff".encode())
    with pytest.raises(ValueError, match="empty"):
        load_text(p)


def test_load_text_rejects_utf16(tmp_path):
    p = tmp_path / "utf16.txt"
    p.write_bytes("hello".encode("utf-16"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text(p)


def test_load_text_rejects_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="no such file"):
        load_text(tmp_path)


# ---------------------------------------------------------------- tokenizers

def test_char_tokenizer_round_trip_on_the_docs_corpus():
    text = python_docs_text()[:20_000]
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert ids.dtype == torch.long and len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.decode(ids.tolist()) == text


def test_char_tokenizer_errors():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="outside"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.from_text("")


def test_split_words_keeps_punctuation_as_tokens():
    assert split_words("The cat sat, quietly.") == ["The", "cat", "sat", ",", "quietly", "."]
    assert split_words("Deep Learning", lowercase=True) == ["deep", "learning"]


def test_word_tokenizer_round_trip_and_errors():
    sentences = ["the cat sat on the mat .", "a dog sat on a log ."]
    tok = WordTokenizer.from_text(sentences)
    assert tok.vocab_size == len(set(" ".join(sentences).split()))
    for s in sentences:
        ids = tok.encode(s)
        assert ids.dtype == torch.long
        assert tok.decode(ids) == s
    with pytest.raises(ValueError, match="'bird'"):
        tok.encode("the bird sat")
    with pytest.raises(ValueError, match="outside"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="at least one word"):
        WordTokenizer.from_text("   ")


def test_word_tokenizer_lowercase_option():
    tok = WordTokenizer.from_text("Deep learning", lowercase=True)
    assert tok.words == ("deep", "learning")
    assert tok.decode(tok.encode("DEEP Learning")) == "deep learning"


# ---------------------------------------------------------------- splits and batches

def test_split_is_deterministic_and_covers_everything():
    tokens = torch.arange(100)
    train, val = train_val_split(tokens, 0.1)
    assert torch.equal(torch.cat([train, val]), tokens)
    assert len(val) == 10
    train2, val2 = train_val_split(tokens, 0.1)
    assert torch.equal(train, train2) and torch.equal(val, val2)


@pytest.mark.parametrize("n, fraction", [(3, 0.1), (1, 0.5), (5, 0.95)])
def test_split_that_leaves_a_part_empty_is_an_error(n, fraction):
    with pytest.raises(ValueError, match="empty"):
        train_val_split(torch.arange(n), fraction)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_split_fraction_must_be_inside_0_1(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(torch.arange(10), fraction)


def test_random_batch_targets_are_next_tokens():
    tokens = torch.arange(50)
    x, y = random_batch(tokens, 8, 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y, x + 1)


# ---------------------------------------------------------------- the synthetic language

@pytest.fixture(scope="module")
def lang():
    return SyntheticLanguage.random(vocab_size=8, order=1, branching=3, seed=0)


def test_synthetic_language_is_reproducible_from_its_seed():
    a = SyntheticLanguage.random(10, 1, 3, seed=4)
    b = SyntheticLanguage.random(10, 1, 3, seed=4)
    c = SyntheticLanguage.random(10, 1, 3, seed=5)
    assert torch.equal(a.transition, b.transition)
    assert not torch.equal(a.transition, c.transition)


@pytest.mark.parametrize("vocab, order, branching", [(8, 1, 3), (12, 1, 4), (6, 2, 3), (5, 3, 2)])
def test_synthetic_language_structure(vocab, order, branching):
    lang = SyntheticLanguage.random(vocab, order, branching, seed=1)
    assert lang.vocab_size == vocab and lang.order == order
    assert lang.transition.shape == (vocab,) * (order + 1)
    assert lang.conditional.shape == (vocab**order, vocab)
    assert torch.allclose(lang.conditional.sum(1), torch.ones(vocab**order, dtype=torch.float64))
    assert ((lang.conditional > 0).sum(1) == branching).all()  # sparse: exactly `branching` successors
    pi = lang.stationary
    assert torch.all(pi >= 0) and abs(float(pi.sum()) - 1) < 1e-12
    # stationarity: π P = π over contexts
    n_ctx = vocab**order
    nxt = torch.zeros(n_ctx, dtype=torch.float64)
    for c in range(n_ctx):
        for x in range(vocab):
            nxt[(c * vocab + x) % n_ctx] += pi[c] * lang.conditional[c, x]
    assert torch.allclose(nxt, pi, atol=1e-12)
    h = lang.entropy_rate()
    assert 0 < h <= math.log(branching) + 1e-12


def test_entropy_rate_of_a_hand_built_chain():
    # two states: from 0 go to 0 or 1 with probability 1/2; from 1 always to 0. π = (2/3, 1/3).
    lang = SyntheticLanguage(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    assert torch.allclose(lang.stationary, torch.tensor([2 / 3, 1 / 3], dtype=torch.float64))
    assert lang.entropy_rate() == pytest.approx(2 / 3 * math.log(2), abs=1e-12)


def test_a_source_with_two_closed_classes_is_rejected():
    with pytest.raises(ValueError, match="not unique"):
        SyntheticLanguage(torch.eye(3))


@pytest.mark.parametrize("table, message", [
    (torch.tensor([[0.5, 0.6], [1.0, 0.0]]), "sum to 1"),
    (torch.tensor([[1.5, -0.5], [1.0, 0.0]]), "non-negative"),
    (torch.ones(2, 3) / 3, "shape"),
    (torch.tensor([1.0]), "shape"),
])
def test_invalid_transition_tables_are_rejected(table, message):
    with pytest.raises(ValueError, match=message):
        SyntheticLanguage(table)


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 1}, "vocab_size"), ({"branching": 20, "vocab_size": 5}, "branching"),
    ({"order": 0}, "order"), ({"seed": -1}, "seed"), ({"vocab_size": 20, "order": 3}, "contexts"),
])
def test_invalid_construction_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticLanguage.random(**kwargs)


@pytest.mark.parametrize("order", [1, 2])
def test_entropy_rate_matches_a_monte_carlo_estimate(order):
    """The mean −log Pr(x_t | context) of independent stationary sequences, within ±5σ."""
    lang = SyntheticLanguage.random(8, order, 3, seed=2)
    seqs = lang.sample_sequences(2000, 60, torch.Generator().manual_seed(3))
    per_seq = -lang.conditional_log_probs(seqs).mean(1)  # independent across sequences
    estimate = float(per_seq.mean())
    sigma = float(per_seq.std()) / math.sqrt(len(per_seq))
    assert abs(estimate - lang.entropy_rate()) < 5 * sigma
    assert sigma < 0.01  # the test has power: 5σ is small next to H


def test_single_stream_log_loss_matches_entropy_rate(lang):
    x = lang.sample(100_000, torch.Generator().manual_seed(7))
    terms = -lang.conditional_log_probs(x)
    # batch means over 100 blocks of 1000 tokens (blocks are nearly independent: the chain mixes fast)
    blocks = terms[: 100_000 - 1].reshape(-1)[:99_000].reshape(99, 1000).mean(1)
    sigma = float(blocks.std()) / math.sqrt(len(blocks))
    assert abs(float(terms.mean()) - lang.entropy_rate()) < 5 * sigma


def test_sampled_transitions_follow_the_transition_matrix(lang):
    """Given #(a), the successors of a are i.i.d. from row a: each count within ±5σ of binomial."""
    x = lang.sample(60_000, torch.Generator().manual_seed(8))
    v = lang.vocab_size
    pairs = torch.bincount(x[:-1] * v + x[1:], minlength=v * v).reshape(v, v).double()
    n_a = pairs.sum(1, keepdim=True)
    p = lang.conditional
    sigma = torch.sqrt(n_a * p * (1 - p))
    assert ((pairs - n_a * p).abs() <= 5 * sigma + 1e-9).all()
    assert (pairs[p == 0] == 0).all()  # impossible transitions never happen


def test_first_tokens_of_sequences_follow_the_stationary_distribution(lang):
    seqs = lang.sample_sequences(20_000, 3, torch.Generator().manual_seed(9))
    counts = torch.bincount(seqs[:, 0], minlength=lang.vocab_size).double()
    pi = lang.token_distribution()
    sigma = torch.sqrt(20_000 * pi * (1 - pi))
    assert ((counts - 20_000 * pi).abs() <= 5 * sigma).all()
    # the second column also follows π (stationarity), within ±5σ
    counts2 = torch.bincount(seqs[:, 1], minlength=lang.vocab_size).double()
    assert ((counts2 - 20_000 * pi).abs() <= 5 * sigma).all()


def test_sequences_in_batch_follow_transitions(lang):
    seqs = lang.sample_sequences(500, 40, torch.Generator().manual_seed(10))
    assert seqs.shape == (500, 40) and seqs.dtype == torch.long
    p = lang.conditional
    assert (p[seqs[:, :-1], seqs[:, 1:]] > 0).all()


def test_sampling_is_reproducible_with_a_generator(lang):
    a = lang.sample(500, torch.Generator().manual_seed(1))
    b = lang.sample(500, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and len(a) == 500
    assert lang.text(a[:5]) == "".join(lang.alphabet[i] for i in a[:5].tolist())


def test_cross_entropy_rate_is_h_plus_kl(lang):
    h = lang.entropy_rate()
    exact = torch.log(lang.conditional)  # the source itself: CE = H
    assert lang.cross_entropy_rate(exact) == pytest.approx(h, abs=1e-12)
    uniform = torch.full((8, 8), -math.log(8), dtype=torch.float64)
    assert lang.cross_entropy_rate(uniform) == pytest.approx(math.log(8), abs=1e-12)
    unigram = torch.log(lang.token_distribution())
    assert lang.cross_entropy_rate(unigram) > h + 0.05  # ignoring context costs a KL gap
    with pytest.raises(ValueError, match="shape"):
        lang.cross_entropy_rate(torch.zeros(8, 8, 8))


def test_bigram_model_cannot_reach_the_entropy_of_a_second_order_source():
    lang = SyntheticLanguage.random(6, 2, 3, seed=3)
    # best bigram predictor by hand: Pr(next | last token) under the stationary distribution
    joint = (lang.stationary[:, None] * lang.conditional).reshape(6, 6, 6).sum(0)
    best_bigram = torch.log(joint / joint.sum(1, keepdim=True))
    assert torch.allclose(lang.optimal_log_probs(1), best_bigram)
    assert lang.cross_entropy_rate(best_bigram) > lang.entropy_rate() + 0.01
    assert lang.cross_entropy_rate(torch.log(lang.conditional).reshape(6, 6, 6)) == pytest.approx(
        lang.entropy_rate(), abs=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_optimal_models_lose_less_with_more_context(order):
    lang = SyntheticLanguage.random(5, order, 2, seed=order)
    losses = [lang.cross_entropy_rate(lang.optimal_log_probs(j)) for j in range(order + 1)]
    assert all(a >= b - 1e-12 for a, b in zip(losses[:-1], losses[1:], strict=True))
    assert losses[-1] == pytest.approx(lang.entropy_rate(), abs=1e-12)
    assert losses[0] == pytest.approx(
        -float((lang.token_distribution() * torch.log(lang.token_distribution())).nansum()), abs=1e-12)
    assert all(math.isfinite(v) for v in losses)
    with pytest.raises(ValueError, match="context"):
        lang.optimal_log_probs(order + 1)


def test_counted_bigram_approaches_the_best_bigram_on_a_second_order_source():
    lang = SyntheticLanguage.random(6, 2, 3, seed=4)
    from course_utils.ngram import BigramModel

    x = lang.sample(100_000, torch.Generator().manual_seed(4))
    fitted = BigramModel.fit_counts(x, 6, smoothing=0.01)
    best = lang.cross_entropy_rate(lang.optimal_log_probs(1))
    assert best <= lang.cross_entropy_rate(torch.log(fitted.transition)) < best + 0.01


def test_token_checks(lang):
    with pytest.raises(ValueError, match="0..7"):
        lang.conditional_log_probs(torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="integer"):
        lang.conditional_log_probs(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="more than order"):
        lang.conditional_log_probs(torch.tensor([0]))
    with pytest.raises(ValueError, match="n_tokens"):
        lang.sample(0, torch.Generator())


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["a", "b"]])
def test_word_tokenizer_rejects_non_text(bad):
    tok = WordTokenizer.from_text("a b")
    with pytest.raises(ValueError, match="string"):
        tok.encode(bad)


def test_word_tokenizer_needs_some_words():
    for empty in ([], ["", "  "], " "):
        with pytest.raises(ValueError, match="at least one word"):
            WordTokenizer.from_text(empty)


@pytest.mark.parametrize("bad", [None, 3, [1, 2], ("a", None)])
def test_word_tokenizer_vocabulary_must_come_from_strings(bad):
    with pytest.raises(ValueError, match="string"):
        WordTokenizer.from_text(bad)
