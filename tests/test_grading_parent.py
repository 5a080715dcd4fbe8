"""The grader's trusted side against hostile submissions: what it reads, what it writes, what it cleans up.

Hostile notebooks are built here, never stored. Two real batches run through the command line
(`--jobs 1`, so one submission that broke the grader would leave the rest ungraded); the rest are
units of the parent's readers, writers and clean-up.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from test_grading import BERNOULLI_MLE, BEST_THETA, FIT, GAUSSIAN, KL, LOG_LIKELIHOOD, notebook

from course_utils.assessment import assignments
from course_utils.assessment.grading import cli, parent, protocol, results
from course_utils.assessment.grading.cli import grade
from course_utils.assessment.grading.notebook import (
    MAX_BYTES,
    UnreadableNotebook,
    notebook_from_bytes,
    read_notebook,
)

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0
FULL = 13  # chapter 01's maximum score
TIMEOUT = 20

# ---------------------------------------------------------------- a correct chapter 01 submission

IMPORTS = "import math, os, sys, time\nimport numpy as np\nimport torch"
GOOD = [IMPORTS, LOG_LIKELIHOOD, BERNOULLI_MLE, FIT, BEST_THETA, 'ANSWER_LOWER_LOSS = "B"', KL, GAUSSIAN,
        "ANSWER_SPREAD_RATIO = 0.5"]
WRONG_MLE = "def bernoulli_mle(flips):\n    return 0.5"


def replaced(index: int, source: str, *extra: str) -> dict:
    cells = list(GOOD)
    cells[index] = source
    return notebook(cells + list(extra))


def write(path: Path | bytes, nb: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as f:
        f.write(json.dumps(nb).encode())


# ---------------------------------------------------------------- the command line, as a class would use it

class Batch:
    """One `course-grade` run (through a wrapper that reports the grader's own peak memory)."""

    # VmHWM is this process's own peak (ru_maxrss would carry the peak of the pytest process across exec)
    WRAPPER = ("import re, sys\n"
               "from course_utils.assessment.grading.cli import main\n"
               "code = main(sys.argv[2:])\n"
               "with open('/proc/self/status') as status:\n"
               "    peak = re.search(r'VmHWM:\\s*(\\d+) kB', status.read()).group(1)\n"
               "with open(sys.argv[1], 'w') as f:\n"
               "    f.write(peak)\n"
               "sys.exit(code)\n")

    def __init__(self, tmp: Path, submissions: Path, args: list[str]):
        self.out = tmp / "out"
        rss = tmp / "peak_rss_kb"
        self.proc = subprocess.run(
            [sys.executable, "-c", self.WRAPPER, str(rss), "01", str(submissions), "--out", str(self.out),
             "--timeout", str(TIMEOUT), *args],
            capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
        self.stdout = self.proc.stdout.decode("utf-8")
        self.stderr = self.proc.stderr.decode("utf-8", "replace")
        self.peak_rss_kb = int(rss.read_text()) if rss.exists() else None
        self.csv_text = (self.out / "grades.csv").read_text(encoding="utf-8")
        self.rows = {r["submission"]: r for r in csv.DictReader(io.StringIO(self.csv_text, newline=""))}

    def result(self, stem: str | bytes) -> dict:
        with open(os.path.join(os.fsencode(self.out), os.fsencode(stem) + b".json"), encoding="utf-8") as f:
            return json.load(f)

    def scores(self, stem: str | bytes) -> dict[str, float]:
        return {t["name"]: t["score"] for t in self.result(stem)["tests"]}


pytestmark = pytest.mark.usefixtures("readable_environment")  # tests/conftest.py


# ---------------------------------------------------------------- batch 1: names, text, trees, cells

TAG = uuid.uuid4().hex
DEEP = f'''def _deep(top, n=3000):
    fd = os.open(top, os.O_RDONLY)
    for _ in range(n):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)

os.mkdir("deep-{TAG}")  # in the scratch directory
_deep("deep-{TAG}")
try:  # and in the shared /tmp, where only root can clean up after this uid
    os.mkdir("/tmp/deep-{TAG}")
    _deep("/tmp/deep-{TAG}")
except OSError:
    pass'''
SURROGATE = replaced(2, "def bernoulli_mle(flips):\n    raise ValueError('bad ' + chr(0xD800))",
                     "raise ValueError(chr(0xDFFF) + ' in a cell')")
# markdown between code cells: the learner sees the failing cells as cells 4 and 6
NUMBERED = notebook(["# Coin flips", IMPORTS, "Some prose.", "1 / 0", "More prose.", "def (:", *GOOD[1:]],
                    ["markdown", "code", "markdown", "code", "markdown", "code"] + ["code"] * (len(GOOD) - 1))
NON_UTF8 = b"caf\xe9"
NEWLINE = "evil\nbob: 13\u221513 ok\n"  # a file name holds no "/": the division slash looks the same
FORMULAS = ["=HYPERLINK(1)", "@SUM(A1)", "+1", "-1"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    tmp = tmp_path_factory.mktemp("parent")
    subs = tmp / "submissions"
    subs.mkdir()
    outside = tmp / "solution_elsewhere.ipynb"
    write(outside, notebook(GOOD))
    (subs / "mallory.ipynb").symlink_to(outside)
    for name, nb in {"good": notebook(GOOD), "surrogate": SURROGATE, "deep": notebook([DEEP, *GOOD]),
                     "numbered": NUMBERED, "alice": notebook(GOOD), "Alice": replaced(2, WRONG_MLE),
                     NEWLINE: notebook(GOOD), **{f: notebook(GOOD) for f in FORMULAS}}.items():
        write(subs / f"{name}.ipynb", nb)
    write(os.path.join(bytes(subs), NON_UTF8 + b".ipynb"), notebook(GOOD))
    return Batch(tmp, subs, ["--jobs", "1"])


def test_every_submission_is_graded_and_listed_once(batch):
    assert batch.proc.returncode == 0, batch.stderr
    assert len(batch.rows) == 13
    assert len(batch.csv_text.splitlines()) == 14  # a name with newlines does not split a row
    assert batch.result("good")["score"] == FULL


def test_lone_surrogates_in_errors_are_written_escaped(batch):  # failure 1
    result = batch.result("surrogate")
    assert result["score"] == FULL - 2 and batch.rows["surrogate"]["status"] == "ok"
    assert "ValueError: bad \\ud800" in next(t["output"] for t in result["tests"] if t["name"] == "bernoulli_mle")
    assert "ValueError: \\udfff in a cell" in result["output"]
    assert "surrogate: 11/13 ok" in batch.stdout.splitlines()


def test_a_file_name_that_is_not_utf8_is_graded_under_its_own_name(batch):  # failure 1
    assert batch.result(NON_UTF8)["score"] == FULL
    assert batch.rows["caf\\xe9"]["score"] == str(FULL)
    assert "caf\\xe9: 13/13 ok" in batch.stdout.splitlines()


def test_deep_directory_trees_are_removed(batch):  # failure 2
    assert batch.result("deep")["score"] == FULL and batch.rows["deep"]["status"] == "ok"
    if AS_ROOT:  # the sandbox uid's files in /tmp are the grader's to remove
        assert not os.path.lexists(f"/tmp/deep-{TAG}")
    else:  # the child runs as this user: its /tmp files are this user's (README, "Grading")
        parent.remove_tree(f"/tmp/deep-{TAG}")
    assert not list(Path(tempfile.gettempdir()).glob(f"course-grade-*/scratch-*/deep-{TAG}"))


def test_a_symlinked_submission_is_refused_not_followed(batch):  # failure 7
    result = batch.result("mallory")
    assert result["score"] == 0 and batch.rows["mallory"]["status"] == "unreadable notebook"
    assert "symbolic link" in result["output"]


def test_names_differing_in_case_keep_their_own_results(batch):  # failure 7
    assert batch.result("alice")["score"] == FULL and batch.rows["alice"]["score"] == str(FULL)
    assert batch.result("Alice")["score"] == FULL - 2 and batch.rows["Alice"]["score"] == str(FULL - 2)
    assert not (batch.out / "alice-2.json").exists() and "alice-2" not in batch.rows


def test_a_name_cannot_forge_a_line_or_a_formula(batch):  # failure 7
    assert not [line for line in batch.stdout.splitlines() if line.startswith("bob")]
    assert "evil\\nbob: 13\u221513 ok\\n: 13/13 ok" in batch.stdout.splitlines()
    assert batch.result(NEWLINE)["score"] == FULL
    lines = batch.csv_text.splitlines()
    columns = lines[0].count(",") + 1
    for line in lines[1:]:  # after the fixed header
        assert line.startswith('"') and line.endswith('"') and line.count('","') == columns - 1
    for name in FORMULAS:
        assert batch.rows[f"'{name}"]["score"] == str(FULL)
        assert f'"\'{name}"' in batch.csv_text


def test_cells_are_numbered_as_the_notebook_shows_them(batch):  # issue 14, item 4
    output = batch.result("numbered")["output"]
    assert batch.result("numbered")["score"] == FULL
    assert "cell 4: ZeroDivisionError" in output
    assert "cell 6: SyntaxError" in output and "<cell 6>" in output
    assert "cell 2:" not in output and "<cell 3>" not in output


# ---------------------------------------------------------------- batch 2: the result stream as an amplifier

def _flood_lines(name: str, nbytes: int, count: int) -> str:
    """A cell that writes `count` forged reports on `name`, each a line of about `nbytes` of outcomes."""
    return f'''one = b'{{"value":-1.0,"error":null}},'
line = b'{{"item":"{name}","final":true,"state":"ok","outcomes":[' + one * ({nbytes} // len(one)) + one[:-1] + b']}}\\n'
for _ in range({count}):
    view = memoryview(line)
    while view:
        view = view[os.write(3, view):]'''


FLOOD = notebook([IMPORTS, _flood_lines("log_likelihood", 32 * 2**20, 4), *GOOD[1:]])  # 128 MB
FORGED = notebook([IMPORTS, _flood_lines("kl_divergence", 900_000, 3), _flood_lines("gaussian_mle", 900_000, 3),
                   "for k in range(20_000):\n    os.write(3, b'{\"item\": \"x%d\", \"state\": \"missing\"}\\n' % k)",
                   *GOOD[1:6], "ANSWER_SPREAD_RATIO = 0.5"])


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Batch:
    tmp = tmp_path_factory.mktemp("flood")
    subs = tmp / "submissions"
    subs.mkdir()
    for name, nb in {"good": notebook(GOOD), "flood": FLOOD, "forged": FORGED}.items():
        write(subs / f"{name}.ipynb", nb)
    return Batch(tmp, subs, ["--jobs", "2"])


def test_a_result_flood_is_stopped_and_costs_the_grader_little_memory(flood):  # failure 4
    assert flood.proc.returncode == 0, flood.stderr
    assert flood.result("good")["score"] == FULL
    assert flood.rows["flood"]["status"] == "result limit"
    assert flood.result("flood")["score"] == 0
    # the command alone peaks near 240 MB; reading the flood as before took it past 800 MB
    assert flood.peak_rss_kb is not None and flood.peak_rss_kb < 400 * 1024, flood.peak_rss_kb


def test_forged_outcome_lists_earn_nothing(flood):  # failure 4
    scores = flood.scores("forged")
    assert scores["kl_divergence"] == 0 and scores["gaussian_mle"] == 0
    assert flood.result("forged")["score"] == FULL - 4 and flood.rows["forged"]["status"] == "ok"
    assert flood.result("forged")["extra_data"]["grader_cpu_s"] < 2.0


def test_lines_are_bounded_before_they_are_decoded(monkeypatch):  # failure 4
    decoded: list[int] = []
    real = protocol.decode_line
    monkeypatch.setattr(protocol, "decode_line", lambda line, expect=None: decoded.append(len(line)) or
                        real(line, expect))
    run, buffer = parent.RunResult(expect={"bernoulli_mle": 2, "ANSWER_SPREAD_RATIO": 1}), bytearray()
    one = b'{"value":0.5,"error":null},'
    huge = b'{"item":"bernoulli_mle","final":true,"state":"ok","outcomes":[' + one * 50_000 + one[:-1] + b"]}\n"
    big = b'{"item":"bernoulli_mle","final":true,"state":"ok","outcomes":[' + one * 30_000 + one[:-1] + b"]}\n"
    stream = huge + b'{"item":"unknown","final":true,"state":"missing"}\n' + big
    for i in range(0, len(stream), 1 << 16):
        parent._take_lines(run, buffer, stream[i:i + (1 << 16)])
        assert len(buffer) <= parent.MAX_LINE_BYTES
    assert len(huge) > parent.MAX_LINE_BYTES > len(big)
    assert max(decoded) == len(big) - 1 and len(decoded) == 2  # the huge line was never decoded
    assert run.items["bernoulli_mle"].outcomes == (protocol.Outcome(value=0.5),) * 2  # cut to the case count
    assert set(run.items) == {"bernoulli_mle"} and run.protocol_errors == 2


def test_past_the_stream_limit_nothing_more_is_read():  # failure 4
    run, buffer = parent.RunResult(expect={"bernoulli_mle": 2}), bytearray()
    line = b'{"item":"bernoulli_mle","final":false,"state":"missing"}\n'
    chunk = line * (2**16 // len(line))
    for _ in range(parent.MAX_RESULT_BYTES // len(chunk) + 2):
        parent._take_lines(run, buffer, chunk)
    assert run.overflow and run.result_bytes <= parent.MAX_RESULT_BYTES + len(chunk) and not buffer
    assert run.items["bernoulli_mle"].state == protocol.MISSING
    assert protocol.decode_line(line, {"other": 1}) is None  # an item the assignment does not have


def test_outcomes_beyond_the_case_count_are_dropped_before_they_are_checked():  # failure 4
    msg = protocol.item_message("f", True, protocol.OK, [{"value": [1] * 10, "error": None}] * 100_000)
    report = protocol.parse_result(msg, {"f": 3})
    assert len(report.outcomes) == 3 and report.outcomes[0] == protocol.Outcome(value=[1] * 10)
    assert protocol.outcome_counts(
        [protocol.ItemSpec("f", protocol.FUNCTION, ((1,), (2,))), protocol.ItemSpec("A", protocol.ANSWER)]) \
        == {"f": 2, "A": 1}


# ---------------------------------------------------------------- units: reporting never stops the batch

class _FakeWorker:
    """Stands in for a sandbox: a run with no reports, or the grader's own failure on a 'boom' notebook."""

    def run(self, cells, limits, spec, expect=None):
        if cells and cells[0] == "boom":
            raise RuntimeError("the fork server vanished")
        return parent.RunResult(done=True, exit=protocol.Exited())


class _FakePool:
    workers = [_FakeWorker()]

    def wait_ready(self) -> None:
        pass

    def spec(self, child_spec) -> Path:
        return Path("unused")


def test_a_grader_failure_costs_one_submission_only(tmp_path, monkeypatch, capsys):  # failure 1
    files = []
    for name, first in (("a", "x = 1"), ("boom", "boom"), ("c", "x = 2"), ("d", "x = 3")):
        files.append(tmp_path / f"{name}.ipynb")
        write(files[-1], notebook([first]))
    real, failed = results.write_result, []

    def write_result(path, graded):
        if path.stem == "c" and not failed:  # writing c's result fails once
            failed.append(path)
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        real(path, graded)

    monkeypatch.setattr(results, "write_result", write_result)
    code = grade(assignments.load("01"), files, tmp_path / "out", jobs=1, timeout=5, pool=_FakePool())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    status = {r["submission"]: r["status"] for r in rows}
    assert status["a"] == status["d"] == "ok"
    assert status["boom"] == "grader error: RuntimeError: the fork server vanished"
    assert status["c"].startswith("grader error: UnicodeEncodeError")
    assert json.loads((tmp_path / "out" / "c.json").read_text())["extra_data"]["status"] == status["c"]
    assert code == cli.EXIT_INCOMPLETE  # a batch with grader errors says so
    assert "the grader failed on 2 submission(s)" in capsys.readouterr().err


def test_result_names_are_exact_and_shown_escaped():  # failure 7
    files = [Path("x/Alice.ipynb"), Path("x/alice.ipynb"), Path("y/alice.ipynb"), Path("z/alice-2.ipynb")]
    assert cli._names(files) == ["Alice", "alice", "alice-3", "alice-2"]
    assert results.shown("a\nb\\c\x1b\u202e\udce9 ü") == "a\\nb\\\\c\\x1b\\u202e\\xe9 ü"
    assert results.shown("\ud800") == "\\ud800"


def test_grades_csv_quotes_every_field_and_writes_no_formula(tmp_path):  # failure 7
    names = ["=cmd|'/c calc'!A1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", 'quote"d', "two\nlines"]
    graded = [results.unreadable(n, "empty", [("f", 1.0)]) for n in names]
    results.write_csv(tmp_path / "grades.csv", graded)
    text = (tmp_path / "grades.csv").read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(names) + 1
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [r[0] for r in rows] == ["'=cmd|'/c calc'!A1", "'+1", "'-1", "'@SUM(A1)", "\\tx", "\\rx", "plain",
                                    'quote"d', "two\\nlines"]
    assert all(line.startswith('"') for line in text.splitlines()[1:])  # the header is fixed text


def test_results_with_lone_surrogates_still_encode(tmp_path):  # failure 1
    graded = results.unreadable("x\udcff", "bad \ud800", [("f\udfff", 1.0)])
    results.write_result(tmp_path / "x.json", graded)
    data = json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))
    assert "bad \\ud800" in data["output"] and data["tests"][0]["name"] == "f\\udfff"
    assert data["extra_data"]["submission"] == "x\\xff"
    assert protocol.parse_result({"cell": 1, "error": "E\ud800"}).error == "E\\ud800"


# ---------------------------------------------------------------- units: reading a submission

def test_a_symlink_is_refused_and_a_regular_file_checked_before_reading(tmp_path):  # failure 7
    real = tmp_path / "real.ipynb"
    write(real, notebook(GOOD))
    (tmp_path / "link.ipynb").symlink_to(real)
    with pytest.raises(UnreadableNotebook, match="symbolic link"):
        read_notebook(tmp_path / "link.ipynb")
    big = tmp_path / "big.ipynb"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: the size is refused before a byte is read
    with pytest.raises(UnreadableNotebook, match="larger than"):
        read_notebook(big)
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    outcome: list = []
    reader = threading.Thread(target=lambda: outcome.append(_reason(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    assert outcome == ["it is not a regular file"]  # never blocks waiting for a writer
    assert read_notebook(real).sources == GOOD


def _reason(path: Path) -> str:
    try:
        read_notebook(path)
    except UnreadableNotebook as exc:
        return str(exc)
    return "read"


def test_code_cells_know_their_place_in_the_notebook():  # issue 14, item 4
    cells = notebook_from_bytes(json.dumps(NUMBERED).encode())
    assert cells.sources[:3] == [IMPORTS, "1 / 0", "def (:"]
    assert cells.numbers[:3] == [2, 4, 6] and cells.number(2) == 4
    assert cells.number(0) is None and cells.number(len(cells.sources) + 1) is None
    v3 = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "heading", "source": "T"},
                                                   {"cell_type": "code", "input": "x = 1"}]}]}
    assert notebook_from_bytes(json.dumps(v3).encode()).numbers == [2]


def test_cell_errors_in_results_name_notebook_cells():  # issue 14, item 4
    cells = notebook_from_bytes(json.dumps(NUMBERED).encode())
    run = parent.RunResult(done=True, exit=protocol.Exited(),
                           cell_errors=[(2, "ZeroDivisionError: division by zero"),
                                        (3, "SyntaxError: invalid syntax (<cell 3>, line 1)"), (99, "forged")])
    output = results.graded("n", [], run, 5.0, cells).results["output"]
    assert "cell 4: ZeroDivisionError" in output and "cell 6: SyntaxError: invalid syntax (<cell 6>, line 1)" in output
    assert "forged" not in output


# ---------------------------------------------------------------- units: clean-up

def _deep_tree(top: Path, depth: int) -> None:
    """`depth` nested directories (deeper than PATH_MAX allows to name), some with a file and a link out."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for level in range(depth):
            os.mkdir("d", dir_fd=fd)
            if level % 300 == 0:
                os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
                os.symlink("/etc", "out", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def test_a_deep_tree_is_removed_without_recursion_or_following_links(tmp_path):  # failure 2
    top = tmp_path / "deep"
    top.mkdir()
    try:
        _deep_tree(top, 3000)
        (top / "d" / "wide").mkdir()
        for i in range(200):
            (top / "d" / "wide" / str(i)).mkdir()
        parent.remove_tree(top)
        assert not top.exists() and Path("/etc/passwd").exists()
    finally:  # pytest's own clean-up recurses: never leave it a deep tree
        subprocess.run(["rm", "-rf", str(top)], check=False)
    parent.remove_tree(top)  # already gone: nothing happens
    link = tmp_path / "link"
    link.symlink_to("/etc")
    parent.remove_tree(link)  # a link is removed, its target untouched
    assert not link.is_symlink() and Path("/etc/passwd").exists()


def test_a_failing_clean_up_is_never_raised(tmp_path, monkeypatch):  # failure 2
    top = tmp_path / "t"
    top.mkdir()
    (top / "x").mkdir()

    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(parent, "_empty_but_subdirs", broken)
    parent.remove_tree(top)  # returns
    assert top.exists()


# ---------------------------------------------------------------- the environment the sandbox needs

def test_an_unreadable_environment_is_named_with_its_fix():  # failure 9
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o711)
        closed = base / "closed"
        package = closed / "venv" / "site-packages"
        package.mkdir(parents=True, mode=0o755)
        (closed / "venv").chmod(0o755)
        closed.chmod(0o700)
        message = cli.unreadable_environment([str(package)])
        assert message is not None and f"cannot read {closed} " in message and f"chmod o+x {closed}" in message
        closed.chmod(0o711)
        assert cli.unreadable_environment([str(package)]) is None
        package.chmod(0o700)
        message = cli.unreadable_environment([str(package)])
        assert f"chmod -R o+rX {package}" in message and "\n" not in message
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(not AS_ROOT, reason="the sandbox user exists only when grading as root")
def test_grading_is_refused_when_the_sandbox_cannot_read_the_course(tmp_path):  # failure 9
    closed = Path(tempfile.mkdtemp())  # mode 0700: only root can enter
    try:
        shutil.copytree(ROOT / "course_utils", closed / "course_utils",
                        ignore=shutil.ignore_patterns("__pycache__"))
        write(tmp_path / "good.ipynb", notebook(GOOD))
        proc = subprocess.run([sys.executable, "-m", "course_utils.assessment.grading", "01",
                               str(tmp_path / "good.ipynb"), "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(closed), OMP_NUM_THREADS="1"))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("course-grade: error: the sandbox user cannot read") and str(closed) in lines[0]
        assert f"chmod o+x {closed}" in lines[0]
        assert not (tmp_path / "out" / "grades.csv").exists()
    finally:
        shutil.rmtree(closed)
