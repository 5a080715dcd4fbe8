"""Chapter 04 grading: hidden cases catch unstable, mis-smoothed and mis-averaged implementations."""

import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import failing_cases

A = assignments.load("04")


def _failures(name, fn, hidden=True):
    """Indices of the cases (public first, then hidden) where `fn` disagrees with the reference."""
    return failing_cases(A.item(name), fn, hidden)


def _naive_log_probs(z):
    e = torch.exp(z)
    return torch.log(e / e.sum(dim=-1, keepdim=True))


def _log_of_softmax(z):
    return torch.log(torch.softmax(z, dim=-1))


def test_every_reference_passes_its_own_cases():
    for item in A.items:
        if hasattr(item, "reference"):
            assert _failures(item.name, item.reference) == []


def test_unstable_cross_entropy_passes_public_cases_but_fails_a_hidden_large_logit_case():
    n_public = len(A.item("stable_cross_entropy").public)
    for log_probs in (_naive_log_probs, _log_of_softmax):
        def unstable(z, y, log_probs=log_probs):
            return float(-log_probs(z).gather(1, y[:, None]).mean())

        bad = _failures("stable_cross_entropy", unstable)
        assert bad and min(bad) >= n_public, bad  # public cases pass, a hidden one fails
        assert evaluate("stable_cross_entropy", unstable).passed


def test_unstable_smoothing_and_gradient_fail_hidden_cases():
    def smoothed(z, y, eps):
        logp = _log_of_softmax(z)
        return float(((1 - eps) * -logp.gather(1, y[:, None]).squeeze(1) - eps * logp.mean(dim=1)).mean())

    def gradient(z, y):
        e = torch.exp(z)
        return e / e.sum(dim=-1, keepdim=True) - torch.nn.functional.one_hot(y, z.shape[-1])

    for name, fn in (("smoothed_cross_entropy", smoothed), ("cross_entropy_gradient", gradient)):
        bad = _failures(name, fn)
        assert bad and min(bad) >= len(A.item(name).public), (name, bad)


def test_common_mistakes_fail():
    def smoothing_over_others(z, y, eps):  # ε/(V-1) on the wrong tokens, 1-ε on the target
        v = z.shape[-1]
        q = torch.full_like(z, eps / (v - 1))
        q.scatter_(1, y[:, None], 1 - eps)
        return float(-(q * torch.log_softmax(z, dim=-1)).sum(dim=1).mean())

    def gradient_of_mean(z, y):
        return (torch.softmax(z, dim=-1) - torch.nn.functional.one_hot(y, z.shape[-1])) / len(y)

    def mean_with_padding(z, y, mask):
        return float(torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1)))

    def mean_of_sequence_means(z, y, mask):
        per = -torch.log_softmax(z, dim=-1).gather(2, y[..., None]).squeeze(2) * mask
        return float((per.sum(1) / mask.sum(1)).mean())

    def including_prompt(losses, mask):
        return -float(sum(losses))

    def forgets_the_sign(losses, mask):
        return float(sum(v for v, m in zip(losses, mask, strict=True) if m))

    assert _failures("smoothed_cross_entropy", smoothing_over_others)
    assert _failures("cross_entropy_gradient", gradient_of_mean)
    assert _failures("token_mean_loss", mean_with_padding)
    assert _failures("token_mean_loss", mean_of_sequence_means)
    assert _failures("log_likelihood_from_losses", including_prompt)
    assert _failures("log_likelihood_from_losses", forgets_the_sign)


def test_concept_answers():
    assert evaluate("ANSWER_IDENTICAL_CURVES", "C").passed
    assert not evaluate("ANSWER_IDENTICAL_CURVES", "A").passed
    assert evaluate("ANSWER_LABEL_REPRESENTATION", False).passed
    wrong = evaluate("ANSWER_LABEL_REPRESENTATION", True)
    assert not wrong.passed and wrong.message.startswith("❌") and "Hint" in wrong.message
    assert not evaluate("ANSWER_LABEL_REPRESENTATION", "False").passed  # text is not a boolean
    assert evaluate("ANSWER_KL_GAP", 1.35 - 1.12).passed and not evaluate("ANSWER_KL_GAP", 1.12).passed


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
