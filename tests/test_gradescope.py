"""The Gradescope autograder zip, tested as an instructor tests it: `course-grade --test-gradescope ZIP NOTEBOOK`.

Each test exports a fresh zip through the command line and runs its `run_autograder` in a temporary
`/autograder`-shaped tree with this interpreter, so the zip's script and the grader are what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from test_grading import FULL, notebook, with_cells

from course_utils.assessment.grading import gradescope
from course_utils.assessment.grading.scoring import PUBLIC_PART

pytestmark = pytest.mark.usefixtures("readable_environment")

ZIP_NAME = "gradescope_01_mle_coin_flips.zip"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils.assessment.grading", *args], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)


def _export(folder: Path, *options: str) -> Path:
    proc = _cli("--export-gradescope", "01", "--out", str(folder), *options)
    assert proc.returncode == 0, proc.stderr
    return folder / ZIP_NAME


def _test_zip(archive: Path, submission: Path) -> dict:
    proc = _cli("--test-gradescope", str(archive), str(submission))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("zip"))


@pytest.mark.parametrize("upload", ["grades.ipynb", "01_mle_coin_flips.ipynb", "my work (final).ipynb"])
def test_any_upload_name_gets_its_results(archive, tmp_path, upload):
    path = tmp_path / upload
    path.write_text(json.dumps(with_cells()))
    results = _test_zip(archive, path)
    assert results["score"] == FULL and results["max_score"] == FULL
    assert all(t["status"] == "passed" for t in results["tests"])


def test_public_parts_are_visible_and_graded_results_wait_for_the_due_date(archive, tmp_path):
    path = tmp_path / "grades.ipynb"
    path.write_text(json.dumps(with_cells(replace={3: "bernoulli_mle = 0"})))
    results = _test_zip(archive, path)
    tests = {t["name"]: t for t in results["tests"]}
    assert results["score"] == FULL - 2
    public, graded = tests["bernoulli_mle" + PUBLIC_PART], tests["bernoulli_mle"]
    assert (public["visibility"], public["status"], public["max_score"]) == ("visible", "failed", 0)
    assert public["output"].startswith("❌") and "should be a function" in public["output"]
    assert (graded["visibility"], graded["score"], graded["max_score"]) == ("after_due_date", 0, 2)
    log_public = tests["log_likelihood" + PUBLIC_PART]
    assert log_public["status"] == "passed" and "failed" not in log_public["output"]
    answer = next(t for name, t in tests.items() if name.startswith("ANSWER") and name.endswith(PUBLIC_PART))
    assert answer["output"].startswith("📝 recorded") and answer["status"] == "passed"
    assert "all 8 cases pass" in tests["log_likelihood"]["output"]  # public and hidden, shown after the due date
    assert sum(t["max_score"] for t in results["tests"]) == FULL
    assert not results["output"].startswith("Score:")  # the total waits with the graded results


def test_hidden_visibility_is_an_export_option(tmp_path):
    archive = _export(tmp_path / "zip", "--hidden-visibility", "after_published")
    path = tmp_path / "grades.ipynb"
    path.write_text(json.dumps(with_cells()))
    visibility = {t["name"]: t["visibility"] for t in _test_zip(archive, path)["tests"]}
    assert visibility["bernoulli_mle"] == "after_published"
    assert visibility["bernoulli_mle" + PUBLIC_PART] == "visible"
    proc = _cli("--export-gradescope", "01", "--out", str(tmp_path / "z2"), "--hidden-visibility", "never")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_setup_pins_every_package_to_the_exported_versions(archive):
    with zipfile.ZipFile(archive) as zf:
        setup = zf.read("setup.sh").decode()
        constraints = zf.read("course/constraints.txt").decode().splitlines()
    pins = dict(line.split("==") for line in constraints)
    for name in ("numpy", "matplotlib", "ipywidgets", "nbformat", "tqdm", "torch", "ipykernel"):
        assert pins[name] == metadata.version(name)
    assert "contourpy" in pins and "pytest" not in pins  # a dependency's dependency; not the test extra
    assert "-c /autograder/source/course/constraints.txt" in setup
    assert f'"torch=={metadata.version("torch").split("+")[0]}"' in setup


def test_the_upload_is_graded_under_a_fixed_name(archive):
    with zipfile.ZipFile(archive) as zf:
        script = zf.read("run_autograder").decode()
    assert f'cp "$NOTEBOOK" "$WORK/{gradescope.UPLOAD}"' in script
    assert f'"$WORK/out/{Path(gradescope.UPLOAD).stem}.json"' in script


def test_unreadable_upload_and_bad_arguments(archive, tmp_path):
    path = tmp_path / "grades.ipynb"
    path.write_text("{not json")
    results = _test_zip(archive, path)
    assert results["score"] == 0 and results["extra_data"]["status"] == "unreadable notebook"
    proc = _cli("--test-gradescope", str(path), str(path))
    assert proc.returncode == 2 and "not a zip file" in proc.stderr
    proc = _cli("--test-gradescope", str(archive), str(tmp_path / "absent.ipynb"))
    assert proc.returncode == 2 and "no such notebook" in proc.stderr


def test_for_gradescope_keeps_an_item_without_hidden_part_visible():
    results = {"score": 1, "output": "Score: 1 / 1.", "tests": [{"name": "a", "score": 1, "max_score": 1,
                                                                 "output": "✅ fine.", "visibility": "visible"}]}
    assert gradescope.for_gradescope(results) == results
    with pytest.raises(ValueError, match="visibility must be one of"):
        gradescope.for_gradescope(results, "later")


def test_a_notebook_file_is_what_students_upload(tmp_path, archive):
    path = tmp_path / "grades.ipynb"
    path.write_text(json.dumps(notebook(["x = 1"])))
    results = _test_zip(archive, path)
    assert results["score"] == 0 and results["max_score"] == FULL
