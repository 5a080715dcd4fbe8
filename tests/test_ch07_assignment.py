"""Chapter 07 grading: references and other right answers pass, the solution earns every point, the exercise none."""

import contextlib
import io
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

from course_utils import distributed
from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem
from course_utils.assessment.verdict import earned_points, failing_cases

A = assignments.load("07")
ROOT = Path(__file__).resolve().parent.parent


def _failures(name, fn, hidden=True):
    """Indices of the cases (public first, then hidden) where `fn` disagrees with the reference."""
    return failing_cases(A.item(name), fn, hidden)


def test_every_reference_passes_its_own_cases():
    for item in A.items:
        if isinstance(item, FunctionItem):
            assert _failures(item.name, item.reference) == []


def test_the_mean_of_the_workers_means_fails_publicly_on_unequal_shards():
    def mean_of_means(means, counts):
        return sum(means) / len(means)

    assert _failures("global_mean_nll", mean_of_means, hidden=False) == [0, 1]
    # it passes exactly where it is right: equal shards (case 2) and a single worker (case 4)
    assert _failures("global_mean_nll", mean_of_means) == [0, 1, 3, 5]
    feedback = evaluate("global_mean_nll", mean_of_means)
    assert not feedback.passed and "expected 1.75, got 1.5" in feedback.message


def test_the_all_reduce_of_equal_shards_is_the_global_gradient_so_a_full_batch_answer_passes():
    def whole_batch(table, prev, nxt, world_size):
        w = table.clone().requires_grad_(True)
        loss = -torch.log_softmax(w[prev], dim=-1).gather(1, nxt[:, None]).mean()
        return torch.autograd.grad(loss, w)[0]

    assert _failures("data_parallel_gradient", whole_batch) == []


def test_the_references_are_the_packages_maths():
    from course_utils.assessment.assignments.ch07_data_parallel import _bigram_case, data_parallel_gradient, loss_scales

    table, prev, nxt, k = _bigram_case(5, 12, 3, 9)
    bigram = torch.nn.Embedding(5, 5).double()
    with torch.no_grad():
        bigram.weight.copy_(table)

    def nll(m, x, y):
        return torch.nn.functional.cross_entropy(m(x).flatten(0, 1), y.flatten())

    batch = (prev[:, None], nxt[:, None])
    simulated = distributed.simulate_all_reduce(bigram, [distributed.shard(batch, r, k) for r in range(k)], nll)[0]
    assert torch.allclose(data_parallel_gradient(table, prev, nxt, k), simulated, rtol=0, atol=1e-14)
    counts = [3, 7, 30]
    assert torch.allclose(loss_scales(counts), torch.tensor(counts, dtype=torch.float64) * 3 / 40, atol=1e-15)
    with pytest.raises(ValueError, match="do not split evenly across 5 workers"):
        data_parallel_gradient(table, prev, nxt, 5)
    with pytest.raises(ValueError, match="positive total"):
        loss_scales([0, 0])


def test_ddp_scaled_by_loss_scales_is_the_global_gradient_on_unequal_shards():
    from course_utils.assessment.assignments.ch07_data_parallel import loss_scales

    model = torch.nn.Embedding(4, 4).double()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(4, 4, generator=g, dtype=torch.float64))
    x, y = torch.randint(4, (2, 10, 1), generator=g)

    def nll(m, a, b):
        return torch.nn.functional.cross_entropy(m(a).flatten(0, 1), b.flatten())

    shards = distributed.split_rows((x, y), [2, 8])
    scales = loss_scales([2, 8])
    ddp_average = sum(float(s) * distributed.batch_gradient(model, part, nll)[0]
                      for s, part in zip(scales, shards, strict=True)) / 2
    assert torch.allclose(ddp_average, distributed.batch_gradient(model, (x, y), nll)[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize(("name", "wrong"), [
    ("ANSWER_MEAN_OF_MEANS", "D"), ("ANSWER_SAME_DATA", "C"), ("ANSWER_CHECKPOINT", "D"), ("ANSWER_WHAT_SCALES", "D"),
])
def test_wrong_choices_fail_and_the_expected_ones_pass(name, wrong):
    assert not evaluate(name, wrong).passed
    assert evaluate(name, A.item(name).expected).passed


def test_the_ring_all_reduce_answer_follows_from_the_formula():
    assert A.item("ANSWER_RING_BYTES").expected == pytest.approx(2 * 7 / 8 * 4 * 124e6 / 1e9, abs=1e-9)
    for wrong in (0.496, 0.992, 3.968, 6.944, 868.0):  # S alone; 2S; k·S; all 8 workers; megabytes
        assert not evaluate("ANSWER_RING_BYTES", wrong).passed


def _notebook_points(folder: str) -> dict[str, float]:
    """Run the set-up cell and the cells defining items of a chapter 07 notebook; score every item on all its cases."""
    matplotlib.use("Agg")
    path = ROOT / folder / "07_data_parallel.ipynb"
    names = [item.name for item in A.items]
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for index, cell in enumerate(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"):
            if index == 0 or any(f"def {n}(" in cell.source or f"{n} =" in cell.source for n in names):
                try:
                    exec(compile(cell.source, str(path), "exec"), namespace)
                except NotImplementedError:
                    assert "raises-exception" in cell.metadata.get("tags", []) or "def " in cell.source
    return {item.name: earned_points(item, namespace[item.name]) if item.name in namespace else 0.0
            for item in A.items}


def test_the_solution_earns_every_point_and_the_exercise_none():
    solution = _notebook_points("solutions")
    assert sum(solution.values()) == A.max_score == 13, solution
    assert sum(_notebook_points("exercises").values()) == 0
    assert len(A.items) == 8 and sum(isinstance(i, AnswerItem) for i in A.items) == 5
