"""viz as a whole: every figure function returns a Figure of the size lessons show, bad input gives a
clear ValueError, importing changes no global state, and explorers never leave figures open."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
import subprocess
import sys
import textwrap

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_utils import viz  # noqa: E402
from course_utils.models import Transformer, TransformerConfig  # noqa: E402
from course_utils.ngram import BigramModel  # noqa: E402
from course_utils.text import CharTokenizer  # noqa: E402
from course_utils.train import History  # noqa: E402
from course_utils.viz import ch01, ch02, ch03, ch04, ch05, ch06, ch07, common  # noqa: E402
from course_utils.viz.explorer import Explorer  # noqa: E402

MODULES = sorted(f"course_utils.viz.{m.name}" for m in pkgutil.iter_modules(viz.__path__))
NAN, INF = float("nan"), float("inf")
EST = torch.rand(3, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
HISTORY = History(steps=[1, 2, 3], train_loss=[3.0, 2.0, 1.5], val_steps=[3], val_loss=[1.8])
COST = {"length": [8, 16], "seconds": [1e-4, 4e-4], "score_mib": [2.4e-4, 9.8e-4]}

# Each public figure function: small valid arguments, and the (width, height) in inches and number of
# axes it must have under `viz.style()` (lessons display "<Figure size WxH with N Axes>" and nbval compares it).
FIGURES = {
    "common.curve": (common.curve, ([0.5, 0.6, 0.7], "step", "θ"), {"target": 0.75}, (7.0, 3.2), 1),
    "common.token_log_probs": (common.token_log_probs, (list("ab c"), [-0.5, -1.0, -INF, -0.2]), {}, (4.0, 3.2), 2),
    "ch01.likelihood_curves": (ch01.likelihood_curves, ([1, 0, 1, 1],), {"theta": 0.3}, (8.0, 3.0), 2),
    "ch01.consistency": (ch01.consistency, ([10, 100, 1000], EST, 0.5), {}, (8.0, 3.0), 2),
    "ch01.cross_entropy_floor": (ch01.cross_entropy_floor, ([0.1, 0.5, 0.9], [1.0, 0.7, 1.2], 0.69, 0.5), {},
                                 (7.0, 3.2), 1),
    "ch01.heldout_comparison": (ch01.heldout_comparison, (["a", "b"], [-0.7, -0.6], [-0.7, -0.65]), {},
                                (7.0, 3.2), 1),
    "ch02.entropy_convergence": (ch02.entropy_convergence, ([10, 100, 1000], [1.2, 0.9, 0.7], 0.6), {},
                                 (8.0, 3.0), 2),
    "ch02.length_dominance": (ch02.length_dominance, ([2, 3, 50], [-1.0, -2.0, -40.0]), {}, (8.0, 3.0), 2),
    "ch02.temperature_bars": (ch02.temperature_bars,
                              (list("abc"), torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]), [1.0, 0.5]), {},
                              (7.0, 3.2), 1),
    "ch02.bigram_heatmap": (ch02.bigram_heatmap, (torch.tensor([[1.0, 2.0], [0.0, 3.0]]), ["a", " "]), {},
                            (6.0, 5.0), 2),
    "ch03.loss_by_kind_bars": (ch03.loss_by_kind_bars, ({"a": {"[MASK]": 2.5, "kept": 0.5}},), {"baseline": 3.0},
                               (7.0, 3.2), 1),
    "ch03.mlm_loss_curve": (ch03.mlm_loss_curve, ([1, 2, 3], [3.0, 2.5, 2.0], [3], [2.1], 3.0), {}, (7.0, 3.2), 1),
    "ch03.pll_vs_causal": (ch03.pll_vs_causal, (["a", "b"], [-1.0, -0.5], [-2.0, -1.5]), {}, (6.0, 3.2), 1),
    "ch04.loss_curves": (ch04.loss_curves, ({"CE": [3.0, 2.0, 1.5], "NLL": [3.0, 2.1, 1.6]},), {"entropy": 1.2},
                         (7.0, 3.2), 1),
    "ch04.stability": (ch04.stability, ([1, 10, 100], {"naive": [1.0, 2.0, NAN], "stable": [1.0, 2.0, 3.0]}), {},
                       (7.0, 3.2), 1),
    "ch04.target_and_model": (ch04.target_and_model, (["a", "b"], torch.tensor([0.9, 0.1]), torch.tensor([0.6, 0.4])),
                              {}, (7.0, 3.2), 1),
    "ch05.plot_curves": (ch05.plot_curves, ({"run": HISTORY},), {"floors": {"H": 1.0}, "window": 2}, (7.0, 4.0), 1),
    "ch05.plot_attention_cost": (ch05.plot_attention_cost, (COST,), {}, (9.0, 3.5), 2),
    "ch06.sft_curves": (ch06.sft_curves, ([0, 10], [-5.0, -1.0], [0.0, 0.5], [0.0, 0.4]), {}, (8.5, 3.0), 2),
    "ch06.dialogue_cost": (ch06.dialogue_cost, ([1, 2], [0.001, 0.001], [0.001, 0.002]), {}, (8.5, 3.0), 2),
    "ch06.reward_recovery": (ch06.reward_recovery,
                             (torch.tensor([0.0, 1.0]), torch.tensor([0.1, 0.9]), torch.tensor([0.1, 0.1])),
                             {"labels": ["a", "b"]}, (4.6, 3.6), 1),
    "ch06.policy_curves": (ch06.policy_curves, ({"mle": torch.full((5, 3), 1 / 3)}, 2), {}, (7.0, 3.2), 1),
    "ch07.shard_nlls": (ch07.shard_nlls, ([[2.0, 1.0], [1.5, 1.5, 1.5, 1.5]], 4), {}, (7.0, 3.2), 1),
}
# The explorers (tested below) and the public callables that draw nothing.
EXPLORERS = {"ch01.LikelihoodExplorer", "ch02.SequenceExplorer", "ch03.MaskingExplorer", "ch04.SmoothingExplorer",
             "ch05.SampleExplorer", "ch06.PolicyGradientExplorer", "ch07.ShardExplorer"}
NOT_FIGURES = {"common.style", "common.series", "common.same_length", "common.tick_label", "ch05.smooth",
               "explorer.Explorer", "explorer.Rejected", "ch07.BatchMeans", "ch07.batch_means", "ch07.shard_targets"}


@pytest.fixture
def course_style():
    with matplotlib.rc_context():
        viz.style()
        yield
    plt.close("all")


def _public_callables(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    short = module_name.rsplit(".", 1)[1]
    return {f"{short}.{name}" for name, obj in inspect.getmembers(module, callable)
            if not name.startswith("_") and getattr(obj, "__module__", None) == module_name}


def test_every_public_callable_in_viz_is_listed_here():
    assert {"course_utils.viz.ch01", "course_utils.viz.ch06", "course_utils.viz.common"} <= set(MODULES)
    found = set().union(*(_public_callables(m) for m in MODULES))
    listed = set(FIGURES) | EXPLORERS | NOT_FIGURES
    assert found == listed, f"not tested here: {sorted(found - listed)}; gone: {sorted(listed - found)}"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_figure_function_returns_a_figure_of_the_lesson_size(name, course_style):
    fn, args, kwargs, size, n_axes = FIGURES[name]
    fig = fn(*args, **kwargs)
    assert isinstance(fig, Figure)
    assert tuple(fig.get_size_inches()) == pytest.approx(size, abs=1e-9)
    assert len(fig.axes) == n_axes
    assert all(ax.get_ylabel() for ax in fig.axes) and any(ax.get_xlabel() for ax in fig.axes)


def test_lesson_figure_text_is_what_the_stored_outputs_show(course_style):
    # the text nbval compares, for figures whose size depends on the input
    assert str(common.token_log_probs([f"x{i}" for i in range(10)], [-0.7] * 10)) == "Figure(374.4x230.4)"
    assert str(common.curve([1.0, 2.0], "x", "y")) == "Figure(504x230.4)"


BAD_INPUT = [
    (common.curve, ([], "x", "y"), {}, "values is empty"),
    (common.curve, ([1.0], "x", "y"), {"target": NAN}, "target must be a finite number"),
    (common.token_log_probs, (["a"], [-1.0, -2.0]), {}, "labels and log_probs must have the same length"),
    (common.token_log_probs, (["a"], [NAN]), {}, "log_probs contains NaN"),
    (ch01.likelihood_curves, ([1, 0],), {"theta": 1.5}, "theta must be a probability"),
    (ch01.likelihood_curves, ("HXT",), {}, "only H and T"),
    (ch01.likelihood_curves, ([1, 0],), {"points": 1}, "points must be an integer >= 2"),
    (ch01.consistency, ([10, 100], EST, 0.5), {}, r"estimates must have shape \(len\(ns\)"),
    (ch01.consistency, ([0, 10, 100], EST, 0.5), {}, "ns must be positive"),
    (ch01.cross_entropy_floor, ([0.1, 0.5], [1.0], 0.69, 0.5), {}, "thetas and ce must have the same length"),
    (ch01.heldout_comparison, (["a", "b"], [-0.7], [-0.7, -0.6]), {},
     "labels, train and heldout must have the same length, got labels 2, train 1, heldout 2"),
    (ch02.entropy_convergence, ([10, 100], [1.0], 0.5), {}, "ns and cross_entropy must have the same length"),
    (ch02.length_dominance, ([2, 3], [-1.0]), {}, "lengths and seq_log_probs must have the same length"),
    (ch02.temperature_bars, (list("ab"), torch.full((2, 3), 1 / 3), [1.0, 0.5]), {},
     r"probs must have shape \(len\(temperatures\), len\(labels\)\) = \(2, 2\), got \(2, 3\)"),
    (ch03.mlm_loss_curve, ([1, 2], [3.0], [2], [2.1], 3.0), {}, "steps and train must have the same length"),
    (ch03.pll_vs_causal, (["a"], [-1.0, -0.5], [-2.0]), {}, "must have the same length"),
    (ch04.loss_curves, ({},), {}, "curves is empty"),
    (ch04.loss_curves, ({"a": []},), {}, "curve 'a' is empty"),
    (ch04.stability, ([1, 10], {"a": [1.0]}), {}, "scales and curve 'a' must have the same length"),
    (ch04.stability, ([0, 10], {"a": [1.0, 2.0]}), {}, "scales must be positive"),
    (ch04.target_and_model, (["a"], torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5])), {}, "one entry per token"),
    (ch05.plot_curves, ({},), {}, "at least one run"),
    (ch05.plot_curves, ({"r": History(steps=[1, 2], train_loss=[1.0])},), {}, "'r' steps and 'r' train_loss"),
    (ch05.plot_attention_cost, ({"length": [8]},), {}, r"cost lacks \['score_mib', 'seconds'\]"),
    (ch06.sft_curves, ([0, 10], [-5.0], [0.0, 0.5]), {}, "steps, heldout_log_prob and accuracy must have the same"),
    (ch06.sft_curves, ([0, 10], [-5.0, -1.0], [0.0, 0.5], [0.0]), {},
     "steps and full_loss_accuracy must have the same length"),
    (ch06.dialogue_cost, ([1, 2], [0.001], [0.001, 0.002]), {}, "turns, one_pass_s and per_turn_s must have the same"),
    (ch06.reward_recovery, (torch.zeros(2), torch.zeros(3), torch.zeros(2)), {}, "must have the same shape"),
    (ch06.reward_recovery, (torch.zeros(2), torch.zeros(2), torch.ones(2)), {"labels": ["a"]},
     "labels and true_rewards must have the same length"),
    (ch06.policy_curves, ({}, 0), {}, "histories is empty"),
    (ch06.policy_curves, ({"m": torch.full((5, 3), 1 / 3)}, 3), {}, "best < K"),
    (ch07.shard_nlls, ([], 4), {}, "per_target is empty"),
    (ch07.shard_nlls, ([[1.0], [NAN]], 4), {}, "worker 1's target NLLs contains NaN"),
    (ch07.shard_nlls, ([[1.0], [-0.5]], 4), {}, "worker 1's target NLLs must be >= 0"),
    (ch07.shard_nlls, ([[1.0] * 5, [1.0]], 4), {}, "a worker has 5 targets but only 4 positions"),
    (ch07.shard_nlls, ([[1.0]], 0), {}, "positions must be a positive integer"),
]


@pytest.mark.parametrize(("fn", "args", "kwargs", "message"), BAD_INPUT,
                         ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(BAD_INPUT)])
def test_bad_input_gives_a_value_error_naming_the_problem(fn, args, kwargs, message):
    before = plt.get_fignums()
    with pytest.raises(ValueError, match=message):
        fn(*args, **kwargs)
    assert plt.get_fignums() == before  # checked before anything is drawn


# ---------------------------------------------------------------- global state

_SNAPSHOT = """
import importlib, json, matplotlib
def snapshot():
    return {k: repr(dict.__getitem__(matplotlib.rcParams, k)) for k in matplotlib.rcParams.keys()}
def changed(before):
    after = snapshot()
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
before = snapshot()
for name in MODULES:
    importlib.import_module(name)
on_import = changed(before)
importlib.import_module("course_utils.viz").style()
print(json.dumps({"on_import": on_import, "after_style": changed(before)}))
"""


def test_importing_viz_changes_no_rcparams_until_style_is_called():
    code = f"MODULES = {MODULES!r}\n" + textwrap.dedent(_SNAPSHOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["on_import"] == []
    assert {"figure.dpi", "figure.figsize", "axes.grid"} <= set(result["after_style"])  # the check can see changes


def test_style_applies_the_course_look():
    with matplotlib.rc_context():
        viz.style()
        assert plt.rcParams["figure.dpi"] == 72
        assert tuple(plt.rcParams["figure.figsize"]) == (7.0, 3.2)
        assert plt.rcParams["axes.grid"] and not plt.rcParams["axes.spines.top"]


# ---------------------------------------------------------------- explorers

TEXT = "the cat sat on the mat."
TOK = CharTokenizer.from_text(TEXT)
MASK = TOK.vocab_size


def _uniform_logits(ids: torch.Tensor) -> torch.Tensor:
    return torch.zeros(*ids.shape, TOK.vocab_size + 1, dtype=torch.float64)


def _show(i: int) -> str:
    return "▮" if i == MASK else TOK.decode([i])


def _explorers(draw: bool):
    """Each drawing explorer, and a change of controls to apply to it."""
    bigram = BigramModel.fit_counts(TOK.encode(TEXT), TOK.vocab_size, smoothing=0.1)
    logits = torch.tensor([2.0, 1.0, 0.0])
    return [
        (ch01.LikelihoodExplorer(draw=draw), [("theta", 0.9), ("flips", "HHT"), ("theta", 0.1)]),
        (ch02.SequenceExplorer.for_bigram(bigram, TOK, draw=draw), [("text", "the mat"), ("text", "a cat")]),
        (ch03.MaskingExplorer(_uniform_logits, TOK.encode, _show, MASK, TOK.vocab_size + 1, text="the cat",
                              rate=1.0, draw=draw), [("seed", 3), ("text", "sat on")]),
        (ch04.SmoothingExplorer(logits, ["a", "b", "c"], draw=draw), [("epsilon", 0.5), ("target", 2)]),
        (ch06.PolicyGradientExplorer(steps=10, draw=draw), [("start_logit", 1.0), ("lr", 0.5)]),
        (ch07.ShardExplorer(draw=draw), [("counts[0]", 13), ("nlls[1]", 3.0)]),
    ]


def _control(explorer: Explorer, name: str):
    """The control an explorer names `name`, or, for "counts[0]", the first of its list `counts`."""
    attribute, _, position = name.partition("[")
    control = getattr(explorer, attribute)
    return control[int(position.rstrip("]"))] if position else control


def test_explorers_close_every_figure_they_draw():
    plt.close("all")
    for explorer, changes in _explorers(draw=True):
        assert isinstance(explorer, Explorer) and isinstance(explorer.figure, Figure)
        shown = [explorer.figure]
        for control, value in changes:
            _control(explorer, control).value = value
            assert isinstance(explorer.figure, Figure) and explorer.figure is not shown[-1]
            shown.append(explorer.figure)
        assert plt.get_fignums() == [], type(explorer).__name__


def test_without_drawing_explorers_make_no_figure():
    for explorer, changes in _explorers(draw=False):
        for control, value in changes:
            _control(explorer, control).value = value
        assert explorer.figure is None and explorer.summary.value and not explorer.summary.value.startswith("❌")
    assert plt.get_fignums() == []


def test_the_figure_follows_the_controls():
    e = ch01.LikelihoodExplorer(flips="HHT", theta=0.5)
    e.theta.value = 0.9
    chosen = [line for line in e.figure.axes[0].get_lines() if list(line.get_xdata()) == [0.9, 0.9]]
    assert len(chosen) == 1 and e.mle == pytest.approx(2 / 3)


def test_a_rejected_input_clears_the_figure_and_escapes_the_message():
    e = ch01.LikelihoodExplorer(flips="HT")
    assert e.figure is not None
    e.flips.value = "H<b>T"
    assert e.figure is None and e.mle is None
    assert e.summary.value.startswith("❌") and "&lt;b&gt;" in e.summary.value and "<b>" not in e.summary.value
    assert e.summary.value.endswith("Hint: type heads as H and tails as T, e.g. HTHH.")
    e.flips.value = "HHHT"
    assert e.figure is not None and e.mle == 0.75


def test_the_sample_explorer_shows_text_not_a_figure():
    model = Transformer(TransformerConfig(vocab_size=TOK.vocab_size, context=8, n_layers=1, n_heads=1, d_model=8),
                       seed=0)
    e = ch05.SampleExplorer(model, TOK, prompt="the ", length=5)
    assert e.figure is None and len(e.text) == 5 and e.sample in e.widget.children
    assert e.plot not in e.widget.children and math.isfinite(e.mean_log_prob)
    e.prompt.value = "<z>"
    assert e.mean_log_prob is None and e.sample.value == "" and "&lt;" in e.summary.value
    with pytest.raises(ValueError, match="length must be a positive integer"):
        ch05.SampleExplorer(model, TOK, length=0)
