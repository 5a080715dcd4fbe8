"""Presets: every one builds, the GPU one fits its corpus (passes over the data), the corpora need no download."""

import pytest

from course_utils.models import Transformer, TransformerConfig
from course_utils.presets import available_presets, preset
from course_utils.text import CORPORA, CharTokenizer, corpus, python_docs_text, python_docstrings_text
from course_utils.train import TrainConfig


@pytest.fixture(scope="module")
def large_text() -> str:
    return corpus("python-docs+docstrings")


def test_every_preset_names_a_corpus_a_model_and_a_recipe():
    assert available_presets() == ["cpu", "cpu-reference", "gpu", "cpu-fp32"]
    for name in available_presets():
        p = preset(name)
        assert set(p) == {"data", "model", "train"} and p["data"]["corpus"] in CORPORA
        TransformerConfig(vocab_size=100, **p["model"])
        TrainConfig(**p["train"])


def test_the_gpu_preset_makes_few_passes_over_a_corpus_large_enough_not_to_overfit(large_text):
    p = preset("gpu")
    assert p["data"]["corpus"] == "python-docs+docstrings" and p["model"]["dropout"] == 0.1
    tokens = p["train"]["iterations"] * p["train"]["batch_size"] * p["model"]["context"]
    train_chars = 0.9 * len(large_text)
    assert tokens == 16_384_000
    assert 1.5e6 < train_chars < 2.5e6  # varies with the Python version: 2.02 M on 3.11, 1.73 M on 3.12
    assert 5 < tokens / train_chars < 10  # 8.1 passes on 3.11, 9.5 on 3.12
    assert tokens / (0.9 * len(python_docs_text())) > 30  # what the documentation alone would have meant
    assert p["train"]["compile"] is True and "precision" not in p["train"]  # "auto": the GPU decides


def test_the_large_corpus_is_the_documentation_then_distinct_docstrings(large_text):
    docs, docstrings = python_docs_text(), python_docstrings_text()
    assert large_text == docs + "\n\n" + docstrings and len(docstrings) > 2 * len(docs)
    assert corpus() == docs and CharTokenizer.from_text(large_text).vocab_size < 200
    with pytest.raises(ValueError, match="unknown corpus 'wiki'; use one of python-docs, python-docs"):
        corpus("wiki")


def test_the_cpu_fp32_recipe_needs_about_a_third_of_the_reference_compute():
    """Tuned on the reference's target: ~1,000 of its 1,200 steps reach it (benchmarks/train_lm.py times it)."""
    fast, ref = preset("cpu-fp32"), preset("cpu-reference")
    cost = {}
    for name, p, steps in (("fast", fast, 1000), ("ref", ref, ref["train"]["iterations"])):
        flops = Transformer(TransformerConfig(vocab_size=103, **p["model"])).flops_per_token()
        cost[name] = flops * steps * p["train"]["batch_size"] * p["model"]["context"]
    assert 0.3 < cost["fast"] / cost["ref"] < 0.4
    assert fast["train"]["precision"] == "fp32" and preset("cpu")["train"]["precision"] == "bf16"
