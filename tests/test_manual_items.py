"""Manually graded items: the grader records each answer (a text, or a figure kept as a checked PNG),
`collect-manual` gathers them per item, `merge-manual` brings the instructor's scores back into the results,
grades.csv, the feedback files and the class report.

The submissions are graded by the real grader (sandboxed runs) for small assignments defined here: the text
round trip through the command's entry point, the figure round trip through the command line itself (a
driver that runs `course-grade` with assignment 91 defined), each in fresh temporary folders.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from test_grading import notebook

from course_utils.assessment import assignments, items
from course_utils.assessment.grading import cli, feedback, parent, protocol, scoring
from course_utils.assessment.grading.manual import GRADED_BY_HAND, answer_text
from course_utils.assessment.grading.scoring import Plan
from course_utils.assessment.items import (
    FIGURE,
    PNG_SIGNATURE,
    Assignment,
    Case,
    FunctionItem,
    ManualItem,
    Outcome,
    read_png,
)
from course_utils.assessment.verdict import value_verdict

pytestmark = pytest.mark.usefixtures("readable_environment")


def _double(x: float) -> float:
    return 2 * x


EXPLAIN = ManualItem("EXPLAIN_SMOOTHING", points=3, prompt="Why does add-one smoothing help?", keyed=True)
DOUBLE = FunctionItem("double", points=1, reference=_double, public=(Case((1.5,)),), keyed=True)
MANUAL = Assignment("90_manual", "A manual item", (DOUBLE, EXPLAIN))
ALICE = "Unseen bigrams get a non-zero probability, so ```the``` test log-likelihood stays finite."


def _score(value) -> str:
    plan = Plan(MANUAL)
    report = protocol.ItemReport(EXPLAIN.name, True, protocol.OK, (Outcome(value=value),))
    return next(r for r in plan.score({EXPLAIN.name: report}) if r.name == EXPLAIN.name)


def test_a_text_is_recorded_for_the_instructor_worth_nothing_yet():
    result = _score(ALICE)
    assert (result.score, result.max_score) == (0.0, 3.0)
    assert result.output.startswith(f"📝 recorded ({len(ALICE)} characters); graded by hand.")
    assert answer_text(result.output) == ALICE
    assert value_verdict(EXPLAIN, ALICE, hidden=False).pending  # check(): 📝, not ❌


@pytest.mark.parametrize("value, why", [(42, "should be a text"), ("   ", "is empty")])
def test_not_a_text_or_an_empty_one_is_said_at_once(value, why):
    result = _score(value)
    assert result.output.startswith("❌") and why in result.output and answer_text(result.output) is None


@pytest.fixture
def graded_folder(tmp_path, monkeypatch) -> Path:
    """Three submissions of MANUAL graded into `out` by the real grader; MANUAL loads under its key."""
    sources = {"alice": f"def double(x):\n    return 2 * x\nEXPLAIN_SMOOTHING = {ALICE!r}",
               "bob": "def double(x):\n    return x\nEXPLAIN_SMOOTHING = 'It avoids zeros.'",
               "carol": "def double(x):\n    return 2 * x"}
    files = []
    for name, source in sources.items():
        path = tmp_path / "in" / f"{name}.ipynb"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(notebook([source])))
        files.append(path)
    out = tmp_path / "out"
    assert cli.grade(MANUAL, files, out, jobs=1, timeout=30) == 0
    real_load = assignments.load
    monkeypatch.setattr(assignments, "load", lambda key: MANUAL if key == MANUAL.key else real_load(key))
    return out


def test_collect_then_merge_round_trip(graded_folder, capsys):
    out = graded_folder
    assert cli.main(["collect-manual", str(out)]) == 0
    page = (out / "manual" / "EXPLAIN_SMOOTHING.md").read_text(encoding="utf-8")
    assert page.startswith("# EXPLAIN_SMOOTHING (3 points)\n\nWhy does add-one smoothing help?")
    assert f"## alice\n\n````text\n{ALICE}\n````" in page  # a fence longer than the answer's backticks
    assert "## bob\n\n```text\nIt avoids zeros.\n```" in page and "## carol\n\n(no answer recorded)" in page
    with open(out / "manual" / "scores.csv", newline="") as f:
        template = list(csv.DictReader(f))
    assert [(r["submission"], r["item"], r["score"]) for r in template] == [
        ("alice", "EXPLAIN_SMOOTHING", ""), ("bob", "EXPLAIN_SMOOTHING", ""), ("carol", "EXPLAIN_SMOOTHING", "")]

    scores = out / "manual" / "scores.csv"
    scores.write_text("submission,item,score,comment\nalice,EXPLAIN_SMOOTHING,3,Clear.\n"
                      "bob,EXPLAIN_SMOOTHING,1.5,Why zeros matter?\ncarol,EXPLAIN_SMOOTHING,,\n")
    assert cli.main(["merge-manual", str(out), str(scores)]) == 0
    alice, bob = (json.loads((out / f"{n}.json").read_text(encoding="utf-8")) for n in ("alice", "bob"))
    assert (alice["score"], alice["max_score"]) == (4, 4) and alice["output"].startswith("Score: 4 / 4.")
    test = next(t for t in bob["tests"] if t["name"] == "EXPLAIN_SMOOTHING")
    assert (bob["score"], test["score"], test["status"]) == (1.5, 1.5, "failed")
    assert test["output"].startswith(f"{GRADED_BY_HAND} 1.5 / 3. Why zeros matter?\n📝 recorded")
    with open(out / "grades.csv", newline="") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    assert (rows["alice"]["score"], rows["bob"]["score"], rows["carol"]["score"]) == ("4", "1.5", "1")
    assert rows["bob"]["EXPLAIN_SMOOTHING"] == "1.5"

    scores.write_text("submission,item,score\nbob,EXPLAIN_SMOOTHING,2\n")  # merging again replaces the score
    assert cli.main(["merge-manual", str(out), str(scores)]) == 0
    bob = json.loads((out / "bob.json").read_text(encoding="utf-8"))
    test = next(t for t in bob["tests"] if t["name"] == "EXPLAIN_SMOOTHING")
    assert bob["score"] == 2 and test["output"].count(GRADED_BY_HAND) == 1


# ---------------------------------------------------------------- figure answers, through the command line

ROOT = Path(__file__).resolve().parent.parent
FIGURES_KEY = "91_figures"
# `course-grade` as the instructor runs it, with one change: assignment 91 is this small one (no chapter has a
# figure item), defined where the command runs because the grader loads assignments by key.
ASSIGNMENT_SOURCE = f"""
from course_utils.assessment.items import FIGURE, Assignment, ManualItem

PLOT = ManualItem("PLOT_LOSS", points=2, prompt="Plot the training loss against the step.", keyed=True,
                  answer=FIGURE)
EXPLAIN = ManualItem("EXPLAIN_CURVE", points=3, prompt="What does the curve say?", keyed=True)
TEST = Assignment({FIGURES_KEY!r}, "A figure answer", (PLOT, EXPLAIN))
"""
DRIVER = ASSIGNMENT_SOURCE + """
import sys
from course_utils.assessment import assignments
from course_utils.assessment.grading import cli

real_load = assignments.load
assignments.load = lambda key: TEST if key in (TEST.key, "91") else real_load(key)
sys.exit(cli.main(sys.argv[1:]))
"""


def _figures_assignment() -> Assignment:
    namespace: dict = {}
    exec(ASSIGNMENT_SOURCE, namespace)
    return namespace["TEST"]


FIGURES = _figures_assignment()
ODD = "x<b> (2)"  # a file name with markup, a space and brackets: escaped in the pages, quoted in the links
FIGURE_CELL = ("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([3.0, 2.1, 1.7, 1.5])\n"
               "ax.set_xlabel('step')\nax.set_ylabel('loss')\n")
SUBMISSIONS = {
    # the figure is made smaller after it was assigned: what is recorded is the figure as the notebook left it
    "alice": [FIGURE_CELL + "PLOT_LOSS = fig\nEXPLAIN_CURVE = 'The loss falls fast, then levels off.'",
              "fig.set_size_inches(4, 3)"],
    "bob": ["PLOT_LOSS = 'a curve going down'\nEXPLAIN_CURVE = 'It goes down.'"],
    "carol": ["import matplotlib.pyplot as plt\nPLOT_LOSS = plt.figure(figsize=(80, 60))"],
    "dave": ["PLOT_LOSS = b'<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>'"],
    "erin": [FIGURE_CELL + "import io\nbuf = io.BytesIO()\nfig.savefig(buf, format='png')\n"
             "data = bytearray(buf.getvalue())\ndata[45] ^= 0xFF\nPLOT_LOSS = bytes(data)"],  # a damaged chunk
    "frank": [FIGURE_CELL + "PLOT_LOSS = ax"],  # the axes: their figure is recorded
    ODD: [FIGURE_CELL + "PLOT_LOSS = fig\nEXPLAIN_CURVE = 'Down.'"],
}
REFUSED = {"bob": "it is a str, not a matplotlib figure",
           "carol": "it is a figure of 8000 × 6000 pixels at 100 dpi, larger than 4000 pixels a side",
           "dave": "it is an SVG image; give the matplotlib figure itself",
           "erin": "is damaged (its checksum does not match)"}


def course_grade(driver: Path, *args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(driver), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)


def result(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def item_test(data: dict, item: str) -> dict:
    return next(t for t in data["tests"] if t["name"] == item)


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    """Six submissions graded by the real command with Markdown feedback, the class report, then collect-manual."""
    tmp = tmp_path_factory.mktemp("figures")
    driver = tmp / "course_grade.py"
    driver.write_text(DRIVER, encoding="utf-8")
    batch = tmp / "batch"
    batch.mkdir()
    for name, cells in SUBMISSIONS.items():
        (batch / f"{name}.ipynb").write_text(json.dumps(notebook(cells)), encoding="utf-8")
        (batch / f"{name}.ipynb").chmod(0o600)
    out = tmp / "out"
    graded = course_grade(driver, FIGURES_KEY, batch, "--out", out, "--feedback", "md", "--jobs", "2")
    feedback_before = (out / "alice.md").read_text(encoding="utf-8")
    report = course_grade(driver, "report", out)
    collected = course_grade(driver, "collect-manual", out)
    return {"tmp": tmp, "driver": driver, "out": out, "graded": graded, "report": report, "collected": collected,
            "feedback_before": feedback_before}


def test_a_figure_answer_is_recorded_as_the_notebook_left_it(figures):
    assert figures["graded"].returncode == 0, figures["graded"].stderr
    out = figures["out"]
    for name, (width, height) in {"alice": (400, 300), "frank": (640, 480), ODD: (640, 480)}.items():
        data = result(out, name)
        test = item_test(data, "PLOT_LOSS")
        assert (test["score"], test["max_score"]) == (0, 2)
        assert test["output"] == f"📝 recorded (a figure of {width} × {height} pixels); graded by hand."
        png = read_png(base64.b64decode(data["extra_data"]["figures"]["PLOT_LOSS"]))
        assert (png.width, png.height) == (width, height)
    assert "📝 recorded" in item_test(result(out, "alice"), "EXPLAIN_CURVE")["output"]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_is_not_a_usable_figure_is_refused_with_its_reason(figures, name):
    data = result(figures["out"], name)
    test = item_test(data, "PLOT_LOSS")
    assert data["extra_data"]["status"] == "ok"  # a refused answer is the item's problem, not the notebook's
    assert test["output"].startswith("❌ `PLOT_LOSS` cannot be recorded as a figure: ")
    assert REFUSED[name] in test["output"] and "Hint: assign the matplotlib figure itself" in test["output"]
    assert "figures" not in data["extra_data"]


def test_collect_writes_markdown_with_linked_figures_and_html_with_embedded_ones(figures):
    assert figures["collected"].returncode == 0, figures["collected"].stderr
    manual = figures["out"] / "manual"
    page = (manual / "PLOT_LOSS.md").read_text(encoding="utf-8")
    assert page.startswith("# PLOT_LOSS (2 points)\n\nPlot the training loss against the step.\n")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert links == ["PLOT_LOSS/alice.png", "PLOT_LOSS/frank.png", "PLOT_LOSS/x%3Cb%3E%20%282%29.png"]
    for link in links:  # each link resolves from the Markdown file's folder to the recorded image
        png = read_png((manual / unquote(link)).read_bytes())
        assert png.data == (manual / unquote(link)).read_bytes()  # only the chunks that draw it were kept
    assert read_png((manual / "PLOT_LOSS" / "alice.png").read_bytes()).width == 400
    assert sorted(p.name for p in (manual / "PLOT_LOSS").iterdir()) == ["alice.png", "frank.png", f"{ODD}.png"]
    assert "## x&lt;b&gt; (2)\n\n![figure of x&lt;b&gt; (2)](" in page and "<b>" not in page
    assert "## bob\n\n(no answer recorded)\n\n❌ `PLOT_LOSS` cannot be recorded as a figure: it is a str" in page
    assert "<script" not in page and "<svg" not in page

    html_page = (manual / "PLOT_LOSS.html").read_text(encoding="utf-8")
    embedded = re.findall(r'<img alt="figure of ([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html_page)
    assert [(n, base64.b64decode(d)) for n, d in embedded] == [
        (html.escape(n), (manual / "PLOT_LOSS" / f"{n}.png").read_bytes()) for n in ("alice", "frank", ODD)]
    assert "<b>" not in html_page
    assert "<script" not in html_page and "&lt;svg" not in html_page  # dave's bytes were never recorded
    text_page = (manual / "EXPLAIN_CURVE.md").read_text(encoding="utf-8")
    assert "## alice\n\n```text\nThe loss falls fast, then levels off.\n```" in text_page
    assert "<pre>The loss falls fast, then levels off.</pre>" in (manual / "EXPLAIN_CURVE.html").read_text("utf-8")
    with open(manual / "scores.csv", newline="") as f:
        template = [(r["submission"], r["item"], r["score"]) for r in csv.DictReader(f)]
    names = sorted(SUBMISSIONS)
    assert template == [(n, "PLOT_LOSS", "") for n in names] + [(n, "EXPLAIN_CURVE", "") for n in names]


@pytest.fixture
def class_copy(figures, tmp_path) -> Path:
    """A copy of the graded folder (with its feedback, report and collected answers) for one test to change."""
    out = tmp_path / "out"
    shutil.copytree(figures["out"], out)
    return out


def test_merge_rewrites_feedback_and_report(figures, class_copy):
    out, driver = class_copy, figures["driver"]
    before = figures["feedback_before"]
    assert "- 📝 **PLOT_LOSS** (0/2): recorded (a figure of 400 × 300 pixels); graded by hand." in before
    report_before = (out / "report.md").read_text(encoding="utf-8")
    scores = out / "manual" / "scores.csv"
    scores.write_text("submission,item,score,comment\nalice,PLOT_LOSS,2,Axes labelled.\n"
                      "alice,EXPLAIN_CURVE,1.5,\"Say why it\nlevels off.\"\nfrank,PLOT_LOSS,1,No labels?\n"
                      "bob,PLOT_LOSS,,\nx<b> (2),PLOT_LOSS,2,\nx<b> (2),EXPLAIN_CURVE,0.5,Why?\n",
                      encoding="utf-8")
    run = course_grade(driver, "merge-manual", out, scores, "--feedback", "html")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ("merged manual scores into 3 result(s); rewrote grades.csv, 14 feedback file(s) "
                                  "and the class report")
    alice = result(out, "alice")
    assert (alice["score"], alice["max_score"]) == (3.5, 5) and alice["output"].startswith("Score: 3.5 / 5.")
    assert item_test(alice, "EXPLAIN_CURVE")["output"].startswith(f"{GRADED_BY_HAND} 1.5 / 3. Say why it levels off.\n")
    assert "figures" in alice["extra_data"]  # the recorded figure stays with the result
    with open(out / "grades.csv", newline="") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    assert [(rows[n]["score"], rows[n]["PLOT_LOSS"]) for n in ("alice", "bob", "frank")] == [
        ("3.5", "2"), ("0", "0"), ("1", "1")]

    for name in SUBMISSIONS:  # Markdown feedback (written when graded) and HTML (asked for now) agree with the result
        data = result(out, name)
        assert (out / f"{name}.md").read_text(encoding="utf-8") == feedback.markdown(data)
        assert (out / f"{name}.html").read_text(encoding="utf-8") == feedback.page(data)
    md = (out / "alice.md").read_text(encoding="utf-8")
    assert "**Score: 3.5 / 5**" in md
    assert "- ✅ **PLOT_LOSS** (2/2): ✍ graded by your instructor: 2 / 2. Axes labelled." in md
    assert "- ❌ **EXPLAIN_CURVE** (1.5/3): ✍ graded by your instructor: 1.5 / 3. Say why it levels off." in md
    assert "graded by your instructor: 1 / 2. No labels?" in (out / "frank.html").read_text(encoding="utf-8")

    report_after = (out / "report.md").read_text(encoding="utf-8")
    assert "7 submissions; mean score 0 / 5, lowest 0, highest 0." in report_before
    assert "7 submissions; mean score 1 / 5, lowest 0, highest 3.5." in report_after
    assert "| PLOT_LOSS | 2 | 0.71 | 29% | " in report_after


def test_merge_leaves_files_it_did_not_write(figures, class_copy):
    out = class_copy
    (out / "alice.html").write_text("<p>the instructor's own notes</p>", encoding="utf-8")
    (out / "report.md").write_text("my own report\n", encoding="utf-8")
    scores = out / "scores.csv"
    scores.write_text("submission,item,score\nalice,PLOT_LOSS,2\n", encoding="utf-8")
    run = course_grade(figures["driver"], "merge-manual", out, scores)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "merged manual scores into 1 result(s); rewrote grades.csv, 7 feedback file(s)"
    assert (out / "alice.html").read_text(encoding="utf-8") == "<p>the instructor's own notes</p>"
    assert (out / "report.md").read_text(encoding="utf-8") == "my own report\n"
    assert "graded by your instructor: 2 / 2." in (out / "alice.md").read_text(encoding="utf-8")


def test_collect_again_keeps_the_scores_filled_in(figures, class_copy):
    out = class_copy
    scores = out / "manual" / "scores.csv"
    text = scores.read_text(encoding="utf-8").replace("frank,PLOT_LOSS,,", "frank,PLOT_LOSS,1,\"Labels, please\"")
    scores.write_text(text, encoding="utf-8")
    (out / "manual" / "PLOT_LOSS" / "gone.png").write_bytes(b"an image of a student no longer in the folder")
    run = course_grade(figures["driver"], "collect-manual", out)
    assert run.returncode == 0, run.stderr
    with open(scores, newline="") as f:
        kept = [(r["submission"], r["score"], r["comment"]) for r in csv.DictReader(f) if r["item"] == "PLOT_LOSS"]
    assert ("frank", "1", "Labels, please") in kept and ("alice", "", "") in kept
    assert sorted(p.name for p in (out / "manual" / "PLOT_LOSS").iterdir()) == ["alice.png", "frank.png", f"{ODD}.png"]


def test_a_bad_scores_file_is_refused_by_the_command_and_changes_nothing(figures, class_copy):
    out = class_copy
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    scores = out / "manual" / "bad.csv"
    scores.write_text("submission,item,score\nalice,PLOT_LOSS,2\nzoe,PLOT_LOSS,1\n", encoding="utf-8")
    run = course_grade(figures["driver"], "merge-manual", out, scores)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"course-grade: error: {scores}, line 3: no result for the submission 'zoe'")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.fixture
def in_process(class_copy, monkeypatch, capsys):
    """`course-grade` run in this process (the same entry point, much faster) on a copy of the figure folder."""
    real_load = assignments.load
    monkeypatch.setattr(assignments, "load", lambda key: FIGURES if key == FIGURES.key else real_load(key))

    def run(*args: str) -> tuple[int, str]:
        code = cli.main([a.format(out=class_copy) for a in args])
        return code, capsys.readouterr().err

    return run


@pytest.mark.parametrize("rows, why", [
    ("submission,item,score\nzoe,PLOT_LOSS,1\n", "line 2: no result for the submission 'zoe'"),
    ("submission,item,score\nalice,PLOT_SOMETHING,1\n", "line 2: 'PLOT_SOMETHING' is not a manually graded item of "
                                                        "91_figures (PLOT_LOSS, EXPLAIN_CURVE)"),
    ("submission,item,score\nalice,PLOT_LOSS,2.5\n", "line 2: the score 2.5 is outside 0 … 2"),
    ("submission,item,score\nalice,PLOT_LOSS,-1\n", "line 2: the score -1 is outside 0 … 2"),
    ("submission,item,score\nalice,PLOT_LOSS,lots\n", "line 2: the score 'lots' is not a number"),
    ("submission,item,score\nalice,PLOT_LOSS,nan\n", "line 2: the score 'nan' is not a number"),
    ("submission,item,score\nalice,PLOT_LOSS,1\nbob,PLOT_LOSS,0\nalice,PLOT_LOSS,2\n",
     "line 4: alice is scored on PLOT_LOSS again (first on line 2)"),
    ("student,points\nalice,2\n", "need the columns submission, item and score"),
])
def test_a_bad_scores_file_is_refused_and_changes_nothing(class_copy, in_process, rows, why):
    before = {p.name: p.read_bytes() for p in class_copy.iterdir() if p.is_file()}
    (class_copy / "manual" / "bad.csv").write_text(rows, encoding="utf-8")
    code, err = in_process("merge-manual", "{out}", "{out}/manual/bad.csv")
    assert code == 2 and why in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in class_copy.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("args, why", [
    (["merge-manual", "{out}", "{out}/manual/scores.csv", "--feedback", "pdf"], "--feedback is md or html"),
    (["merge-manual", "{out}"], "usage: course-grade collect-manual DIR"),
    (["merge-manual", "{out}", "{out}/no-such.csv"], "cannot read the scores"),
    (["merge-manual", "{out}", "{out}/latin1.csv"], "cannot read the scores"),
    (["collect-manual", "{out}/nowhere"], "no such directory"),
])
def test_a_bad_command_line_is_refused(class_copy, in_process, args, why):
    (class_copy / "latin1.csv").write_bytes(b"submission,item,score\n\xff\xfe,PLOT_LOSS,1\n")
    code, err = in_process(*args)
    assert code == 2 and why in err and err.count("\n") == 1, err


# ---------------------------------------------------------------- figure answers, unit by unit

def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _rows(width: int, height: int, bytes_per_pixel: int, interlace: int, filter_byte: int = 0) -> bytes:
    """Scanlines for an RGB image (non-interlaced, or the seven Adam7 passes), with a fixed pattern of pixels."""
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)) \
        if interlace else ((0, 0, 1, 1),)
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        columns, lines = len(range(x0, width, dx)), len(range(y0, height, dy))
        for line in range(lines if columns else 0):
            raw += bytes([filter_byte]) + bytes((7 * line + i) % 256 for i in range(columns * bytes_per_pixel))
    return bytes(raw)


def make_png(width: int = 5, height: int = 3, interlace: int = 0, header: bytes | None = None,
             pixels: bytes | None = None, before: tuple[bytes, ...] = (), after: bytes = b"") -> bytes:
    """An 8-bit RGB PNG built chunk by chunk, so that each test can break exactly one thing in it."""
    ihdr = header if header is not None else (width.to_bytes(4, "big") + height.to_bytes(4, "big")
                                              + bytes([8, 2, 0, 0, interlace]))
    data = pixels if pixels is not None else zlib.compress(_rows(width, height, 3, interlace))
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + b"".join(before) + _chunk(b"IDAT", data)
            + _chunk(b"IEND", b"") + after)


@pytest.mark.parametrize("interlace", [0, 1])
def test_a_png_is_checked_and_keeps_only_what_draws_it(interlace):
    from PIL import Image

    original = make_png(11, 9, interlace, before=(_chunk(b"tEXt", b"Comment\x00<script>alert(1)</script>"),))
    png = read_png(original)
    assert (png.width, png.height) == (11, 9) and b"tEXt" not in png.data and b"<script>" not in png.data
    decoded = [Image.open(io.BytesIO(data)).convert("RGB").tobytes() for data in (original, png.data)]
    assert decoded[0] == decoded[1]
    assert read_png(png.data) == png  # cleaning is idempotent


def _ihdr(width: int, height: int, depth: int = 8, colour: int = 2, interlace: int = 0) -> bytes:
    return width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, colour, 0, 0, interlace])


GOOD = make_png()
HOSTILE = {
    "not a PNG": (b"GIF89a" + GOOD[6:], "it is not a PNG image"),
    "an SVG": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not a PNG image"),
    "too many bytes": (GOOD[:-12] + b"\x00" * items.MAX_FIGURE_BYTES, "more than the limit of 240,000"),
    "truncated": (GOOD[:-12], "ends before its end chunk"),
    "a truncated chunk": (GOOD[:-20], "claims 43 bytes, more than the file holds"),
    "a damaged checksum": (GOOD[:-13] + bytes([GOOD[-13] ^ 1]) + GOOD[-12:], "IDAT is damaged"),
    "a chunk longer than the file": (GOOD[:8] + (2**31).to_bytes(4, "big") + GOOD[12:], "more than the file holds"),
    "data after the end": (make_png(after=b"<html>"), "data after its end chunk"),
    "an unknown critical chunk": (make_png(before=(_chunk(b"EVIL", b"x"),)), "critical chunk EVIL"),
    "a malformed chunk name": (make_png(before=(_chunk(b"a1b2", b"x"),)), "malformed name"),
    "a huge header": (make_png(header=_ihdr(40_000, 40_000)), "40000 × 40000 pixels, larger than 4000 pixels a side"),
    "too many pixels": (make_png(header=_ihdr(3000, 3000)), "larger than 4000 pixels a side and 4,000,000 pixels"),
    "no pixels": (make_png(header=_ihdr(0, 3)), "a width or height of 0"),
    "a depth that does not exist": (make_png(header=_ihdr(5, 3, depth=7)), "pixel format that does not exist"),
    "a palette image without a palette": (make_png(header=_ihdr(5, 3, colour=3)), "has none before its pixel data"),
    "a decompression bomb": (make_png(pixels=zlib.compress(b"\x00" * 50_000_000, 9)), "does not match its width"),
    "too few pixels": (make_png(pixels=zlib.compress(_rows(5, 2, 3, 0))), "does not match its width"),
    "pixels that do not decompress": (make_png(pixels=b"\x78\x9c" + b"\xff" * 40), "does not decompress"),
    "an unknown row filter": (make_png(pixels=zlib.compress(_rows(5, 3, 3, 0, filter_byte=9))), "unknown filter"),
    "pixels split by another chunk": (GOOD[:-12] + _chunk(b"tEXt", b"a\x00b") + _chunk(b"IDAT", zlib.compress(b""))
                                      + GOOD[-12:], "split by other chunks"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_malformed_or_hostile_png_gets_its_reason(name):
    data, why = HOSTILE[name]
    with pytest.raises(ValueError, match=re.escape(why)):
        read_png(data)


def test_figure_outcomes_and_the_largest_one_fits_one_message():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    try:
        for value in (fig, ax):
            got = items.figure_outcome(value)
            assert read_png(items.png_bytes(got.value)).width == 300
    finally:
        plt.close(fig)
    assert items.figure_outcome(None).error == f"{items.UNSUPPORTED}None, not a matplotlib figure"
    assert items.figure_outcome([1, 2]).error == f"{items.UNSUPPORTED}a list, not a matplotlib figure"
    too_big = PNG_SIGNATURE + b"\xff" * (items.MAX_FIGURE_BYTES - len(PNG_SIGNATURE) + 1)
    assert "more than the limit of 240,000" in items.figure_outcome(too_big).error
    largest = items.figure_outcome(too_big[:-1])
    line = protocol.encode_line(protocol.item_message("PLOT_LOSS", True, protocol.OK, [protocol.outcome(largest)]))
    assert len(line) < parent.MAX_LINE_BYTES  # the parent drops a longer message unread
    report = protocol.decode_line(line.strip(), {"PLOT_LOSS": 1})
    assert items.png_bytes(report.outcomes[0].value) == too_big[:-1]


def test_the_grader_scores_a_figure_answer_from_what_came_back():
    plot = ManualItem("PLOT_LOSS", points=2, prompt="Plot it.", keyed=True, answer=FIGURE)
    plan = Plan(Assignment("92_plot", "A plot", (plot,)))
    assert [s.kind for s in plan.child_spec()] == [protocol.FIGURE]

    def scored(value) -> scoring.ItemResult:
        report = protocol.ItemReport("PLOT_LOSS", True, protocol.OK, (Outcome(value=value),))
        return plan.score({"PLOT_LOSS": report})[0]

    good = scored(items.figure_outcome(make_png(11, 9)).value)
    assert (good.score, good.max_score, good.figure) == (0.0, 2.0, read_png(make_png(11, 9)).data)
    assert good.output == "📝 recorded (a figure of 11 × 9 pixels); graded by hand."
    for value, why in [("a text", "it is 'a text'"), (items.to_plain(torch.zeros(3)), "it is an array of shape (3,)"),
                       (items.figure_outcome(HOSTILE["a decompression bomb"][0]).value, "does not match its width")]:
        result = scored(value)
        assert result.output.startswith("❌ `PLOT_LOSS` cannot be recorded as a figure") and why in result.output
        assert result.figure is None and result.score == 0
    with pytest.raises(ValueError, match="answer must be one of text, figure"):
        ManualItem("PLOT", points=1, prompt="", answer="video")


def test_check_gives_a_figure_answer_the_graders_verdict():
    """The learner's check() and the grader say the same about a figure answer, good or not."""
    import matplotlib.pyplot as plt

    plot = ManualItem("PLOT_LOSS", points=2, prompt="Plot it.", keyed=True, answer=FIGURE)
    plan = Plan(Assignment("92_plot", "A plot", (plot,)))
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([3.0, 2.0, 1.5])
    try:
        for value in (fig, ax, "a text", 42, b"not a png"):
            here = value_verdict(plot, value, hidden=False)
            report = protocol.ItemReport("PLOT_LOSS", True, protocol.OK, (items.figure_outcome(value),))
            there = plan.score({"PLOT_LOSS": report})[0]
            assert here.line() == there.output, value
            assert here.pending == (value is fig or value is ax)
    finally:
        plt.close(fig)
    recorded = "📝 recorded (a figure of 200 × 150 pixels); graded by hand."
    assert value_verdict(plot, fig, hidden=False).line() == recorded


def test_the_readme_states_the_figure_limits_the_grader_uses():
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (f"at {items.FIGURE_DPI} dpi; the grader checks the image (a whole PNG, at most "
            f"{items.MAX_FIGURE_BYTES // 1000} kB and {items.MAX_FIGURE_SIDE} pixels a side)") in text
