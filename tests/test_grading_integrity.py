"""Integrity flags: a notebook that calls an item's reference or reads the course's files loses those items, flagged.

One real `course-grade` batch (chapter 01's solution notebook, and copies of it that each cheat in
one way, or do something legitimate that looks close to it), then units for each part: the message,
the parent's reading of it, the file classification, the recorder and the reports.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import course_utils
from course_utils import likelihood
from course_utils.assessment import assignments
from course_utils.assessment.grading import child, cli, parent, protocol, results
from course_utils.assessment.grading.forkserver import answer_dirs
from course_utils.assessment.grading.scoring import ItemResult

# the grader refuses an environment its sandbox user cannot read: see tests/conftest.py
pytestmark = pytest.mark.usefixtures("readable_environment")

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "01_mle_coin_flips.ipynb"
FULL = 13  # chapter 01's maximum score
CALLED_LL = "called course_utils.likelihood.bernoulli_log_likelihood"
PACKAGE_FILE = "import os, course_utils\nPACKAGE = os.path.dirname(course_utils.__file__)\n"

# ---------------------------------------------------------------- the submissions

CALLS_REFERENCE = '''import course_utils.likelihood
def log_likelihood(theta, flips):
    return course_utils.likelihood.bernoulli_log_likelihood(theta, flips)'''
IMPORTED_FIRST = "from course_utils.likelihood import bernoulli_mle as _mle"  # the notebook's first cell
USES_IMPORTED = '''def bernoulli_mle(flips):
    return _mle(flips)'''
THROUGH_VIZ = '''from course_utils.viz.ch01 import bernoulli_log_likelihood as _ll
log_likelihood = _ll'''
IN_A_THREAD = '''import threading
import course_utils.information as info
def kl_divergence(p, q):
    out = []
    worker = threading.Thread(target=lambda: out.append(info.kl_divergence(p, q)))
    worker.start()
    worker.join()
    return out[0]'''
CUTS_THE_PIPE = '''import os
import course_utils.likelihood as L
def gaussian_mle(xs):
    os.write(3, b'{"unfinished": ')  # a line left open on the result pipe must not swallow the flag
    return L.gaussian_mle(xs)'''
READS_ASSIGNMENT = PACKAGE_FILE + '''try:
    with open(os.path.join(PACKAGE, "assessment", "assignments", "ch01_mle_coin_flips.py")) as f:
        STOLEN = f.read()
except OSError:  # the sandbox hides the file: the attempt is flagged all the same
    STOLEN = None'''
READS_SOLUTION_IN_ITEM = PACKAGE_FILE + '''def kl_divergence(p, q):
    try:
        open(os.path.join(os.path.dirname(PACKAGE), "solutions", "01_mle_coin_flips.ipynb")).close()
    except OSError:
        pass
    import torch
    p, q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    return float((torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum())'''
RELOADS = '''import importlib
import course_utils.likelihood as L
L = importlib.reload(L)  # a fresh module: its functions are not the recorded ones
def log_likelihood(theta, flips):
    return L.bernoulli_log_likelihood(theta, flips)'''
GETSOURCE = '''import inspect
import course_utils.likelihood
SOURCE = inspect.getsource(course_utils.likelihood)'''
# legitimate: what lessons and careful learners do
LESSON_USE = '''from course_utils.likelihood import bernoulli_log_likelihood
assert abs(log_likelihood(0.3, [1, 0, 1]) - bernoulli_log_likelihood(0.3, [1, 0, 1])) < 1e-9
print(f"{bernoulli_log_likelihood(0.5, [1, 0]):.4f}")'''
TRACEBACKS_AND_HELP = '''import traceback, warnings
import course_utils.likelihood as L
try:
    L.bernoulli_mle([])
except Exception:
    traceback.print_exc()
help(L.bernoulli_mle)
warnings.warn("a warning from the notebook")'''
WRITES_ONLY = PACKAGE_FILE + '''try:
    open(os.path.join(PACKAGE, "likelihood.py"), "a").close()
except OSError:
    pass'''


def solution_cells() -> list[dict]:
    return json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]


def code_cell(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}


def submission(before: list[str] = (), after: list[str] = ()) -> dict:
    """Chapter 01's solution notebook with code cells put before its first cell and after its last."""
    nb = json.loads(SOLUTION.read_text(encoding="utf-8"))
    nb["cells"] = [code_cell(s) for s in before] + nb["cells"] + [code_cell(s) for s in after]
    return nb


SUBMISSIONS = {
    "good": submission(),
    "calls_reference": submission(after=[CALLS_REFERENCE]),
    "imported_first": submission(before=[IMPORTED_FIRST], after=[USES_IMPORTED]),
    "through_viz": submission(after=[THROUGH_VIZ]),
    "in_a_thread": submission(after=[IN_A_THREAD]),
    "cuts_the_pipe": submission(after=[CUTS_THE_PIPE]),
    "reads_assignment": submission(after=[READS_ASSIGNMENT]),
    "reads_solution_in_item": submission(after=[READS_SOLUTION_IN_ITEM]),
    "getsource": submission(after=[GETSOURCE]),
    "reloads": submission(after=[RELOADS]),
    "lesson_use": submission(after=[LESSON_USE]),
    "tracebacks_and_help": submission(after=[TRACEBACKS_AND_HELP]),
    "writes_only": submission(after=[WRITES_ONLY]),
}


class Batch:
    """One `course-grade` run over SUBMISSIONS: its results, grades.csv and printed lines."""

    def __init__(self, tmp: Path):
        folder = tmp / "submissions"
        folder.mkdir(mode=0o700)
        for name, nb in SUBMISSIONS.items():
            (folder / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        self.out = tmp / "out"
        self.proc = subprocess.run(
            [sys.executable, "-m", "course_utils.assessment.grading", "01", str(folder), "--out", str(self.out),
             "--jobs", "2"], capture_output=True, text=True, timeout=600,
            env=dict(os.environ, OMP_NUM_THREADS="1"))
        self.csv_text = (self.out / "grades.csv").read_text(encoding="utf-8")
        self.rows = {r["submission"]: r for r in csv.DictReader(io.StringIO(self.csv_text, newline=""))}
        self.results = {name: json.loads((self.out / f"{name}.json").read_text(encoding="utf-8"))
                        for name in SUBMISSIONS}

    def flags(self, name: str) -> dict[str, str]:
        return self.results[name]["extra_data"]["flags"]

    def scores(self, name: str) -> dict[str, float]:
        return {t["name"]: t["score"] for t in self.results[name]["tests"]}

    def output(self, name: str, item: str) -> str:
        return next(t["output"] for t in self.results[name]["tests"] if t["name"] == item)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    run = Batch(tmp_path_factory.mktemp("integrity"))
    assert run.proc.returncode == 0, run.proc.stderr
    return run


def assert_flagged(batch: Batch, name: str, flags: dict[str, str], lost: set[str]) -> None:
    """`name` has exactly these flags, and lost exactly the points of `lost` (every other item full)."""
    assert batch.flags(name) == flags, batch.results[name]["output"]
    points = {item.name: item.points for item in assignments.load("01").items}
    assert batch.scores(name) == {k: 0 if k in lost else p for k, p in points.items()}
    assert batch.results[name]["score"] == FULL - sum(points[k] for k in lost)
    assert batch.rows[name]["status"] == "ok"


# ---------------------------------------------------------------- the batch

@pytest.mark.parametrize("name", ["good", "lesson_use", "tracebacks_and_help", "writes_only"])
def test_honest_notebooks_get_full_marks_and_no_flag(batch, name):
    # the reference used in a cell (as the lessons do), a traceback, help() and a warning that read
    # the course's source, and an open for writing only: none of them is the learner reading or copying
    assert_flagged(batch, name, {}, set())
    assert batch.rows[name]["flags"] == ""


def test_calling_the_reference_costs_that_item_and_is_flagged(batch):
    assert_flagged(batch, "calls_reference", {"log_likelihood": CALLED_LL}, {"log_likelihood"})
    feedback = batch.output("calls_reference", "log_likelihood")
    assert feedback.startswith(f"⚑ flagged for the instructor's review: {CALLED_LL}.")
    assert re.search(r"The result itself: ✅ all \d+ cases pass\.$", feedback)  # what a review could restore


def test_a_reference_imported_in_the_first_cell_is_recorded_too(batch):
    assert_flagged(batch, "imported_first", {"bernoulli_mle": "called course_utils.likelihood.bernoulli_mle"},
                   {"bernoulli_mle"})


def test_a_reference_reached_through_another_course_module_is_recorded(batch):
    # course_utils.viz.ch01 imported bernoulli_log_likelihood when the fork server loaded it
    assert_flagged(batch, "through_viz", {"log_likelihood": CALLED_LL}, {"log_likelihood"})


def test_a_call_from_a_thread_started_by_the_item_is_recorded(batch):
    assert_flagged(batch, "in_a_thread", {"kl_divergence": "called course_utils.information.kl_divergence"},
                   {"kl_divergence"})


def test_an_unfinished_line_on_the_result_pipe_does_not_swallow_a_flag(batch):
    assert_flagged(batch, "cuts_the_pipe", {"gaussian_mle": "called course_utils.likelihood.gaussian_mle"},
                   {"gaussian_mle"})


def test_reading_the_assignment_while_cells_run_flags_the_whole_notebook(batch):
    reason = "read course_utils/assessment/assignments/ch01_mle_coin_flips.py"
    assert_flagged(batch, "reads_assignment", {protocol.NOTEBOOK: reason}, set(batch.scores("good")))
    assert f"while the cells ran: {reason}" in batch.output("reads_assignment", "ANSWER_LOWER_LOSS")


@pytest.mark.skipif(not SOLUTION.is_file(), reason="solutions/ is only in a checkout")
def test_reading_a_solution_inside_an_item_flags_that_item(batch):
    assert_flagged(batch, "reads_solution_in_item", {"kl_divergence": "read solutions/01_mle_coin_flips.ipynb"},
                   {"kl_divergence"})


def test_reading_a_course_module_s_source_is_flagged(batch):
    assert_flagged(batch, "getsource", {protocol.NOTEBOOK: "read course_utils/likelihood.py"},
                   set(batch.scores("good")))


def test_running_a_course_module_again_is_flagged(batch):
    assert_flagged(batch, "reloads", {protocol.NOTEBOOK: "reloaded course_utils.likelihood"}, set(batch.scores("good")))


def test_grades_csv_has_the_flags_column_every_field_quoted(batch):
    lines = batch.csv_text.splitlines()
    assert lines[0].startswith("submission,score,max_score,status,flags,")  # then one column per item
    assert len(lines) == len(SUBMISSIONS) + 1
    columns = lines[0].count(",") + 1
    assert all(line.startswith('"') and line.endswith('"') and line.count('","') == columns - 1 for line in lines[1:])
    assert batch.rows["calls_reference"]["flags"] == f"log_likelihood: {CALLED_LL}"
    assert batch.rows["calls_reference"]["score"] == str(FULL - 2)


def test_the_batch_summary_names_the_flagged_submissions_in_one_line(batch):
    flagged = [line for line in batch.proc.stderr.splitlines() if "flagged:" in line]
    assert len(flagged) == 1, batch.proc.stderr
    assert flagged[0].startswith("9 submissions flagged: ")
    assert f"calls_reference (log_likelihood: {CALLED_LL})" in flagged[0]
    assert "good (" not in flagged[0] and "lesson_use" not in flagged[0]
    assert batch.proc.stderr.splitlines()[-1].startswith(f"graded {len(SUBMISSIONS)} of {len(SUBMISSIONS)} ")


# ---------------------------------------------------------------- units: the message and its reading

def test_a_flag_crosses_the_protocol_bounded_and_only_for_known_items():
    expect = {"log_likelihood": 4}
    line = protocol.encode_line(protocol.flag("log_likelihood", "called x" * 100))
    msg = protocol.decode_line(line, expect)
    assert msg == protocol.Flag("log_likelihood", ("called x" * 100)[:protocol.MAX_REASON_CHARS])
    assert protocol.decode_line(protocol.encode_line(protocol.flag(protocol.NOTEBOOK, "read y")), expect) == \
        protocol.Flag(protocol.NOTEBOOK, "read y")
    assert protocol.decode_line(protocol.encode_line(protocol.flag("other", "read y")), expect) is None
    assert protocol.parse_result({"flag": "log_likelihood", "reason": 3}, expect) is None
    assert line.startswith(b"\n{") and line.endswith(b"}\n")  # a fresh line whatever came before


def test_the_parent_keeps_a_bounded_set_of_flags_after_a_line_left_open():
    run, buffer = parent.RunResult(expect={"log_likelihood": 4, "kl_divergence": 6}), bytearray()
    stream = b'{"unfinished": ' + b"".join(
        protocol.encode_line(protocol.flag("log_likelihood", f"called f{i % 5}")) for i in range(20))
    stream += protocol.encode_line(protocol.flag("kl_divergence", "read solutions/x"))
    parent._take_lines(run, buffer, stream)
    assert run.flags == {"log_likelihood": ["called f0", "called f1", "called f2"],
                         "kl_divergence": ["read solutions/x"]}
    assert run.protocol_errors == 1  # the unfinished line, dropped on its own


def test_only_references_in_concept_modules_are_named_to_the_child():
    assert protocol.reference_name(likelihood.bernoulli_log_likelihood) == CALLED_LL.removeprefix("called ")
    ch01 = assignments.load("01")
    assert protocol.reference_name(ch01.item("best_theta").reference) == ""  # defined in the assignment
    assert protocol.reference_name(lambda x: x) == ""
    assert not protocol.is_reference_name("course_utils.assessment.items.to_plain")
    spec = cli.with_references(cli_plan_spec(ch01), ch01)
    assert {s.name: s.reference for s in spec if s.reference} == {
        "log_likelihood": "course_utils.likelihood.bernoulli_log_likelihood",
        "bernoulli_mle": "course_utils.likelihood.bernoulli_mle",
        "kl_divergence": "course_utils.information.kl_divergence",
        "gaussian_mle": "course_utils.likelihood.gaussian_mle"}


def cli_plan_spec(assignment) -> list[protocol.ItemSpec]:
    from course_utils.assessment.grading.scoring import Plan

    return Plan(assignment).child_spec()


# ---------------------------------------------------------------- units: the child's records

def _paths() -> child.CoursePaths:
    return child.course_paths(answer_dirs())


def test_course_files_are_told_apart_from_others():
    paths, package = _paths(), Path(course_utils.__file__).resolve().parent
    assert child.course_file(str(package / "likelihood.py"), paths) == (child.SOURCE, "course_utils/likelihood.py")
    assert child.course_file(os.fsencode(package / "assessment" / "verdict.py"), paths) == \
        (child.SOURCE, "course_utils/assessment/verdict.py")
    assert child.course_file(package / "assessment" / "assignments" / "ch01_mle_coin_flips.py", paths) == \
        (child.ANSWER, "course_utils/assessment/assignments/ch01_mle_coin_flips.py")
    assert child.course_file(str(package / "viz" / ".." / "likelihood.py"), paths)[0] == child.SOURCE
    assert child.course_file(str(package / "notes.txt"), paths) is None  # a data file, not source
    assert child.course_file("/etc/hostname", paths) is None
    assert child.course_file(3, paths) is None
    if SOLUTION.is_file():
        assert child.course_file(str(SOLUTION), paths) == (child.ANSWER, "solutions/01_mle_coin_flips.ipynb")


def test_the_recorder_flags_calls_from_outside_the_course_only_during_its_item():
    sent: list[tuple[str, str]] = []
    now = {"item": None}
    recorded = child._recorder(likelihood.bernoulli_mle, "course_utils.likelihood.bernoulli_mle",
                               frozenset({"bernoulli_mle"}), lambda i, r: sent.append((i, r)),
                               lambda frame: now["item"], _paths())
    assert recorded([1, 0, 1, 1]) == likelihood.bernoulli_mle([1, 0, 1, 1]) == 0.75
    now["item"] = "log_likelihood"  # another item's evaluation: a legitimate helper there
    recorded([1, 0])
    assert sent == []
    now["item"] = "bernoulli_mle"
    recorded([1, 0])
    assert sent == [("bernoulli_mle", "called course_utils.likelihood.bernoulli_mle")]
    assert recorded.__name__ == "bernoulli_mle" and recorded.__doc__ == likelihood.bernoulli_mle.__doc__
    assert not hasattr(recorded, "__wrapped__")
    # course code that names the reference (a building block) is not the learner's call
    internal = types.FunctionType(compile("def f(x):\n    return bernoulli_mle(x)\n",
                                          str(Path(likelihood.__file__)), "exec").co_consts[0],
                                  {"bernoulli_mle": recorded})
    internal([1, 1])
    assert len(sent) == 1


def test_the_open_course_keeps_its_references_unwrapped():
    # importing the grader (as this test module does) changes nothing outside a grading child
    fn = likelihood.bernoulli_log_likelihood
    assert type(fn) is types.FunctionType and fn.__code__.co_filename == likelihood.__file__
    assert fn.__code__.co_name == "bernoulli_log_likelihood" and fn.__closure__ is None


# ---------------------------------------------------------------- units: the reports

def _item(name: str, score: float, points: float) -> ItemResult:
    return ItemResult(name, score, points, "✅ all cases pass.")


def test_flagged_items_score_zero_and_a_notebook_flag_costs_every_item():
    items = [_item("a", 2, 2), _item("b", 1, 1)]
    one = results.apply_flags(items, {"a": "called x"})
    assert [i.score for i in one] == [0, 1] and one[1] == items[1]
    assert one[0].output.startswith("⚑ flagged for the instructor's review: called x.")
    both = results.apply_flags(items, {protocol.NOTEBOOK: "read y", "a": "called x"})
    assert [i.score for i in both] == [0, 0]
    assert "called x; while the cells ran: read y" in both[0].output


def test_summary_line_is_singular_bounded_and_escaped():
    plain = results.unreadable("alice", "empty", [("f", 1.0)])
    flagged = [dataclasses.replace(plain, submission=f"s{i}\n", flags={"f": "called x", "g": "read y"})
               for i in range(12)]
    assert results.flag_summary([plain]) is None
    assert results.flag_summary([plain, flagged[0]]) == "1 submission flagged: s0\\n (f: called x; +1 more)"
    line = results.flag_summary(flagged)
    assert line.startswith("12 submissions flagged: s0\\n (f: called x; +1 more), s1\\n")
    assert line.endswith(", and 2 more (see grades.csv)") and "s10" not in line and "\n" not in line
