"""Every assignment: its items are checked in the notebooks, pass on the solution, fail on the exercise.

Graded definitions must be self-contained: they may rely on the notebook's first cell (imports
and set-up) but on nothing computed elsewhere, so a learner's later cells cannot break them.
"""

import re
from pathlib import Path

import matplotlib
import nbformat
import pytest

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.items import AnswerItem, FunctionItem
from course_utils.assessment.verdict import earned_points

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent
KEYS = [k for k in assignments.keys() if (ROOT / "solutions" / f"{k}.ipynb").exists()]
CHECK_CALL = re.compile(r"""check\(\s*["'](\w+)["']""")


def _cells(folder: str, key: str) -> list[str]:
    nb = nbformat.read(ROOT / folder / f"{key}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^(def {name}\(|{name}\s*=)", source, re.MULTILINE) is not None


def _namespace(folder: str, key: str) -> dict:
    cells = _cells(folder, key)
    items = assignments.load(key).items
    ns: dict = {"__name__": "__main__"}
    exec(compile(cells[0], f"{key}:cell0", "exec"), ns)
    for i, src in enumerate(cells[1:], start=1):
        if any(_defines(src, item.name) for item in items):
            try:
                exec(compile(src, f"{key}:cell{i}", "exec"), ns)
            except NotImplementedError:
                pass
    return ns


def test_there_is_at_least_one_assignment():
    assert "01_mle_coin_flips" in KEYS


@pytest.mark.parametrize("key", KEYS)
def test_assignment_has_enough_items_and_unique_names(key):
    a = assignments.load(key)
    names = [item.name for item in a.items]
    assert len(names) >= 6 and len(set(names)) == len(names)
    assert a.number == key[:2] and a.max_score > 0


def test_item_names_are_unique_across_the_course():
    names = [item.name for k in assignments.keys() for item in assignments.load(k).items]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("key", KEYS)
def test_every_item_is_defined_and_checked_right_after(key):
    cells = _cells("solutions", key)
    checked = [m for src in cells for m in CHECK_CALL.findall(src)]
    names = [item.name for item in assignments.load(key).items]
    assert checked == names, "each item needs exactly one check(...) cell, in item order"
    for name in names:
        where = [i for i, src in enumerate(cells) if _defines(src, name)]
        assert len(where) == 1, f"{name} must be defined in exactly one cell"
        assert name in cells[where[0] + 1] and "check(" in cells[where[0] + 1]


@pytest.mark.parametrize("key", KEYS)
def test_solution_passes_every_check_and_earns_every_point(key):
    ns = _namespace("solutions", key)
    for item in assignments.load(key).items:
        fb = evaluate(item.name, ns[item.name])
        assert fb.passed, fb.message
        assert earned_points(item, ns[item.name]) == item.points, f"{item.name} fails a hidden case"


@pytest.mark.parametrize("key", KEYS)
def test_untouched_exercise_fails_every_check(key):
    ns = _namespace("exercises", key)
    for item in assignments.load(key).items:
        if isinstance(item, AnswerItem):
            assert item.name not in ns
            fb = evaluate(item.name)
        else:
            fb = evaluate(item.name, ns[item.name])
            assert "not implemented yet" in fb.message
        assert not fb.passed and fb.message.startswith("❌") and "\n" not in fb.message
        assert item.name not in ns or earned_points(item, ns[item.name]) == 0.0


@pytest.mark.parametrize("key", assignments.keys())
def test_the_public_part_holds_no_key_and_load_attaches_it(key):
    public, full = assignments.public(key), assignments.load(key)
    assert not any(item.keyed for item in public.items) and full.keyed and assignments.has_key()
    assert [i.name for i in public.items] == [i.name for i in full.items]
    for item in public.items:
        if isinstance(item, AnswerItem):
            assert item.expected is None and not item.also_accepted and not item.why_not
        else:
            assert not item.hidden and not item.mistakes
    assert any(isinstance(i, FunctionItem) and i.hidden for i in full.items)


def test_a_key_must_fit_its_assignment():
    from course_utils.assessment.items import AnswerKey, FunctionKey

    public = assignments.public("01")
    with pytest.raises(ValueError, match="names items it does not define: nonsense"):
        public.with_key({"nonsense": FunctionKey()})
    with pytest.raises(ValueError, match="no answer for the answer item 'ANSWER_LOWER_LOSS'"):
        public.with_key({"ANSWER_SPREAD_RATIO": AnswerKey(expected=0.5)})
    with pytest.raises(ValueError, match="is an answer, not cases"):
        public.with_key({"bernoulli_mle": AnswerKey(expected=0.5), "ANSWER_LOWER_LOSS": AnswerKey("B"),
                         "ANSWER_SPREAD_RATIO": AnswerKey(0.5)})
