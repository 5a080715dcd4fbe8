"""A whole hostile class in one batch: every attack of the hardening tests beside ten correct notebooks.

The batch completes, the correct notebooks get full marks, nothing of the sandbox is left behind
(processes, IPC objects, files in the temporary directories) and the grader's peak memory stays
under 1 GB.
"""

from __future__ import annotations

import fcntl
import os
import random
import uuid
from pathlib import Path

import pytest
from test_grading_parent import (
    DEEP,
    FLOOD,
    FORGED,
    FULL,
    GOOD,
    NEWLINE,
    NON_UTF8,
    SURROGATE,
    TAG,
    Batch,
    notebook,
    write,
)
from test_grading_sandbox import LEAVES, MEMFD, STOPPER, _mq_exists, _readable_tmp, _steals, _sysv_keys

from course_utils.assessment.grading import processes
from course_utils.assessment.grading.child import PRIVATE_DIRS
from course_utils.assessment.grading.parent import LOCK_DIR, UID_RANGE

ROOT = Path(__file__).resolve().parent.parent
CORRECT = [f"student{i:02d}" for i in range(10)]

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's uid, namespaces and cgroups need root"),
              pytest.mark.usefixtures("readable_environment")]  # tests/conftest.py


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory) -> tuple[Batch, dict]:
    tmp = _readable_tmp(tmp_path_factory.mktemp("class"))
    subs = tmp / "submissions"
    subs.mkdir()
    key = random.randrange(0x10000000, 0x7FFFFFFF)
    tag = uuid.uuid4().hex[:12]
    left = {"key": key, "mq": f"/course-grade-class-{tag}",
            "files": [f"{d}/course-grade-class-{tag}" for d in PRIVATE_DIRS if os.path.isdir(d)]}
    solution = ROOT / "solutions" / "01_mle_coin_flips.ipynb"
    hostile = {
        "a_stopper": notebook(GOOD + [STOPPER]),
        "leaves": notebook(GOOD + [LEAVES.format(key=key, mq=left["mq"], files=left["files"])]),
        "memfd": notebook(GOOD + [MEMFD]),
        "steals": notebook([_steals([str(solution)])]),
        "deep": notebook([DEEP, *GOOD]),
        "surrogate": SURROGATE,
        "flood": FLOOD,
        "forged": FORGED,
        NEWLINE: notebook(GOOD),
        "=HYPERLINK(1)": notebook(GOOD),
    }
    for name, nb in {**hostile, **{c: notebook(GOOD) for c in CORRECT}}.items():
        write(subs / f"{name}.ipynb", nb)
    write(os.path.join(bytes(subs), NON_UTF8 + b".ipynb"), notebook(GOOD))
    outside = tmp / "elsewhere.ipynb"
    write(outside, notebook(GOOD))
    (subs / "mallory.ipynb").symlink_to(outside)
    return Batch(tmp, subs, ["--jobs", "2"]), left


def test_the_class_is_graded_and_the_correct_notebooks_get_full_marks(hostile_class):
    batch, _ = hostile_class
    assert batch.proc.returncode == 0, batch.stderr
    assert len(batch.rows) == 10 + 10 + 2  # the hostile ten, the correct ten, the non-UTF-8 name and the link
    for name in CORRECT:
        assert batch.result(name)["score"] == FULL and batch.rows[name]["status"] == "ok", batch.result(name)
    assert batch.result("mallory")["score"] == 0  # the link was not followed
    assert batch.result("steals")["score"] < FULL


def test_nothing_of_the_sandbox_is_left_behind(hostile_class):
    batch, left = hostile_class
    assert batch.proc.returncode == 0, batch.stderr
    alive = {uid: pids for uid in UID_RANGE[:64] if (pids := _processes_of_idle_uid(uid))}
    assert not alive, "a sandbox process survived the batch"
    for kind in ("shm", "msg", "sem"):
        assert left["key"] not in _sysv_keys(kind), f"a SysV {kind} object survived the batch"
    assert not _mq_exists(left["mq"]), "a POSIX message queue survived the batch"
    assert not [f for f in left["files"] if os.path.exists(f)]
    assert not os.path.exists(f"/tmp/deep-{TAG}")


def _processes_of_idle_uid(uid: int) -> list[int]:
    """The living processes of a sandbox uid that no grader holds now (others may run beside this test)."""
    try:
        fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR)
    except FileNotFoundError:
        return processes.living_pids_of_uid(uid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return processes.living_pids_of_uid(uid)
    except BlockingIOError:
        return []  # another grader's worker holds this uid
    finally:
        os.close(fd)


def test_the_graders_peak_memory_stays_under_1_gb(hostile_class):
    batch, _ = hostile_class
    assert batch.peak_rss_kb is not None and batch.peak_rss_kb < 2**20, f"{batch.peak_rss_kb} kB"
