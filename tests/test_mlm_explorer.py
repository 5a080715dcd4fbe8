"""The masking explorer's state follows its controls; chapter 03's figures draw what they are given."""

import math

import matplotlib
import pytest
import torch

from course_utils import mlm
from course_utils.text import CharTokenizer
from course_utils.viz.ch03 import MaskingExplorer, loss_by_kind_bars, mlm_loss_curve, pll_vs_causal

matplotlib.use("Agg")

TOK = CharTokenizer.from_text("The quick brown fox jumps over the lazy dog.")
MASK = TOK.vocab_size
V = TOK.vocab_size + 1


def _show(i: int) -> str:
    return "▮" if i == MASK else TOK.decode([i])


def _peaked_logits(ids: torch.Tensor) -> torch.Tensor:
    """A fake model that puts probability 0.7 on 'o' everywhere, the rest spread evenly."""
    p = torch.full((V,), 0.3 / (V - 1), dtype=torch.float64)
    p[TOK.encode("o")[0]] = 0.7
    return torch.log(p).expand(*ids.shape, V).clone()


def _explorer(**kwargs):
    return MaskingExplorer(_peaked_logits, TOK.encode, _show, MASK, V, draw=False, **kwargs)


def test_explorer_reports_masked_positions_predictions_and_loss():
    e = _explorer(text="brown fox", rate=1.0, seed=0)
    text = "brown fox"
    assert e.positions == list(range(len(text)))  # rate 1 selects every position
    assert len(e.corrupted) == len(text) and len(e.predictions) == len(text)
    assert all(preds[0] == ("o", pytest.approx(0.7)) for preds in e.predictions)
    expected = [math.log(0.7) if c == "o" else math.log(0.3 / (V - 1)) for c in text]
    assert e.log_probs == pytest.approx(expected)
    assert e.loss == pytest.approx(-sum(expected) / len(text))
    assert "positions selected" in e.summary.value and "top 3 predictions" in e.summary.value


def test_explorer_follows_rate_seed_and_text():
    e = _explorer(text="The quick brown fox jumps over the lazy dog.", rate=0.15, seed=0)
    first = list(e.positions)
    e.seed.value = 1
    assert e.positions != first
    e.rate.value = 1.0
    assert len(e.positions) == len("The quick brown fox jumps over the lazy dog.")
    e.text.value = "fox"
    assert e.positions == [0, 1, 2]
    # masked inputs are shown as the mask symbol, and the loss matches the library's
    masked_at = [i for i, piece in enumerate(e.corrupted) if piece == "▮"]
    assert set(masked_at) <= set(e.positions)
    ids = TOK.encode("fox")
    targets = ids.clone()
    assert e.loss == pytest.approx(float(mlm.mlm_loss(_peaked_logits(ids[None]), targets[None])))


def test_explorer_reports_bad_input_without_raising():
    e = _explorer(text="fox", max_len=5)
    e.text.value = "fox!"  # '!' is not in the vocabulary
    assert e.loss is None and e.summary.value.startswith("❌") and "Hint" in e.summary.value
    e.text.value = ""
    assert e.loss is None and "empty" in e.summary.value
    e.text.value = "the lazy dog"
    assert e.loss is None and "context" in e.summary.value
    e.text.value = "dog"
    e.rate.value = 0.05
    for seed in range(50):
        e.seed.value = seed
        if e.loss is None:
            assert "no position was selected" in e.summary.value
            break
    else:
        pytest.fail("a 3-token sentence at rate 0.05 should select nothing for some seed")


def test_explorer_draws_into_its_output():
    e = MaskingExplorer(_peaked_logits, TOK.encode, _show, MASK, V, text="the dog", rate=0.5, draw=True)
    e.rate.value = 1.0
    assert len(e.positions) == 7


def test_figures_draw_and_check_lengths():
    fig = mlm_loss_curve([1, 2, 3], [3.0, 2.5, 2.0], [3], [2.1], baseline=3.0)
    assert fig.axes[0].get_xlabel() == "training step" and "nats" in fig.axes[0].get_ylabel()
    assert len(fig.axes[0].lines) == 3  # training, held-out, baseline
    with pytest.raises(ValueError, match="same length"):
        mlm_loss_curve([1, 2], [3.0], [2], [2.1], baseline=3.0)
    fig = pll_vs_causal(["a", "b"], [-1.0, -0.5], [-2.0, -1.5])
    assert len(fig.axes[0].patches) == 4
    with pytest.raises(ValueError, match="same length"):
        pll_vs_causal(["a"], [-1.0, -0.5], [-2.0])



def _ticks(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_xticklabels()]


def test_token_axes_show_a_space_as_a_visible_mark():
    fig = pll_vs_causal([" ", "x", "\n"], [-1.0, -0.5, -2.0], [-2.0, -1.5, -1.0])
    assert _ticks(fig) == ["␣", "x", "\\n"]
    e = _explorer(text="the dog", rate=1.0, seed=0)
    assert _ticks(e.make_figure()) == ["t", "h", "e", "␣", "d", "o", "g"]


def test_pll_figure_with_the_left_only_terms_has_three_bars_per_token():
    fig = pll_vs_causal(["a", "b"], [-1.0, -0.5], [-2.0, -1.5], left_terms=[-3.0, -2.5])
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [-3.0, -2.5, -1.0, -0.5, -2.0, -1.5]  # left only, both sides, causal
    assert "left side only" in fig.axes[0].get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="same length"):
        pll_vs_causal(["a", "b"], [-1.0, -0.5], [-2.0, -1.5], left_terms=[-3.0])


def test_loss_by_kind_bars_group_each_model_by_kind():
    fig = loss_by_kind_bars({"80/10/10": {"[MASK]": 2.5, "kept": 0.5}, "100 % [MASK]": {"[MASK]": 2.7, "kept": 2.9}},
                            baseline=3.3)
    assert [p.get_height() for p in fig.axes[0].patches] == [2.5, 0.5, 2.7, 2.9]
    assert _ticks(fig) == ["[MASK]", "kept"] and len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="kinds"):
        loss_by_kind_bars({"a": {"[MASK]": 1.0}, "b": {"kept": 1.0}})
    with pytest.raises(ValueError, match="empty"):
        loss_by_kind_bars({})
