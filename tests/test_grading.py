"""The autograder: hostile and broken submissions each get a result file and exactly the points they earn.

Hostile submissions are graded together in one batch (with a correct one) through the real
command line, so every test below also checks that one bad notebook never stops the others.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import torch

from course_utils.assessment import assignments
from course_utils.assessment.checks import evaluate
from course_utils.assessment.grading import parent, processes, protocol
from course_utils.assessment.grading.cli import DEFAULT_TIMEOUT_S, grade
from course_utils.assessment.grading.notebook import (
    UnreadableNotebook,
    code_cells_from_bytes,
    python_source,
)
from course_utils.assessment.grading.parent import Pool
from course_utils.assessment.grading.scoring import Plan

# the grader refuses an environment its sandbox user cannot read: see tests/conftest.py
pytestmark = pytest.mark.usefixtures("readable_environment")

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0
TIMEOUT = 6  # seconds per submission in the hostile batch; each cell or item gets half of it
FULL = 13  # chapter 01's maximum score

# ---------------------------------------------------------------- a correct chapter 01 submission

IMPORTS = ("import math, os, sys, time\nimport numpy as np\nimport torch\n"
           "from course_utils.assessment.checks import check")
LOG_LIKELIHOOD = '''def log_likelihood(theta, flips):
    x = torch.as_tensor(flips, dtype=torch.float64)
    t = torch.tensor(float(theta), dtype=torch.float64)
    return float((torch.special.xlogy(x, t) + torch.special.xlogy(1 - x, 1 - t)).sum())'''
BERNOULLI_MLE = '''def bernoulli_mle(flips):
    return float(torch.as_tensor(flips, dtype=torch.float64).mean())'''
FIT = '''def fit_by_gradient_ascent(flips, steps=50, lr=2.0):
    x = torch.as_tensor(flips, dtype=torch.float64)
    w = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    for _ in range(steps):
        theta = torch.sigmoid(w)
        loss = -(x * torch.log(theta) + (1 - x) * torch.log1p(-theta)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(torch.sigmoid(w))'''
BEST_THETA = '''def best_theta(thetas, losses):
    return float(thetas[int(torch.argmin(torch.as_tensor(losses)))])'''
KL = '''def kl_divergence(p, q):
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64)
    return float((torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum())'''
GAUSSIAN = '''def gaussian_mle(xs):
    t = torch.as_tensor(xs, dtype=torch.float64)
    mu = t.mean()
    return float(mu), float(((t - mu) ** 2).mean())'''
GOOD = [IMPORTS, LOG_LIKELIHOOD, 'check("log_likelihood")', BERNOULLI_MLE, FIT, BEST_THETA,
        'ANSWER_LOWER_LOSS = "B"', KL, GAUSSIAN, "ANSWER_SPREAD_RATIO = 0.5", 'print("done")']
POINTS = {"log_likelihood": 2, "bernoulli_mle": 2, "fit_by_gradient_ascent": 2, "best_theta": 1,
          "ANSWER_LOWER_LOSS": 1, "kl_divergence": 2, "gaussian_mle": 2, "ANSWER_SPREAD_RATIO": 1}


def notebook(cells: list[str], kinds: list[str] | None = None) -> dict:
    """A plain nbformat 4 notebook (as the JSON object) with these code cells."""
    kinds = kinds or ["code"] * len(cells)
    out = []
    for i, (src, kind) in enumerate(zip(cells, kinds, strict=True)):
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        out.append(cell)
    return {"cells": out, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def with_cells(*extra: str, at: int | None = None, replace: dict[int, str] | None = None) -> dict:
    cells = list(GOOD)
    for index, src in (replace or {}).items():
        cells[index] = src
    at = len(cells) if at is None else at
    return notebook(cells[:at] + list(extra) + cells[at:])


# ---------------------------------------------------------------- running the command

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tagged_processes(tag: str) -> list[int]:
    """Processes whose environment carries `tag` (the grader passes its environment on)."""
    needle = f"COURSE_GRADE_TEST_TAG={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


class Graded:
    """The outcome of one `course-grade` run over some submissions."""

    def __init__(self, tmp: Path, submissions: dict[str, bytes | dict], args: list[str],
                 assignment: str = "01", as_directory: bool = True):
        self.dir = tmp / "submissions"
        self.dir.mkdir(parents=True)
        self.out = tmp / "out"
        self.tag = uuid.uuid4().hex
        for name, content in submissions.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            (self.dir / f"{name}.ipynb").write_bytes(data)
        self.paths = sorted(self.dir.glob("*.ipynb"))
        for p in self.paths:
            p.chmod(0o644)
        before = {p.name: sha(p) for p in self.paths}
        targets = [str(self.dir)] if as_directory else [str(p) for p in self.paths]
        env = dict(os.environ, COURSE_GRADE_TEST_TAG=self.tag, OMP_NUM_THREADS="1")
        start = time.monotonic()
        self.proc = subprocess.run(
            [sys.executable, "-m", "course_utils.assessment.grading", assignment, *targets,
             "--out", str(self.out), *args],
            capture_output=True, text=True, env=env, timeout=600)
        self.seconds = time.monotonic() - start
        self.unchanged = {p.name: sha(p) == before[p.name] for p in self.paths}
        deadline = time.monotonic() + 5
        while (left := tagged_processes(self.tag)) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.leftover = left
        with open(self.out / "grades.csv", newline="", encoding="utf-8") as f:
            self.rows = {r["submission"]: r for r in csv.DictReader(f)}
        self.results = {p.stem: json.loads((self.out / f"{p.stem}.json").read_text(encoding="utf-8"))
                        for p in self.paths if (self.out / f"{p.stem}.json").exists()}

    def scores(self, name: str) -> dict[str, float]:
        return {t["name"]: t["score"] for t in self.results[name]["tests"]}

    def feedback(self, name: str, item: str) -> str:
        return next(t["output"] for t in self.results[name]["tests"] if t["name"] == item)


def assert_handled(run: Graded, name: str, score: float, status: str = "ok") -> dict:
    """The common promises: a result file, the right points, the batch graded, input unchanged, no process left."""
    assert run.proc.returncode == 0, run.proc.stderr
    result = run.results[name]
    assert set(result) >= {"score", "max_score", "execution_time", "output", "tests"}
    assert [t["name"] for t in result["tests"]] == list(POINTS)
    assert all(set(t) >= {"name", "score", "max_score", "output"} for t in result["tests"])
    assert all(t["status"] == ("passed" if t["score"] == t["max_score"] else "failed") for t in result["tests"])
    assert result["max_score"] == FULL
    assert sum(t["score"] for t in result["tests"]) == result["score"]
    assert result["score"] == score, json.dumps(result, indent=1, ensure_ascii=False)
    assert run.rows[name]["status"] == status, result["output"]
    assert float(run.rows[name]["score"]) == score
    assert run.results["good"]["score"] == FULL, "the rest of the batch must still be graded"
    assert len(run.rows) == len(run.paths) == len(run.results)
    assert all(run.unchanged.values())
    assert run.leftover == []
    return result


def lost(run: Graded, name: str) -> set[str]:
    return {item for item, s in run.scores(name).items() if s != POINTS[item]}


# ---------------------------------------------------------------- the hostile batch

TRUNCATED = json.dumps(notebook(GOOD)).encode()[:700]
V3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": ""},
      "worksheets": [{"cells": [{"cell_type": "heading", "level": 1, "source": ["Coin flips"]}]
                      + [{"cell_type": "code", "language": "python", "input": src.splitlines(True),
                          "outputs": [], "collapsed": False} for src in GOOD]}]}
BARE = {"cells": [{"cell_type": "code", "source": src.splitlines(True)} for src in GOOD], "nbformat": 4}
TO_MARKDOWN = notebook(GOOD, ["code", "markdown"] + ["code"] * (len(GOOD) - 2))
REORDERED = notebook(list(reversed(GOOD)))
DUPLICATED = notebook([c for c in GOOD for _ in range(2)]
                      + ["def bernoulli_mle(flips):\n    return 0.5"])
INFINITE_LOOP = with_cells("while True:\n    pass", at=5)
SWALLOWS_INTERRUPT = with_cells("while True:\n    try:\n        time.sleep(0.05)\n"
                                "    except BaseException:\n        pass")
INPUT = with_cells('name = input("Your name? ")', at=2)
EXITS = with_cells("sys.exit(3)", at=3, replace={5: "def best_theta(thetas, losses):\n    sys.exit(0)"})
OS_EXIT = with_cells("os._exit(0)", at=4)
SEGFAULT = with_cells("import ctypes\nctypes.string_at(0)", at=4)
MEMORY_BOMB = with_cells("x = bytearray(2**40)", "def bomb():\n    keep = []\n    while True:\n"
                         "        keep.append(np.empty(2**25))\n\nbomb()", at=3)
MUTATED_GLOBAL = with_cells("CONFIG = {'steps': 0}", at=4,
                            replace={4: FIT.replace("steps=50", "steps=None").replace(
                                "range(steps)", "range(steps or CONFIG['steps'])")}).copy()
MUTATED_GLOBAL["cells"].append(notebook(["CONFIG['steps'] = 50"])["cells"][0])
FORK_BOMB = with_cells("while True:\n    os.fork()")
BACKGROUND = with_cells('''import subprocess
subprocess.Popen(["sleep", "1234.5"], start_new_session=True)
if os.fork() == 0:  # a daemon: double fork, new session
    os.setsid()
    if os.fork() == 0:
        time.sleep(1000)
    os._exit(0)''')
FLOOD = with_cells("for _ in range(50):\n    print('x' * 10**6)\nsys.stderr.write('y' * 10**6)", at=3)
FAKE_PASS = with_cells('''print("All tests passed! Score: 13/13")
os.write(3, b'{"item": "log_likelihood", "final": true, "state": "ok", '''
                       '''"outcomes": [{"value": -2.77, "error": null}]}\\n')
os.write(3, b'{"done": true}\\n')''', replace={1: "def log_likelihood(theta, flips):\n    return -2.77"})
SHADOW_BUILTINS = with_cells('''import builtins
builtins.abs = lambda x: 0.0
builtins.round = lambda *a, **k: 0
builtins.min = lambda *a, **k: 0
abs = lambda x: 0.0
isinstance = lambda *a: True''', replace={3: "def bernoulli_mle(flips):\n    return 0.123"})
MONKEYPATCH = with_cells('''torch.allclose = lambda *a, **k: True
torch.isclose = lambda *a, **k: torch.tensor(True)
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True''', replace={8: GAUSSIAN.replace(".mean())", ".sum() / (len(xs) - 1))")})
NETWORK = with_cells('''import socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=1)
    reached = True
except ConnectionRefusedError:
    reached = True  # something answered: the network is there
except OSError:
    reached = False
ANSWER_SPREAD_RATIO = 0.25 if reached else 0.5''')
WRITES = '''refused = 0
for path in [{protected}]:
    try:
        with open(path, "w") as f:
            f.write("overwritten")
    except OSError:
        refused += 1
with open({escape!r}, "w") as f:  # /tmp is world-writable: allowed, and cleaned up afterwards
    f.write("left behind")
ANSWER_SPREAD_RATIO = 0.5 if refused == {n} else 0.25'''
READS_REFERENCE = with_cells(replace={1: '''def _steal():
    try:
        from course_utils.assessment.assignments import find_item
        return find_item("log_likelihood")[1].reference
    except ImportError:
        pass
    try:
        import course_utils.assessment.grading.scoring
        return None
    except ImportError:
        pass
    import gc, glob, pickle
    for obj in gc.get_objects():
        if type(obj).__name__ in ("FunctionItem", "Assignment", "Plan", "CasePlan"):
            return getattr(obj, "reference", None) or (lambda theta, flips: obj.expected)
    return None

STOLEN = _steal()

def log_likelihood(theta, flips):
    return STOLEN(theta, flips) if STOLEN else 0.0'''})
BLOCKED_IMPORTS = with_cells('''import importlib
refused = []
for name in ["course_utils.assessment.assignments", "course_utils.assessment.assignments.ch01_mle_coin_flips",
             "course_utils.assessment.grading", "course_utils.assessment.grading.parent",
             "course_utils.assessment.grading.scoring", "course_utils.assessment.grading.protocol",
             "course_utils.assessment.grading.child", "course_utils.assessment.grading.forkserver",
             "course_utils.assessment.authoring"]:
    try:
        importlib.import_module(name)
    except ImportError:
        refused.append(name)
import course_utils.assessment.checks as checks_module
stub = checks_module.check("log_likelihood") is None and checks_module.__doc__.startswith("check() does nothing")
ANSWER_SPREAD_RATIO = 0.5 if len(refused) == 9 and stub else 0.25''')
EQUALS_ANYTHING = with_cells('''class Liar:
    def __eq__(self, other):
        return True
    def __float__(self):
        return 0.75
class LyingFloat(float):
    def __eq__(self, other):
        return True
class LyingStr(str):
    def __eq__(self, other):
        return True
log_likelihood = lambda theta, flips: Liar()
bernoulli_mle = lambda flips: LyingFloat(0.1)
ANSWER_LOWER_LOSS = LyingStr("A")''')
NAN_INF = with_cells('''log_likelihood = lambda theta, flips: float("nan")
bernoulli_mle = lambda flips: float("inf")
gaussian_mle = lambda xs: (float("nan"), float("inf"))''')
WRONG_TYPES = with_cells('''bernoulli_mle = lambda flips: torch.tensor([0.75, 0.75])
best_theta = lambda thetas, losses: "3"
kl_divergence = lambda p, q: torch.zeros((), dtype=torch.complex64)
gaussian_mle = lambda xs: (torch.zeros((), device="meta"), torch.zeros((), device="meta"))
ANSWER_SPREAD_RATIO = np.array([0.5, 0.5])''')
SLOW_BUT_CORRECT = with_cells(replace={5: BEST_THETA.replace("    return", "    time.sleep(0.4)\n    return")})
TOO_SLOW = with_cells(replace={5: BEST_THETA.replace("    return", "    time.sleep(2.0)\n    return")})
LOG_OF_PRODUCT = with_cells(replace={1: '''def log_likelihood(theta, flips):
    x = torch.as_tensor(flips, dtype=torch.float64)
    return float(torch.log(torch.prod(torch.where(x == 1, theta, 1 - theta))))''',
                                     8: GAUSSIAN.replace(".mean())", ".sum() / (len(xs) - 1))")})


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Graded:
    tmp = tmp_path_factory.mktemp("hostile")
    sentinel = tmp / "sentinel.txt"
    sentinel.write_text("original")
    sentinel.chmod(0o644)
    escape = f"/tmp/course-grade-escape-{uuid.uuid4().hex}.txt"
    protected = [tmp / "submissions" / "good.ipynb", tmp / "out" / "good.json", tmp / "out" / "grades.csv",
                 sentinel, "../escape.txt"]
    writes = with_cells(WRITES.format(protected=", ".join(repr(str(t)) for t in protected), escape=escape,
                                      n=len(protected)))
    run = Graded(tmp, {
        "good": notebook(GOOD), "empty": b"", "truncated": TRUNCATED, "invalid_json": b"{not json at all",
        "nbformat3": V3, "bare_metadata": BARE, "to_markdown": TO_MARKDOWN, "reordered": REORDERED,
        "duplicated": DUPLICATED, "infinite_loop": INFINITE_LOOP, "swallows_interrupt": SWALLOWS_INTERRUPT,
        "input": INPUT, "exits": EXITS, "os_exit": OS_EXIT, "segfault": SEGFAULT, "memory_bomb": MEMORY_BOMB,
        "fork_bomb": FORK_BOMB, "background": BACKGROUND, "flood": FLOOD, "fake_pass": FAKE_PASS,
        "shadow_builtins": SHADOW_BUILTINS, "monkeypatch": MONKEYPATCH,
        "reads_reference": READS_REFERENCE, "blocked_imports": BLOCKED_IMPORTS,
        "equals_anything": EQUALS_ANYTHING, "nan_inf": NAN_INF,
        "wrong_types": WRONG_TYPES, "slow_but_correct": SLOW_BUT_CORRECT, "too_slow": TOO_SLOW,
        "known_wrong": LOG_OF_PRODUCT, "mutated_global": MUTATED_GLOBAL,
        # without root the child runs as the grader's own user and could write these (README, "Grading")
        **({"writes_outside": writes, "network": NETWORK} if AS_ROOT else {}),
    }, ["--jobs", "2", "--timeout", str(TIMEOUT)])
    run.sentinel, run.escape = sentinel, escape
    return run


def test_batch_exit_status_and_csv(batch):
    assert batch.proc.returncode == 0, batch.proc.stderr
    header = (batch.out / "grades.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("submission,score,max_score,status,flags,")  # then one column per item
    assert sorted(batch.rows) == sorted(p.stem for p in batch.paths)
    assert_handled(batch, "good", FULL)


@pytest.mark.parametrize("name", ["empty", "truncated", "invalid_json"])
def test_unreadable_files_score_zero_with_a_reason(batch, name):
    result = assert_handled(batch, name, 0, status="unreadable notebook")
    assert "could not be read" in result["output"]


def test_nbformat3_notebook_is_graded(batch):
    assert_handled(batch, "nbformat3", FULL)


def test_missing_metadata_kernelspec_and_ids(batch):
    assert_handled(batch, "bare_metadata", FULL)


def test_cell_turned_to_markdown_costs_its_item(batch):
    assert_handled(batch, "to_markdown", FULL - 2)
    assert lost(batch, "to_markdown") == {"log_likelihood"}
    assert "not defined" in batch.feedback("to_markdown", "log_likelihood")


def test_reordered_cells_are_graded_on_the_final_state(batch):
    assert_handled(batch, "reordered", FULL)


def test_duplicated_cells_the_last_definition_counts(batch):
    assert_handled(batch, "duplicated", FULL - 2)
    assert lost(batch, "duplicated") == {"bernoulli_mle"}


def test_items_are_evaluated_again_on_the_final_state(batch):
    # fit_by_gradient_ascent first runs with 0 steps (wrong); a later cell changes the global
    # it reads in place, and the final evaluation sees that
    assert_handled(batch, "mutated_global", FULL)


def test_infinite_loop_costs_only_its_cell(batch):
    result = assert_handled(batch, "infinite_loop", FULL)
    assert "cell 6: stopped after" in result["output"]


def test_loop_swallowing_interrupts_is_stopped_by_the_wall_clock(batch):
    result = assert_handled(batch, "swallows_interrupt", FULL, status="timeout")
    assert result["execution_time"] < TIMEOUT + 5


def test_input_reads_end_of_file(batch):
    result = assert_handled(batch, "input", FULL)
    assert "EOFError" in result["output"]


def test_sys_exit_in_a_cell_and_in_a_function(batch):
    assert_handled(batch, "exits", FULL - 1)
    assert lost(batch, "exits") == {"best_theta"}
    assert "SystemExit" in batch.feedback("exits", "best_theta")


def test_os_exit_keeps_the_items_evaluated_before(batch):
    result = assert_handled(batch, "os_exit", 4, status="exited early (code 0)")
    assert lost(batch, "os_exit") == set(POINTS) - {"log_likelihood", "bernoulli_mle"}
    assert "no result" in batch.feedback("os_exit", "best_theta")
    assert "ended its own process" in result["output"]


def test_segfault_keeps_the_items_evaluated_before(batch):
    assert_handled(batch, "segfault", 4, status="crashed (SIGSEGV)")


def test_memory_bomb_raises_memory_error(batch):
    result = assert_handled(batch, "memory_bomb", FULL)
    assert "MemoryError" in result["output"]


def test_fork_bomb_is_contained(batch):
    assert_handled(batch, "fork_bomb", FULL, status=batch.rows["fork_bomb"]["status"])
    assert batch.rows["fork_bomb"]["status"] in ("ok", "timeout")


def test_background_and_daemon_processes_are_killed(batch):
    assert_handled(batch, "background", FULL)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith(b"sleep\x001234.5")]


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_50_mb_of_output_is_captured_and_capped(batch):
    assert_handled(batch, "flood", FULL)
    assert (batch.out / "flood.json").stat().st_size < 100_000


def test_fake_pass_text_and_fake_results_earn_nothing(batch):
    result = assert_handled(batch, "fake_pass", FULL - 2)
    assert lost(batch, "fake_pass") == {"log_likelihood"}
    assert "All tests passed" not in json.dumps(result["tests"])


def test_shadowed_builtins_do_not_affect_comparison(batch):
    assert_handled(batch, "shadow_builtins", FULL - 2)
    assert lost(batch, "shadow_builtins") == {"bernoulli_mle"}


def test_monkeypatched_comparisons_do_not_affect_grading(batch):
    assert_handled(batch, "monkeypatch", FULL - 2)
    assert lost(batch, "monkeypatch") == {"gaussian_mle"}


@pytest.mark.skipif(not AS_ROOT, reason="file protection needs root to drop the child to a private uid")
def test_files_outside_the_scratch_directory_are_protected(batch):
    assert_handled(batch, "writes_outside", FULL)  # ANSWER_SPREAD_RATIO says every protected write failed
    assert batch.sentinel.read_text() == "original"
    assert json.loads((batch.out / "good.json").read_text())["score"] == FULL
    assert (batch.out / "grades.csv").read_text().startswith("submission,")
    assert not Path(batch.escape).exists()


@pytest.mark.skipif(not AS_ROOT, reason="the network is cut off only when running as root")
def test_no_network_in_the_sandbox(batch):
    assert_handled(batch, "network", FULL)  # ANSWER_SPREAD_RATIO says no connection could be made


def test_reference_and_expected_values_are_out_of_reach(batch):
    assert_handled(batch, "reads_reference", FULL - 2)
    assert lost(batch, "reads_reference") == {"log_likelihood"}


def test_grader_and_assignments_cannot_be_imported_and_check_does_nothing(batch):
    assert_handled(batch, "blocked_imports", FULL)  # ANSWER_SPREAD_RATIO says all nine imports were refused


def test_objects_that_equal_anything_earn_nothing(batch):
    assert_handled(batch, "equals_anything", FULL - 5)
    assert lost(batch, "equals_anything") == {"log_likelihood", "bernoulli_mle", "ANSWER_LOWER_LOSS"}


def test_nan_and_inf_earn_nothing(batch):
    assert_handled(batch, "nan_inf", FULL - 6)
    assert lost(batch, "nan_inf") == {"log_likelihood", "bernoulli_mle", "gaussian_mle"}
    assert "NaN" in batch.feedback("nan_inf", "log_likelihood")


def test_wrong_dtype_shape_or_device_earn_nothing(batch):
    assert_handled(batch, "wrong_types", FULL - 8)
    assert lost(batch, "wrong_types") == {"bernoulli_mle", "best_theta", "kl_divergence", "gaussian_mle",
                                          "ANSWER_SPREAD_RATIO"}
    assert "shape" in batch.feedback("wrong_types", "bernoulli_mle")


def test_slow_but_correct_within_the_limit_scores(batch):
    assert_handled(batch, "slow_but_correct", FULL)


def test_too_slow_loses_only_that_item(batch):
    assert_handled(batch, "too_slow", FULL - 1)
    assert lost(batch, "too_slow") == {"best_theta"}
    assert "too long" in batch.feedback("too_slow", "best_theta")


def test_known_wrong_answers_lose_their_points(batch):
    assert_handled(batch, "known_wrong", FULL - 4)
    assert lost(batch, "known_wrong") == {"log_likelihood", "gaussian_mle"}
    feedback = batch.feedback("known_wrong", "log_likelihood")
    # the lesson's central pitfall fails publicly, on the 2000-flip case, with the hint that names it
    assert feedback.startswith("❌ case 4, log_likelihood(0.5, tensor of shape (2000,)): expected -1386, got -inf.")
    assert "underflows" in feedback


# ---------------------------------------------------------------- the course's own notebooks

def _chapters_with_notebooks() -> list[str]:
    return [k for k in assignments.keys()
            if (ROOT / "solutions" / f"{k}.ipynb").exists() and (ROOT / "exercises" / f"{k}.ipynb").exists()]


@pytest.fixture(scope="module")
def pool():
    """One warm fork server shared by the chapters (the command line starts one per run)."""
    with Pool(1) as p:
        yield p


@pytest.mark.parametrize("key", _chapters_with_notebooks())
def test_solution_scores_full_marks_and_exercise_zero(tmp_path, key, pool, capsys):
    files = []
    for kind in ("solutions", "exercises"):
        path = tmp_path / f"{kind}.ipynb"
        path.write_bytes((ROOT / kind / f"{key}.ipynb").read_bytes())
        files.append(path)
    before = [sha(p) for p in files]
    assignment = assignments.load(key)
    timeout = float(assignment.notes.get("grading_timeout_s", DEFAULT_TIMEOUT_S))
    assert grade(assignment, files, tmp_path / "out", jobs=1, timeout=timeout, pool=pool) == 0
    solution, exercise = (json.loads((tmp_path / "out" / f"{k}.json").read_text()) for k in ("solutions", "exercises"))
    assert solution["score"] == solution["max_score"] == assignment.max_score, solution["output"]
    assert exercise["score"] == 0 and exercise["max_score"] == assignment.max_score
    assert solution["extra_data"]["status"] == exercise["extra_data"]["status"] == "ok"
    assert all("not implemented yet" in t["output"] or "not defined" in t["output"] for t in exercise["tests"])
    assert [sha(p) for p in files] == before
    assert pool.workers[0].uid is None or not _processes_of_uid(pool.workers[0].uid)


UNSTABLE_SOFTMAX = """import torch
def stable_cross_entropy(logits, targets):
    e = torch.exp(logits)
    p = e / e.sum(dim=1, keepdim=True)
    return float(-torch.log(p[torch.arange(len(targets)), targets]).mean())"""
STABLE_SOFTMAX = """import torch
def stable_cross_entropy(logits, targets):
    m = logits.max(dim=1, keepdim=True).values
    lse = m.squeeze(1) + torch.log(torch.exp(logits - m).sum(dim=1))
    return float((lse - logits[torch.arange(len(targets)), targets]).mean())"""


@pytest.mark.skipif("04_cross_entropy" not in assignments.keys(), reason="chapter 04 is not defined")
def test_unstable_softmax_loses_its_points_on_large_logits(tmp_path, pool, capsys):
    files = []
    for name, source in (("unstable", UNSTABLE_SOFTMAX), ("stable", STABLE_SOFTMAX)):
        files.append(tmp_path / f"{name}.ipynb")
        files[-1].write_text(json.dumps(notebook([source])))
    assert grade(assignments.load("04"), files, tmp_path / "out", jobs=1, timeout=30, pool=pool) == 0
    results = {k: json.loads((tmp_path / "out" / f"{k}.json").read_text()) for k in ("unstable", "stable")}
    item = {k: next(t for t in r["tests"] if t["name"] == "stable_cross_entropy") for k, r in results.items()}
    assert item["stable"]["score"] == 2 and item["unstable"]["score"] == 0
    # a public case has large logits, so the unstable formula fails where the learner's check() shows it
    assert item["unstable"]["output"].startswith("❌ case ") and "hidden" not in item["unstable"]["output"]


def _processes_of_uid(uid: int) -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit() and _owner(p) == uid]


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


# ---------------------------------------------------------------- command line

def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils.assessment.grading", *args], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)


@pytest.mark.parametrize("case", ["unknown assignment", "missing file", "unwritable out", "empty directory",
                                  "no submission"])
def test_usage_errors_exit_2_with_one_line(tmp_path, case):
    good = tmp_path / "good.ipynb"
    good.write_text(json.dumps(notebook(GOOD)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    args = {"unknown assignment": ["99", str(good), "--out", str(tmp_path / "o")],
            "missing file": ["01", str(tmp_path / "nope.ipynb"), "--out", str(tmp_path / "o")],
            "unwritable out": ["01", str(good), "--out", str(tmp_path / "a_file" / "sub")],
            "empty directory": ["01", str(tmp_path / "empty"), "--out", str(tmp_path / "o")],
            "no submission": ["01", "--out", str(tmp_path / "o")]}[case]
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("course-grade: error:"), proc.stderr
    assert not (tmp_path / "o" / "grades.csv").exists()


@pytest.mark.skipif(not AS_ROOT, reason="the warning concerns the sandbox uid, used only as root")
def test_warns_when_other_users_can_read_the_submissions(tmp_path, batch):
    import tempfile

    shared = Path(tempfile.mkdtemp())
    try:
        shared.chmod(0o755)
        (shared / "a.ipynb").write_text("")
        (shared / "a.ipynb").chmod(0o644)
        proc = _cli("01", str(shared), "--out", str(tmp_path / "o"))
        assert proc.returncode == 0 and "can be read by any user" in proc.stderr
        assert "can be read by any user" not in batch.proc.stderr  # pytest's private temporary folder
    finally:
        shutil.rmtree(shared)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "course-grade"
    assert script.exists()
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--export-gradescope" in proc.stdout


def test_gradescope_export_runs_the_same_grader(tmp_path):
    proc = _cli("--export-gradescope", "01", "--out", str(tmp_path / "zip"))
    assert proc.returncode == 0, proc.stderr
    archive = tmp_path / "zip" / "gradescope_01_mle_coin_flips.zip"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert {"setup.sh", "run_autograder", "course/pyproject.toml",
                "course/course_utils/assessment/grading/child.py", "course/course_utils/assessment/items.py"} <= names
        for script in ("setup.sh", "run_autograder"):
            assert (zf.getinfo(script).external_attr >> 16) & stat.S_IXUSR
        zf.extract("run_autograder", tmp_path)
    ag = tmp_path / "autograder"
    (ag / "submission").mkdir(parents=True)
    (ag / "submission" / "my_work.ipynb").write_text(json.dumps(with_cells(replace={3: "bernoulli_mle = 0"})))
    env = dict(os.environ, AUTOGRADER_ROOT=str(ag), COURSE_GRADE_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    run = subprocess.run(["bash", str(tmp_path / "run_autograder")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((ag / "results" / "results.json").read_text())
    assert results["score"] == FULL - 2 and results["max_score"] == FULL
    assert "should be a function" in next(t["output"] for t in results["tests"] if t["name"] == "bernoulli_mle")


# ---------------------------------------------------------------- units: reading and judging

def test_reader_accepts_list_sources_v3_and_drops_non_code():
    assert code_cells_from_bytes(json.dumps(BARE).encode()) == GOOD
    assert code_cells_from_bytes(json.dumps(V3).encode()) == GOOD
    assert code_cells_from_bytes(json.dumps(TO_MARKDOWN).encode()) == [GOOD[0]] + GOOD[2:]
    assert code_cells_from_bytes(b"\xef\xbb\xbf" + json.dumps(BARE).encode()) == GOOD


@pytest.mark.parametrize("raw, reason", [(b"", "empty"), (b"   \n", "empty"), (TRUNCATED, "invalid JSON"),
                                         (b"[1, 2]", "not a notebook"), (b'{"cells": 3}', "no cells"),
                                         (b"\xff\xfe\x00", "not UTF-8"), (b"[" * 100_000, "invalid JSON")])
def test_reader_names_the_problem(raw, reason):
    with pytest.raises(UnreadableNotebook, match=reason):
        code_cells_from_bytes(raw)


def test_magics_and_shell_lines_are_skipped():
    assert python_source("%matplotlib inline\nx = 1\n!pip install foo\nif x:\n    %time y = 2") == \
        "pass\nx = 1\npass\nif x:\n    pass"
    assert python_source("%%bash\nrm -rf /") is None
    assert python_source("%%time\nx = 1") == "x = 1"
    assert python_source("a = (1\n     != 2)") == "a = (1\n     != 2)"


def _report(values: list) -> protocol.ItemReport:
    """The child's report on log_likelihood with these returned values, as the parent parses it."""
    outcomes = [{"value": v, "error": None} for v in values]
    line = protocol.encode_line(protocol.item_message("log_likelihood", True, protocol.OK, outcomes))
    return protocol.decode_line(line)


def test_hidden_case_feedback_never_shows_the_expected_value():
    plan = Plan(assignments.load("01"))
    cases = plan.cases["log_likelihood"]
    values = [c.expected for c in cases]
    first_hidden = next(i for i, c in enumerate(cases) if c.hidden)
    expected = values[first_hidden]
    wrong = values[:first_hidden] + [expected + 1.0] + values[first_hidden + 1:]
    item = plan.score({"log_likelihood": _report(wrong)})[0]
    assert item.score == 0 and item.output.startswith("❌ hidden case 1 failed: wrong result (got ")
    assert f"{expected:.4g}" not in item.output and "expected" not in item.output.split("Hint")[0]
    assert plan.score({"log_likelihood": _report(values)})[0].score == 2


def test_public_case_feedback_of_the_grader_is_the_line_check_prints(batch):
    # the same wrong function in the sandbox and in check(): the same sentence, less the item's name
    class LyingFloat(float):
        def __eq__(self, other):
            return True

    for submission, name, wrong in (("shadow_builtins", "bernoulli_mle", lambda flips: 0.123),
                                    ("wrong_types", "bernoulli_mle", lambda flips: torch.tensor([0.75, 0.75])),
                                    ("equals_anything", "bernoulli_mle", lambda flips: LyingFloat(0.1)),
                                    ("nan_inf", "bernoulli_mle", lambda flips: float("inf"))):
        line = evaluate(name, wrong).message
        assert line.startswith(f"❌ {name}: case 1, {name}(")
        assert batch.feedback(submission, name) == line.replace(f"{name}: ", "", 1)


def test_world_readable_checks_every_parent():
    import tempfile

    base = Path(tempfile.mkdtemp())
    try:
        inner = base / "pkg"
        inner.mkdir()
        inner.chmod(0o755)
        base.chmod(0o700)
        assert not parent._world_readable(inner)
        base.chmod(0o711)
        assert parent._world_readable(inner)
        inner.chmod(0o700)
        assert not parent._world_readable(inner)
    finally:
        base.chmod(0o700)
        inner.rmdir()
        base.rmdir()


def test_result_stream_from_the_child_is_parsed_defensively():
    run, buffer = parent.RunResult(), bytearray()
    good = json.dumps({"item": "bernoulli_mle", "final": False, "state": "ok", "outcomes": []}).encode()
    final = protocol.encode_line(protocol.item_message("best_theta", True, protocol.MISSING))
    late = protocol.encode_line(protocol.item_message("best_theta", False, protocol.NOT_CALLABLE, type_name="int"))
    stream = b"\n".join([b"not json", b"[" * 100_000, b"[1, 2]", b'{"cell": "x", "error": 3}', good,
                         final.strip(), late.strip(), b'{"cell": 4, "error": "ZeroDivisionError"}',
                         b'{"done": true}']) + b"\n"
    for i in range(0, len(stream), 4096):  # arrives in pieces
        parent._take_lines(run, buffer, stream[i:i + 4096])
    assert run.items == {"bernoulli_mle": protocol.ItemReport("bernoulli_mle", False, protocol.OK),
                         "best_theta": protocol.ItemReport("best_theta", True, protocol.MISSING)}
    assert run.cell_errors == [(4, "ZeroDivisionError")] and run.done
    assert run.protocol_errors == 4
    for _ in range(parent.MAX_LINE_BYTES // 2**20 + 2):  # a line without end is dropped, bounded
        parent._take_lines(run, buffer, b"x" * 2**20)
    assert len(buffer) <= parent.MAX_LINE_BYTES and run.protocol_errors == 5


# ---------------------------------------------------------------- units: process helpers

def _sleeper(**kw) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, **kw)


def test_process_helpers_read_proc():
    proc = _sleeper()
    try:
        assert proc.pid in processes.children_of(os.getpid())
        assert os.getpid() in processes.pids_of_uid(os.getuid())
        assert processes.threads_of(os.getpid()) >= 1
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in processes.children_of(os.getpid())


def test_kill_group_kills_the_whole_group():
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True)
    time.sleep(0.2)
    members = processes.children_of(leader.pid)
    assert members
    processes.kill_group(leader.pid)
    assert leader.wait(timeout=5) < 0
    deadline = time.monotonic() + 5
    while any(_owner(str(p)) is not None and b"sleep" in _cmdline(str(p)) for p in members):
        assert time.monotonic() < deadline, "a member of the group survived"
        time.sleep(0.05)
    processes.kill_group(leader.pid)  # already gone: nothing happens


@pytest.mark.skipif(not AS_ROOT, reason="killing another uid's processes needs root")
def test_kill_uid_kills_every_process_of_that_uid():
    uid = next(u for u in range(62500, 62510) if not processes.pids_of_uid(u))  # outside the graders' range
    procs = [_sleeper(user=uid, group=uid, extra_groups=[], start_new_session=True) for _ in range(3)]
    assert len(processes.pids_of_uid(uid)) == 3
    processes.kill_uid(uid)
    assert all(p.wait(timeout=5) < 0 for p in procs)
    assert processes.pids_of_uid(uid) == []
