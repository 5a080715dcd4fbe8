"""finetune: instruction data, response-only masks, masked loss, SFT through the training loop, dialogues."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from course_utils import finetune as ft
from course_utils import throughput
from course_utils.assessment import assignments


class PrefixMeanLM(torch.nn.Module):
    """A tiny causal model whose prediction at t depends on every token 0..t (a running mean)."""

    def __init__(self, vocab: int, dim: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, dim)
        self.out = torch.nn.Linear(2 * dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.emb(x)
        mean = e.cumsum(1) / torch.arange(1, x.shape[1] + 1)[None, :, None]
        return self.out(torch.cat([e, mean], -1))


@pytest.fixture
def tok():
    return ft.instruction_tokenizer()


def test_solve_and_pairs_are_correct_and_reproducible(tok):
    assert ft.solve("copy", "cab") == "cab"
    assert ft.solve("reverse", "cab") == "bac"
    assert ft.solve("sort", "cab") == "abc"
    a = ft.make_pairs(50, torch.Generator().manual_seed(3))
    b = ft.make_pairs(50, torch.Generator().manual_seed(3))
    assert a == b
    for prompt, response in a:
        code, text = prompt[0], prompt[1:-1]
        task = {v: k for k, v in ft.TASKS.items()}[code]
        assert prompt.endswith("=") and 2 <= len(text) <= 5
        assert response == ft.solve(task, text) + "."
        tok.encode(prompt + response)  # every character is in the vocabulary


def test_tasks_are_drawn_uniformly():
    pairs = ft.make_pairs(3000, torch.Generator().manual_seed(1))
    n, p = 3000, 1 / 3
    for code in ft.TASKS.values():
        k = sum(prompt[0] == code for prompt, _ in pairs)
        assert abs(k - n * p) < 5 * math.sqrt(n * p * (1 - p))


def test_response_loss_mask_by_hand():
    assert ft.response_loss_mask(3, 5).tolist() == [False, False, True, True]
    assert ft.response_loss_mask(1, 2).tolist() == [True]
    assert ft.response_loss_mask(4, 5).tolist() == [False, False, False, True]


@pytest.mark.parametrize("args", [(0, 3), (3, 3), (5, 3), (2.0, 4), (True, 3)])
def test_response_loss_mask_rejects_bad_lengths(args):
    with pytest.raises(ValueError, match="prompt_len|total_len"):
        ft.response_loss_mask(*args)


def test_encode_pair_masks_exactly_the_response(tok):
    tokens, mask = ft.encode_pair(tok, "Rabc=", "cba.")
    assert tok.decode(tokens) == "Rabc=cba."
    targets = tokens[1:]
    assert tok.decode(targets[mask]) == "cba."
    with pytest.raises(ValueError, match="non-empty"):
        ft.encode_pair(tok, "", "a.")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ft.encode_pair(tok, "Rxyz=", "zyx.")


def test_batch_pads_and_masks(tok):
    inputs, targets, mask = ft.batch_pairs(tok, [("Rab=", "ba."), ("Cabcd=", "abcd.")])
    assert inputs.shape == targets.shape == mask.shape == (2, 10)
    assert mask.sum(1).tolist() == [3, 5]
    pad = int(tok.encode("#")[0])
    assert (targets[0, 6:] == pad).all() and not mask[0, 6:].any()
    _, _, full = ft.batch_pairs(tok, [("Rab=", "ba."), ("Cabcd=", "abcd.")], response_only=False)
    assert full.sum(1).tolist() == [6, 10]
    with pytest.raises(ValueError, match="no pairs"):
        ft.batch_pairs(tok, [])


def test_masked_nll_equals_cross_entropy_with_ignore_index_and_hand_sum():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 5, generator=g)
    targets = torch.randint(5, (3, 7), generator=g)
    mask = torch.rand(3, 7, generator=g) < 0.5
    mean = ft.masked_nll(logits, targets, mask)
    total = ft.masked_nll(logits, targets, mask, reduction="sum")
    by_hand = sum(-torch.log_softmax(logits[b, t], -1)[targets[b, t]]
                  for b in range(3) for t in range(7) if mask[b, t])
    assert float(total) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(mean) == pytest.approx(float(by_hand) / int(mask.sum()), rel=1e-5)
    assert float(ft.flat_cross_entropy(logits, targets, mask)) == pytest.approx(float(mean), rel=1e-5)


def test_masked_nll_rejects_bad_masks():
    logits, targets = torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="nothing to learn"):
        ft.masked_nll(logits, targets, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        ft.masked_nll(logits, targets, torch.ones(2, 3))
    with pytest.raises(ValueError, match="reduction"):
        ft.masked_nll(logits, targets, torch.ones(2, 3, dtype=torch.bool), reduction="max")
    with pytest.raises(ValueError, match="shape"):
        ft.target_log_probs(torch.zeros(2, 4), targets)


def test_the_prompt_gets_no_gradient_signal(tok):
    """Changing the logits at prompt positions leaves the response-only loss unchanged."""
    inputs, targets, mask = ft.batch_pairs(tok, [("Rabc=", "cba.")])
    logits = torch.randn(*targets.shape, tok.vocab_size, generator=torch.Generator().manual_seed(1),
                         requires_grad=True)
    ft.masked_nll(logits, targets, mask).backward()
    assert (logits.grad[~mask] == 0).all() and (logits.grad[mask] != 0).any()


def test_conditional_log_probs_is_the_sum_over_response_tokens(tok):
    model = PrefixMeanLM(tok.vocab_size)
    pairs = [("Rabc=", "cba."), ("Sba=", "ab.")]
    got = ft.conditional_log_probs(model, tok, pairs)
    for (p, r), value in zip(pairs, got, strict=True):
        tokens = tok.encode(p + r)
        with torch.no_grad():
            lp = torch.log_softmax(model(tokens[None, :-1])[0], -1)
        terms = [lp[t - 1, tokens[t]] for t in range(len(p), len(tokens))]
        assert float(value) == pytest.approx(float(sum(terms)), abs=1e-5)
    assert (got < 0).all()


def test_pair_batches_set_the_targets_outside_the_mask_to_the_ignore_index(tok):
    from course_utils.losses import IGNORE_INDEX

    pairs = ft.make_pairs(30, torch.Generator().manual_seed(2))
    source = ft.pair_batches(tok, pairs, batch_size=8)
    inputs, targets = source(torch.Generator().manual_seed(0))
    again = source(torch.Generator().manual_seed(0))
    assert torch.equal(inputs, again[0]) and torch.equal(targets, again[1])  # the generator decides
    idx = torch.randint(30, (8,), generator=torch.Generator().manual_seed(0)).tolist()
    want_inputs, want_targets, mask = ft.batch_pairs(tok, [pairs[i] for i in idx])
    assert torch.equal(inputs, want_inputs)
    assert torch.equal(targets[mask], want_targets[mask]) and (targets[~mask] == IGNORE_INDEX).all()
    # The mean cross-entropy over the targets left is the masked NLL.
    logits = torch.randn(*targets.shape, tok.vocab_size, generator=torch.Generator().manual_seed(1))
    plain = torch.nn.functional.cross_entropy(logits.reshape(-1, tok.vocab_size), targets.reshape(-1))
    assert float(plain) == pytest.approx(float(ft.masked_nll(logits, want_targets, mask)), rel=1e-5)
    _, whole = ft.pair_batches(tok, pairs, 8, response_only=False)(torch.Generator().manual_seed(0))
    assert (whole != IGNORE_INDEX).sum() > (targets != IGNORE_INDEX).sum()
    with pytest.raises(ValueError, match="batch_size"):
        ft.pair_batches(tok, pairs, 0)
    with pytest.raises(ValueError, match="no pairs"):
        ft.pair_batches(tok, [], 8)
    with pytest.raises(ValueError, match="mask"):
        ft.ignore_outside(targets, mask.long())


def test_greedy_responses_and_accuracy_with_a_model_that_knows_the_answer(tok):
    """An oracle 'model' that puts its mass on the right next character gets accuracy 1."""
    pairs = ft.make_pairs(20, torch.Generator().manual_seed(5))
    answers = {p: r for p, r in pairs}

    def oracle(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, tok.vocab_size)
        for b in range(x.shape[0]):
            text = tok.decode(x[b])
            prompt = text[: text.index("=") + 1]
            done = len(text) - len(prompt)
            nxt = answers[prompt][done] if done < len(answers[prompt]) else "."
            logits[b, -1, int(tok.encode(nxt)[0])] = 10.0
        return logits

    assert ft.greedy_responses(oracle, tok, [p for p, _ in pairs]) == [r for _, r in pairs]
    assert ft.task_accuracy(oracle, tok, pairs) == 1.0
    uniform = lambda x: torch.zeros(*x.shape, tok.vocab_size)  # noqa: E731 - argmax is '#' forever
    assert ft.task_accuracy(uniform, tok, pairs) == 0.0


def test_encode_dialogue_marks_assistant_targets(tok):
    turns = [("U", "Rab"), ("A", "ba"), ("U", "Cc"), ("A", "c")]
    tokens, owner = ft.encode_dialogue(tok, turns)
    assert tok.decode(tokens) == "URab.Aba.UCc.Ac."
    targets = tok.decode(tokens[1:])
    assert "".join(c for c, k in zip(targets, owner.tolist(), strict=True) if k == 0) == "ba."
    assert "".join(c for c, k in zip(targets, owner.tolist(), strict=True) if k == 1) == "c."
    for bad, message in [([], "at least one"), ([("U", "ab")], "no assistant"), ([("X", "ab")], "role"),
                         ([("A", "a.b")], "markers"), ([("A", "")], "non-empty")]:
        with pytest.raises(ValueError, match=message):
            ft.encode_dialogue(tok, bad)


@pytest.mark.parametrize("n_turns", [1, 3, 6])
def test_one_pass_equals_one_pass_per_turn(tok, n_turns):
    model = PrefixMeanLM(tok.vocab_size, seed=n_turns)
    tokens, owner = ft.encode_dialogue(tok, ft.make_dialogue(n_turns, torch.Generator().manual_seed(n_turns)))
    one = ft.turn_log_probs_one_pass(model, tokens, owner)
    per = ft.turn_log_probs_per_turn(model, tokens, owner)
    assert one.shape == (n_turns,) and (one < 0).all()
    assert torch.allclose(one, per, atol=1e-5, rtol=0)


def test_one_pass_differs_when_the_model_is_not_causal(tok):
    """The equality relies on causality: a model that peeks at the future breaks it."""
    model = PrefixMeanLM(tok.vocab_size)
    peeking = lambda x: model(x.flip(1)).flip(1)  # noqa: E731
    tokens, owner = ft.encode_dialogue(tok, ft.make_dialogue(3, torch.Generator().manual_seed(0)))
    one = ft.turn_log_probs_one_pass(peeking, tokens, owner)
    per = ft.turn_log_probs_per_turn(peeking, tokens, owner)
    assert (one - per).abs().max() > 1e-3


def test_turn_functions_reject_bad_turn_index(tok):
    model = PrefixMeanLM(tok.vocab_size)
    tokens = tok.encode("URab.Aba.")
    with pytest.raises(ValueError, match="one entry per target"):
        ft.turn_log_probs_one_pass(model, tokens, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one turn"):
        ft.turn_log_probs_per_turn(model, tokens, torch.full((8,), -1))


def test_best_time_is_the_minimum():
    calls = []
    assert throughput.best_time(lambda: calls.append(1), repeats=4) >= 0 and len(calls) == 4
    with pytest.raises(ValueError, match="repeats"):
        throughput.best_time(lambda: None, repeats=0)


def _copy_task(max_len: int = 3) -> tuple[list, list]:
    g = torch.Generator().manual_seed(0)
    heldout = ft.make_pairs(20, g, tasks=("copy",), max_len=max_len)
    return [p for p in ft.make_pairs(300, g, tasks=("copy",), max_len=max_len) if p not in heldout], heldout


def _small_transformer(tok):
    from course_utils.models import Transformer, TransformerConfig

    return Transformer(TransformerConfig(tok.vocab_size, context=32, n_layers=1, n_heads=2, d_model=32))


def test_train_sft_with_the_course_transformer_raises_heldout_likelihood_reproducibly(tok):
    from course_utils.train import TrainConfig

    train, heldout = _copy_task()
    config = TrainConfig(iterations=30, batch_size=16, lr=3e-3, warmup=5, weight_decay=0.0,
                         eval_every=10, progress=False)
    h = ft.train_sft(_small_transformer(tok), tok, train, heldout, config)
    assert h.eval_steps == [0, 10, 20, 30] and h.val_steps == [10, 20, 30]
    assert len(h.train_loss) == 30 and h.steps == list(range(1, 31)) and h.precision == "fp32"
    assert h.heldout_log_prob[-1] > h.heldout_log_prob[0] + 2.0
    assert all(0.0 <= a <= 1.0 for a in h.accuracy) and len(h.accuracy) == 4
    # The loop's validation loss is the same held-out likelihood, per response token.
    response_tokens = sum(len(r) for _, r in heldout)
    for nll, lp in zip(h.val_loss, h.heldout_log_prob[1:], strict=True):
        assert nll == pytest.approx(-lp * len(heldout) / response_tokens, rel=1e-6)
    assert ft.train_sft(_small_transformer(tok), tok, train, heldout, config).train_loss == h.train_loss
    with pytest.raises(ValueError, match="held-out"):
        ft.train_sft(torch.nn.Linear(2, 2), tok, train, [], config)


def test_fine_tuning_through_the_training_loop_resumes_bit_for_bit_in_bf16(tok, tmp_path):
    """Checkpoints and precision work for fine-tuning as for pre-training: it is the same loop."""
    from course_utils.train import TrainConfig
    from course_utils.train import train as train_loop

    train, heldout = _copy_task()
    source = ft.pair_batches(tok, train, batch_size=8)
    validate = lambda m: -float(ft.conditional_log_probs(m, tok, heldout).mean())  # noqa: E731
    path = str(tmp_path / "sft.pt")
    config = TrainConfig(iterations=12, lr=3e-3, warmup=2, eval_every=6, precision="bf16", progress=False,
                         checkpoint_path=path, checkpoint_every=4)
    straight_model = _small_transformer(tok)
    straight = train_loop(straight_model, source, validate, replace(config, checkpoint_path=None,
                                                                    checkpoint_every=None))
    train_loop(_small_transformer(tok), source, validate, replace(config, stop_after=6))
    resumed_model = _small_transformer(tok)
    resumed = train_loop(resumed_model, source, validate, config, resume=True)
    assert straight.precision == "bf16" and resumed.train_loss == straight.train_loss
    assert resumed.val_loss == straight.val_loss
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_figures_have_labelled_axes_and_reject_mismatched_inputs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.viz import ch06 as fp

    figs = [fp.sft_curves([0, 10], [-5.0, -1.0], [0.0, 0.5], [0.0, 0.4]),
            fp.dialogue_cost([1, 2], [0.001, 0.001], [0.001, 0.002]),
            fp.reward_recovery(torch.tensor([0.0, 1.0]), torch.tensor([0.1, 0.9]), torch.tensor([0.1, 0.1])),
            fp.policy_curves({"mle": torch.full((5, 3), 1 / 3)}, best=2)]
    for fig in figs:
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
        plt.close(fig)
    with pytest.raises(ValueError, match="same length"):
        fp.sft_curves([0, 10], [-5.0], [0.0, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        fp.reward_recovery(torch.zeros(2), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        fp.policy_curves({}, best=0)


def test_sft_curves_draw_one_line_per_run_in_both_panels_and_check_every_run():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.viz import ch06 as fp

    fig = fp.sft_curves([0, 10, 20], [-20.0, -3.0, -0.5], [0.0, 0.4, 0.9], label="pre-trained",
                        others={"random weights": ([-18.0, -5.0, -1.5], [0.0, 0.2, 0.6])})
    left, right = fig.axes
    for ax in (left, right):
        assert [line.get_label() for line in ax.get_lines()] == ["pre-trained", "random weights"]
    assert list(left.get_lines()[1].get_ydata()) == [-18.0, -5.0, -1.5]
    assert list(right.get_lines()[0].get_ydata()) == [0.0, 0.4, 0.9]
    plt.close(fig)
    with pytest.raises(ValueError, match="random weights accuracies"):
        fp.sft_curves([0, 10], [-5.0, -1.0], [0.0, 0.5], others={"random weights": ([-5.0, -2.0], [0.0])})
    with pytest.raises(ValueError, match="must be a pair"):
        fp.sft_curves([0, 10], [-5.0, -1.0], [0.0, 0.5], others={"random weights": [-5.0, -2.0, 0.0]})
    assert not plt.get_fignums()  # rejected before any figure opens


def test_fine_tuning_works_with_a_larger_tokenizer_that_holds_the_task_characters():
    """A model pre-trained on other text is fine-tuned with its own tokenizer: only the task's characters matter."""
    from course_utils.text import CharTokenizer

    wide = CharTokenizer.from_text("The quick brown fox. #=CRSUA abcdef xyz")
    tokens, mask = ft.encode_pair(wide, "Rabc=", "cba.")
    assert wide.decode(tokens[1:][mask]) == "cba." and wide.vocab_size > ft.instruction_tokenizer().vocab_size
    inputs, targets, batch_mask = ft.batch_pairs(wide, [("Rab=", "ba."), ("Cabcd=", "abcd.")])
    assert wide.decode(targets[0][batch_mask[0]]) == "ba." and wide.decode(inputs[0][:1]) == "R"
    with pytest.raises(ValueError, match="characters"):
        ft.encode_pair(CharTokenizer.from_text("abc=."), "Rabc=", "cba.")


def test_one_pass_equals_per_turn_for_the_course_transformer(tok):
    from course_utils.models import Transformer, TransformerConfig

    model = Transformer(TransformerConfig(tok.vocab_size, context=128, n_layers=2, n_heads=2, d_model=32), seed=3)
    with torch.no_grad():  # larger weights than at initialisation, so attention is far from uniform
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(20)
    tokens, owner = ft.encode_dialogue(tok, ft.make_dialogue(6, torch.Generator().manual_seed(9)))
    one = ft.turn_log_probs_one_pass(model, tokens, owner)
    assert torch.allclose(one, ft.turn_log_probs_per_turn(model, tokens, owner), atol=1e-5, rtol=0)
    assert one.std() > 0.1


# ---------------------------------------------------------------- chapter 06 assignment, fine-tuning items

def _fails_somewhere(name, fn) -> bool:
    ASSIGNMENT = assignments.load("06")
    from course_utils.assessment.verdict import failing_cases

    return bool(failing_cases(ASSIGNMENT.item(name), fn))


def _lp(logits, tokens, shift=1):
    lp = torch.log_softmax(logits.double(), -1)
    if shift:
        return lp[:-1].gather(1, tokens[1:, None]).squeeze(1)
    return lp[1:].gather(1, tokens[1:, None]).squeeze(1)  # row t scores token t: no shift


FINETUNE_WRONG = {
    "response_loss_mask": {
        "off by one": lambda p, n: torch.arange(n - 1) >= p,
        "one entry per token": lambda p, n: torch.arange(n) >= p,
        "integers, not booleans": lambda p, n: (torch.arange(1, n) >= p).long(),
        "prompt instead of response": lambda p, n: torch.arange(1, n) < p,
    },
    "response_nll": {
        "no shift": lambda z, x, p: float(-_lp(z, x, shift=0)[p - 1:].sum()),
        "prompt included": lambda z, x, p: float(-_lp(z, x).sum()),
        "mean instead of sum": lambda z, x, p: float(-_lp(z, x)[p - 1:].mean()),
        "log of softmax computed naively in float32": lambda z, x, p: float(
            -torch.log(torch.softmax(z[:-1].float(), -1)).gather(1, x[1:, None]).squeeze(1)[p - 1:].sum()),
    },
    "assistant_turn_log_probs": {
        "no shift": lambda z, x, o: torch.stack(
            [_lp(z, x, shift=0)[o[1:] == k].sum() for k in range(int(o.max()) + 1)]),
        "owner not shifted": lambda z, x, o: torch.stack(
            [_lp(z, x)[o[:-1] == k].sum() for k in range(int(o.max()) + 1)]),
        "one total": lambda z, x, o: _lp(z, x)[o[1:] >= 0].sum().reshape(1),
    },
}


@pytest.mark.parametrize("name, label", [(n, w) for n, ws in FINETUNE_WRONG.items() for w in ws])
def test_classic_mistakes_fail_a_graded_case(name, label):
    assert _fails_somewhere(name, FINETUNE_WRONG[name][label])


@pytest.mark.parametrize("name", list(FINETUNE_WRONG))
def test_references_pass_every_graded_case(name):
    ASSIGNMENT = assignments.load("06")

    assert not _fails_somewhere(name, ASSIGNMENT.item(name).reference)


def test_chapter_06_concept_answers_accept_only_the_expected_choice():
    ASSIGNMENT = assignments.load("06")
    from course_utils.assessment.checks import evaluate
    from course_utils.assessment.items import AnswerItem

    answers = [i for i in ASSIGNMENT.items if isinstance(i, AnswerItem)]
    assert len(answers) == 5
    for item in answers:
        assert evaluate(item.name, item.expected).passed
        for wrong in (c for c in item.choices if c != item.expected):
            assert not evaluate(item.name, wrong).passed


def _notebook_points(folder: str) -> dict[str, float]:
    """Run a chapter 06 notebook's graded cells in one namespace and score every item on all its cases."""
    import contextlib
    import io
    from pathlib import Path

    import matplotlib
    import nbformat

    ASSIGNMENT = assignments.load("06")
    from course_utils.assessment.verdict import earned_points

    matplotlib.use("Agg")
    path = Path(__file__).resolve().parent.parent / folder / "06_fine_tuning_as_mle.ipynb"
    namespace: dict = {"__name__": "__main__"}
    names = [item.name for item in ASSIGNMENT.items]
    with contextlib.redirect_stdout(io.StringIO()):
        for index, cell in enumerate(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"):
            # the set-up cell and the cells that define items (graded definitions are self-contained)
            if index == 0 or any(cell.source.lstrip().startswith((f"def {n}(", f"{n} =")) or
                                 f"\ndef {n}(" in cell.source or f"\n{n} =" in cell.source for n in names):
                try:
                    exec(compile(cell.source, str(path), "exec"), namespace)
                except NotImplementedError:
                    assert "raises-exception" in cell.metadata.get("tags", []), cell.source[:200]
    return {item.name: earned_points(item, namespace[item.name]) if item.name in namespace else 0.0
            for item in ASSIGNMENT.items}


def test_chapter_06_solution_earns_every_point_and_the_exercise_none():
    ASSIGNMENT = assignments.load("06")

    solution = _notebook_points("solutions")
    assert sum(solution.values()) == ASSIGNMENT.max_score == 21, solution
    assert sum(_notebook_points("exercises").values()) == 0
