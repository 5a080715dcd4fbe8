"""The chapter 05 sampling explorer: reproducible samples, temperature effect, bad prompts."""

import torch

from course_utils.models import Transformer, TransformerConfig
from course_utils.text import CharTokenizer
from course_utils.viz.ch05 import SampleExplorer

TEXT = "the cat sat on the mat. " * 40
TOK = CharTokenizer.from_text(TEXT)


def _trained() -> Transformer:
    model = Transformer(TransformerConfig(vocab_size=TOK.vocab_size, context=16, n_layers=1, n_heads=2, d_model=32))
    ids = TOK.encode(TEXT)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        starts = torch.randint(len(ids) - 17, (16,), generator=g)
        w = torch.stack([ids[s:s + 17] for s in starts.tolist()])
        loss = model.loss(w[:, :-1], w[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


MODEL = _trained()


def test_sample_is_reproducible_and_has_the_requested_length():
    a = SampleExplorer(MODEL, TOK, prompt="the ", length=30)
    b = SampleExplorer(MODEL, TOK, prompt="the ", length=30)
    assert len(a.text) == 30 and a.text == b.text
    assert "mean log-probability" in a.summary.value and a.text in a.sample.value


def test_higher_temperature_gives_less_probable_samples():
    e = SampleExplorer(MODEL, TOK, prompt="the ", temperature=0.2, length=40)
    cold = e.mean_log_prob
    e.temperature.value = 2.0
    assert e.mean_log_prob < cold
    e.temperature.value = 0.0  # greedy
    assert e.mean_log_prob >= cold - 1e-6


def test_unknown_characters_in_the_prompt_give_a_clear_message():
    e = SampleExplorer(MODEL, TOK, prompt="the ")
    e.prompt.value = "The Zebra"
    assert e.summary.value.startswith("❌") and "not in the vocabulary" in e.summary.value
    assert e.mean_log_prob is None and e.sample.value == ""
    e.prompt.value = ""
    assert e.summary.value.startswith("❌") and "empty" in e.summary.value
    e.prompt.value = "mat "
    assert e.mean_log_prob is not None
