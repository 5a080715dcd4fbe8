"""Linux process helpers for the grader: kill a process group or a uid's processes, read /proc, prctl."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_THP_DISABLE = 41
_KILL_SWEEPS = 1000
# Run as the uid itself, `kill -1` signals every process of that uid except the shell; repeated
# until nothing is left to signal, so that processes forked during a sweep are caught by the next.
_KILL_ALL_OF_MY_UID = f"i=0; while [ $i -lt {_KILL_SWEEPS} ] && kill -KILL -1 2>/dev/null; do i=$((i + 1)); done"


def prctl(option: int, value: int) -> None:
    """Linux prctl(2) with one argument; a no-op where it is not available."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group; nothing happens if it is already gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_uid(uid: int) -> None:
    """As root: kill every process of `uid` (daemons and double forks included) from a shell running as `uid`."""
    if not pids_of_uid(uid):  # the common case, checked without starting a process
        return
    try:
        subprocess.run(["/bin/sh", "-c", _KILL_ALL_OF_MY_UID], user=uid, group=uid, extra_groups=[],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def pids_of_uid(uid: int) -> list[int]:
    """The processes whose /proc entry belongs to `uid`."""
    out = []
    for pid in _pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                out.append(pid)
        except OSError:
            pass
    return out


def threads_of(pid: int) -> int:
    """How many threads a process has (1 if it cannot be read); RLIMIT_NPROC counts threads."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 1


def children_of(ppid: int) -> list[int]:
    """The processes whose parent is `ppid`, read from /proc/PID/stat."""
    out = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, …
        if len(fields) > 1 and int(fields[1]) == ppid:
            out.append(pid)
    return out


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
