"""The grader's sandbox as root: no submission can outlive the reaper, leave anything behind, exceed its
memory through shared memory, read another submission or the course's answers, or keep the network unseen.

Each hostile notebook is built here and graded through the real command line next to a correct one.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from test_grading import FULL, GOOD, Graded, assert_handled, notebook

from course_utils.assessment import assignments
from course_utils.assessment.grading import processes
from course_utils.assessment.grading.child import PRIVATE_DIRS
from course_utils.assessment.grading.forkserver import answer_dirs
from course_utils.assessment.grading.parent import Limits, Pool
from course_utils.assessment.grading.scoring import Plan

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0
pytestmark = [pytest.mark.skipif(not AS_ROOT, reason="the sandbox's uid, namespaces and cgroups need root"),
              pytest.mark.usefixtures("readable_environment")]  # tests/conftest.py
TIMEOUT = "8"


def _readable_tmp(tmp_path: Path) -> Path:
    """A folder the sandbox uid can enter (pytest's own is private to root)."""
    tmp_path.mkdir(exist_ok=True)
    for p in [tmp_path, *tmp_path.parents]:
        if p == Path("/tmp") or p == Path("/"):
            break
        p.chmod(0o755)
    return tmp_path


# ---------------------------------------------------------------- failure 3: a daemon that stops the reaper

STOPPER = '''import os, signal, time
if os.fork() == 0:  # a daemon: double fork, new session, then SIGSTOP every other process of this uid
    os.setsid()
    if os.fork() == 0:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                os.kill(-1, signal.SIGSTOP)
            except OSError:
                pass
    os._exit(0)
time.sleep(0.5)'''


def test_a_daemon_stopping_its_uid_outlives_nothing_and_costs_the_next_student_nothing(tmp_path):
    """Failure 3: the next submission on the same worker gets full marks; no sandbox process survives."""
    run = Graded(_readable_tmp(tmp_path), {"a_stopper": notebook(GOOD + [STOPPER]), "good": notebook(GOOD)},
                 ["--jobs", "1", "--timeout", TIMEOUT])
    assert_handled(run, "good", FULL)
    stopper = run.results["a_stopper"]
    assert stopper["execution_time"] < float(TIMEOUT) + 4, "the reaper was stopped and waited for"
    assert not [p for u in range(61000, 61010) for p in processes.living_pids_of_uid(u)
                if p in run.leftover]


# ---------------------------------------------------------------- failure 5: leftovers and memory

def _sysv_keys(kind: str) -> set[int]:
    with open(f"/proc/sysvipc/{kind}") as f:
        return {int(line.split()[0]) for line in f.readlines()[1:]}


def _mq_exists(name: str) -> bool:
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    rt.mq_open.restype = ctypes.c_int
    fd = rt.mq_open(name.encode(), os.O_RDONLY)
    if fd >= 0:
        rt.mq_close(fd)
        rt.mq_unlink(name.encode())
        return True
    return False


LEAVES = '''import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
made = [libc.shmget({key}, 1 << 20, 0o1666) >= 0, libc.msgget({key}, 0o1666) >= 0,
        libc.semget({key}, 1, 0o1666) >= 0, rt.mq_open(b"{mq}", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0]
for path in {files}:
    with open(path, "w") as f:
        f.write("left behind")
    made.append(os.path.exists(path))
ANSWER_SPREAD_RATIO = 0.5 if all(made) else 0.25'''

MEMFD = '''import os
block, fds = b"x" * 2**20, []
for i in range(40):  # 40 memfds of 64 MiB: 2.5 GiB that no RLIMIT counts
    fd = os.memfd_create(f"hoard{i}")
    for _ in range(64):
        os.write(fd, block)
    fds.append(fd)
print("held", len(fds) * 64, "MiB")'''


def test_ipc_objects_and_private_dirs_leave_nothing_and_memfd_meets_the_memory_limit(tmp_path):
    """Failure 5 (and 10, as root): SysV shm/msg/sem, a POSIX queue, files in /tmp, /dev/shm and /run/lock
    are gone after the batch; 2.5 GiB of memfd is stopped by the 2 GiB limit."""
    key = random.randrange(0x10000000, 0x7FFFFFFF)
    tag = uuid.uuid4().hex[:12]
    mq = f"/course-grade-test-{tag}"
    files = [f"{d}/course-grade-test-{tag}" for d in PRIVATE_DIRS if os.path.isdir(d)]
    assert "/run/lock/course-grade-test-" + tag in files
    leaves = LEAVES.format(key=key, mq=mq, files=files)
    run = Graded(_readable_tmp(tmp_path), {"leaves": notebook(GOOD + [leaves]), "good": notebook(GOOD),
                                           "memfd": notebook(GOOD + [MEMFD])},
                 ["--jobs", "2", "--timeout", "20"])
    assert_handled(run, "leaves", FULL)  # every object was made: ANSWER_SPREAD_RATIO says so
    for kind in ("shm", "msg", "sem"):
        assert key not in _sysv_keys(kind), f"a SysV {kind} object survived the batch"
    assert not _mq_exists(mq), "a POSIX message queue survived the batch"
    assert not [f for f in files if os.path.exists(f)]
    memfd = run.results["memfd"]
    assert "memory" in memfd["extra_data"]["status"], memfd["output"]
    assert "held 2560 MiB" not in memfd["output"]
    assert all(r["extra_data"]["network_isolated"] is True for r in run.results.values())


# ---------------------------------------------------------------- failure 6: nothing of another submission

MARKER_CELLS = [f"# MARKER-{uuid.uuid4().hex}-END\nnote_{i} = {'x' * (7 * i)!r}  # MARKER-{uuid.uuid4().hex}-END"
                for i in range(60)]  # small cells, as students write them: each below 512 bytes
SCANNER = '''import re
def _scan():
    target, control = re.compile(rb"MARKER-[0-9a-f]{32}-END"), re.compile(rb"CONTROL-[0-9a-f]{32}-DONE")
    mine = "CONTROL-" + format(0xC0FFEE, "032x") + "-DONE"  # this notebook's own text, made at run time
    found = {"target": False, "control": False}
    with open("/proc/self/maps") as f:
        regions = [line.split() for line in f]
    with open("/proc/self/mem", "rb", 0) as mem:
        for r in regions:
            if not r[1].startswith("rw") or (len(r) > 5 and r[5] != "[heap]"):
                continue  # anonymous and heap memory: where freed text of the server would be
            lo, hi = (int(x, 16) for x in r[0].split("-"))
            while lo < hi:
                try:
                    mem.seek(lo)
                    chunk = mem.read(min(hi - lo, 1 << 22) + 64)
                except OSError:
                    break
                found["target"] |= bool(target.search(chunk))
                found["control"] |= bool(control.search(chunk))
                lo += 1 << 22
    return found, mine
FOUND, _MINE = _scan()
print(FOUND)
ANSWER_LOWER_LOSS = "B" if FOUND["control"] else "A"  # the scan itself works
ANSWER_SPREAD_RATIO = 0.25 if FOUND["target"] else 0.5  # and finds nothing of another submission'''


def _memory_holds(pid: int, pattern: re.Pattern) -> bool:
    """Whether the anonymous or heap memory of process `pid` (read as root) matches `pattern`."""
    with open(f"/proc/{pid}/maps") as f:
        regions = [line.split() for line in f]
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for r in regions:
            if not r[1].startswith("rw") or (len(r) > 5 and r[5] != "[heap]"):
                continue
            lo, hi = (int(x, 16) for x in r[0].split("-"))
            try:
                mem.seek(lo)
                if pattern.search(mem.read(hi - lo)):
                    return True
            except OSError:
                pass
    return False


def test_the_fork_server_never_holds_a_submissions_text(tmp_path):
    """Failure 6, where it starts: after a submission ran, its text is nowhere in the fork server's memory."""
    plan = Plan(assignments.load("01"))
    cells = GOOD[:3] + MARKER_CELLS + GOOD[3:]
    with Pool(1) as pool:
        run = pool.workers[0].run(cells, Limits(timeout=20), pool.spec(plan.child_spec()))
        assert sum(r.score for r in plan.score(run.items)) == FULL
        assert not _memory_holds(pool.workers[0]._proc.pid, re.compile(rb"MARKER-[0-9a-f]{32}-END"))


def test_a_submission_never_finds_another_submissions_text_in_its_memory(tmp_path):
    """Failure 6: the fork server never holds a submission's text, so a later child cannot recover it."""
    marked = notebook(GOOD[:3] + MARKER_CELLS + GOOD[3:])
    run = Graded(_readable_tmp(tmp_path), {"a_marked": marked, "b_scanner": notebook(GOOD + [SCANNER]),
                                           "good": notebook(GOOD)},
                 ["--jobs", "1", "--timeout", "20"])
    assert_handled(run, "a_marked", FULL)
    assert_handled(run, "b_scanner", FULL)


# ---------------------------------------------------------------- failure 8: the course's answers on disk

def _steals(targets: list[str]) -> str:
    return f'''import json
denied = 0
for path in {targets!r}:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        denied += 1
        continue
    if path.endswith(".ipynb"):
        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code":
                try:
                    exec("".join(cell["source"]), globals())
                except BaseException:
                    pass
ANSWER_SPREAD_RATIO = 0.5 if denied == {len(targets)} else 0.25
raise RuntimeError(f"denied {{denied}} of {len(targets)}")'''


def test_solutions_and_assignment_definitions_cannot_be_read(tmp_path):
    """Failure 8: with the course installed from this checkout, the sandbox cannot open its answers."""
    solution = ROOT / "solutions" / "01_mle_coin_flips.ipynb"
    module = next((ROOT / "course_utils" / "assessment" / "assignments").glob("ch01_*.py"))
    tests = ROOT / "tests" / "test_grading.py"
    assert {str(p.parent) for p in (solution, module, tests)} <= set(answer_dirs())
    run = Graded(_readable_tmp(tmp_path), {"steals": notebook([_steals([str(solution), str(module), str(tests)])]),
                                           "good": notebook(GOOD)},
                 ["--jobs", "2", "--timeout", "20"])
    steals = run.results["steals"]
    assert "denied 3 of 3" in steals["output"], steals["output"]  # every open failed in the sandbox
    assert steals["score"] == 0 and steals["extra_data"]["flags"], steals  # and the attempt is flagged
    assert_handled(run, "good", FULL)


# ---------------------------------------------------------------- failure 10: network without CAP_SYS_ADMIN

NETWORK = '''import socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=1)
    reached = True
except ConnectionRefusedError:
    reached = True
except OSError:
    reached = False
print("network reached" if reached else "no network")'''


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) drops a capability")
def test_without_cap_sys_admin_the_network_is_recorded_and_warned_about_once(tmp_path, monkeypatch):
    """Failure 10: as root without CAP_SYS_ADMIN (Docker's default) the child keeps the network: each result
    says so and the batch warns once; the correct submissions still get full marks."""
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    python = wrapper / "python"
    python.write_text(f"#!/bin/sh\nexec setpriv --bounding-set -sys_admin {os.sys.executable} "
                      '"$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(os.sys, "executable", str(python))
    probe = subprocess.run([str(python), "-c", "import ctypes; print(ctypes.CDLL(None).unshare(0x40000000))"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "-1", "setpriv did not take CAP_SYS_ADMIN away"
    run = Graded(_readable_tmp(tmp_path / "run"), {"good": notebook(GOOD), "good2": notebook(GOOD),
                                                   "network": notebook(GOOD + [NETWORK])},
                 ["--jobs", "2", "--timeout", "20"])
    assert_handled(run, "good2", FULL)
    assert all(r["extra_data"]["network_isolated"] is False for r in run.results.values())
    assert run.proc.stderr.count("could not take the network away") == 1, run.proc.stderr


def test_a_temporary_directory_holding_the_course_stays_shared(monkeypatch, tmp_path):
    """A checkout or venv under /tmp (`mktemp -d`) must stay importable in the child: no private tmpfs
    over it (the fresh-clone suite lost fit_by_gradient_ascent's lazy `torch._dynamo` import that way)."""
    from course_utils.assessment.grading import child

    venv = tmp_path / "venv" / "lib" / "site-packages"
    venv.mkdir(parents=True)
    monkeypatch.setattr(child.sys, "path", [*child.sys.path, str(venv)])
    assert child._holds_code(str(tmp_path))
    assert child._holds_code(str(tmp_path.parent))
    empty = tmp_path / "nothing-imported-here"
    empty.mkdir()
    assert not child._holds_code(str(empty))
    assert child._holds_code(str(Path(child.__file__).resolve().parents[3]))  # the checkout holding the course
