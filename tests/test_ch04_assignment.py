"""Chapter 04 grading: large logits fail unstable code publicly; tests/test_mistakes.py runs every listed mistake."""

import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.verdict import failing_cases

A = assignments.load("04")


def _failures(name, fn, hidden=True):
    """Indices of the cases (public first, then hidden) where `fn` disagrees with the reference."""
    return failing_cases(A.item(name), fn, hidden)


def test_every_reference_passes_its_own_cases():
    for item in A.items:
        if hasattr(item, "reference"):
            assert _failures(item.name, item.reference) == []


def test_unstable_cross_entropy_fails_a_public_large_logit_case_with_the_hint_that_names_it():
    def unstable(z, y):
        return float(-torch.log(torch.softmax(z, -1)).gather(1, y[:, None]).mean())

    item = A.item("stable_cross_entropy")
    assert _failures("stable_cross_entropy", unstable, hidden=False) == [2]  # the logits 1000 apart
    fb = evaluate("stable_cross_entropy", unstable)
    assert not fb.passed and fb.message.endswith(f"Hint: {item.non_finite_hint}")


def test_floor_and_gap_add_up_to_the_cross_entropy():
    from course_utils.assessment.assignments.ch04_cross_entropy import loss_floor_and_gap

    p, q = torch.tensor([0.0, 0.5, 0.3, 0.2], dtype=torch.float64), torch.tensor([0.1, 0.2, 0.3, 0.4],
                                                                                  dtype=torch.float64)
    h, kl = loss_floor_and_gap(p, q)
    assert h + kl == pytest.approx(float(-(p[1:] * q[1:].log()).sum()), rel=1e-12)
    assert loss_floor_and_gap(p, p)[1] == pytest.approx(0.0, abs=1e-12)


def test_concept_answers():
    assert evaluate("ANSWER_IDENTICAL_CURVES", "C").passed
    assert not evaluate("ANSWER_IDENTICAL_CURVES", "A").passed
    assert evaluate("ANSWER_LABEL_REPRESENTATION", False).passed
    wrong = evaluate("ANSWER_LABEL_REPRESENTATION", True)
    assert not wrong.passed and wrong.message.startswith("❌") and "Hint" in wrong.message
    assert not evaluate("ANSWER_LABEL_REPRESENTATION", "False").passed  # text is not a boolean


def test_reference_helpers_reject_bad_input():
    from course_utils.assessment.assignments.ch04_cross_entropy import log_likelihood_from_losses

    with pytest.raises(ValueError, match="same shape"):
        log_likelihood_from_losses([0.1, 0.2], [True])


def _notebook_functions(folder):
    """The graded definitions of a chapter 04 notebook, run after its first cell (as the grader does)."""
    from pathlib import Path

    import nbformat

    path = Path(__file__).resolve().parent.parent / folder / "04_cross_entropy.ipynb"
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    ns: dict = {"__name__": "__main__"}
    exec(compile(cells[0], "cell0", "exec"), ns)
    names = [item.name for item in A.items]
    for src in cells[1:]:
        if any(f"def {n}(" in src or src.lstrip().startswith("### BEGIN") and n in src for n in names):
            try:
                exec(compile(src, "cell", "exec"), ns)
            except NotImplementedError:
                pass
    return ns


def test_solution_passes_every_hidden_case_and_exercise_passes_none():
    solution, exercise = _notebook_functions("solutions"), _notebook_functions("exercises")
    for item in A.items:
        if hasattr(item, "reference"):
            assert _failures(item.name, solution[item.name]) == [], item.name
            assert len(_failures(item.name, exercise[item.name])) == len(item.cases(True)), item.name
        else:
            assert evaluate(item.name, solution[item.name]).passed
            assert item.name not in exercise


def test_sequence_sums_and_the_token_mean_tell_one_story():
    from course_utils.assessment.assignments.ch04_cross_entropy import sequence_losses, token_mean_loss

    z, y, mask = A.item("sequence_losses").public[1].build()
    sums = sequence_losses(z, y, mask)
    assert sums.shape == (3,) and float(sums.sum()) / int(mask.sum()) == pytest.approx(token_mean_loss(z, y, mask))
    # a per-sequence mean is a per-token average, not -log Pr(x): it fails the public cases
    item = A.item("sequence_losses")
    means = next(m for m in item.mistakes if m.pitfall)
    assert _failures("sequence_losses", means.fn, hidden=False) == [0, 1]
