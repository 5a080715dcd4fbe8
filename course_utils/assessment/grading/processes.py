"""Linux process helpers for the grader: cgroups, namespaces, killing a group or a uid's processes, /proc."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_THP_DISABLE = 41
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY = 2, 4, 8, 1
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
KILL_TIMEOUT_S = 5.0
_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    """Linux prctl(2) with one argument; a no-op where it is not available."""
    try:
        _libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def unshare(flags: int) -> bool:
    """unshare(2): whether the calling process now has the new namespaces `flags` asks for."""
    try:
        return _libc.unshare(flags) == 0
    except (OSError, AttributeError):
        return False


def setns(fd: int, kind: int) -> bool:
    """setns(2) into the namespace open as `fd`; whether it succeeded."""
    try:
        return _libc.setns(fd, kind) == 0
    except (OSError, AttributeError):
        return False


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); raises OSError naming the target when it fails."""
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount {fstype or source} on {target}: {os.strerror(err)}")


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group; nothing happens if it is already gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_uid(uid: int, timeout: float = KILL_TIMEOUT_S, reap: Callable[[], None] | None = None) -> bool:
    """As root: SIGKILL every process of `uid`, again until none is alive; whether none is left.

    The killer never runs as `uid` itself (a process of that uid could stop it), and it never waits
    longer than `timeout`. `reap` (the caller's own zombie reaper) runs between sweeps.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = living_pids_of_uid(uid)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        _kill_each(alive)
        if reap is not None:
            reap()
        time.sleep(0.001)


def _kill_each(pids: list[int]) -> None:
    """SIGKILL every pid; one that is gone already or not ours to kill is passed over."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def pids_of_uid(uid: int) -> list[int]:
    """The processes whose /proc entry belongs to `uid` (zombies included)."""
    out = []
    for pid in _pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                out.append(pid)
        except OSError:
            pass
    return out


def living_pids_of_uid(uid: int) -> list[int]:
    """The processes of `uid` that are not zombies (a zombie runs nothing and holds no memory)."""
    return [pid for pid in pids_of_uid(uid) if _state(pid) not in (b"Z", b"X", None)]


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
        fields = _stat_fields(pid)
        if fields is not None and len(fields) > 1 and int(fields[1]) == ppid:
            out.append(pid)
    return out


def _state(pid: int) -> bytes | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after "pid (comm) ": state, ppid, …; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


# ---------------------------------------------------------------- one worker's cgroup

@dataclass(frozen=True)
class Cgroup:
    """A worker's own cgroup: `kill` empties it at once (cgroup v2), `memory` limits all its memory.

    Either part can be missing (None) where the machine does not let the grader create it;
    `memory` is a cgroup v2 or v1 directory, told apart by the files it holds.
    """

    kill: str | None
    memory: str | None

    @staticmethod
    def create(name: str) -> Cgroup | None:
        """Make the cgroup `name` under this process's own cgroups; None where nothing could be made."""
        own = own_cgroups()
        unified = _make(own.get(""), name)
        memory = None
        if unified is not None and _enable_memory(Path(unified).parent) and Path(unified, "memory.max").exists():
            memory = unified
        elif own.get("memory"):
            memory = _make(own["memory"], name)
        if unified is not None and not Path(unified, "cgroup.kill").exists():
            _remove_dir(unified)
            unified = None
        return Cgroup(unified, memory) if unified or memory else None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Cgroup | None:
        return Cgroup(**json.loads(text)) if text else None

    def join(self) -> bool:
        """Move the calling process into the cgroup; whether every part took it."""
        ok = True
        for part in {self.kill, self.memory} - {None}:
            ok = _write(Path(part, "cgroup.procs"), "0") and ok
        return ok

    def limit_memory(self, nbytes: int) -> bool:
        """Cap all memory charged to the cgroup (anonymous, shared, memfd, tmpfs, page cache), swap included."""
        if self.memory is None:
            return False
        d = Path(self.memory)
        if (d / "memory.max").exists():
            return _write(d / "memory.max", str(nbytes)) and (_write(d / "memory.swap.max", "0")
                                                               or not (d / "memory.swap.max").exists())
        limit, both = d / "memory.limit_in_bytes", d / "memory.memsw.limit_in_bytes"
        if not both.exists():
            return _write(limit, str(nbytes))
        # memsw must never be below the plain limit: write them in the order that keeps it so
        return (_write(limit, str(nbytes)) and _write(both, str(nbytes))) or \
            (_write(both, str(nbytes)) and _write(limit, str(nbytes)))

    def oom_kills(self) -> int:
        """How many processes the kernel killed so far for going over the memory limit."""
        if self.memory is None:
            return 0
        d = Path(self.memory)
        for name in ("memory.events", "memory.oom_control"):
            try:
                for line in (d / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
            except (OSError, ValueError):
                continue
        return 0

    def pids(self) -> list[int]:
        out: set[int] = set()
        for part in {self.kill, self.memory} - {None}:
            try:
                out.update(int(p) for p in Path(part, "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def empty(self, timeout: float = KILL_TIMEOUT_S, reap: Callable[[], None] | None = None) -> bool:
        """Kill every process in the cgroup (cgroup.kill, else SIGKILL each) until none is left; bounded."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            if not left:
                return True
            if time.monotonic() > deadline:
                return False
            if not (self.kill and _write(Path(self.kill, "cgroup.kill"), "1")):
                _kill_each(left)
            if reap is not None:
                reap()
            time.sleep(0.0005)

    def remove(self) -> None:
        """Delete the cgroup (after `empty`); a cgroup that still holds a process stays."""
        for part in {self.kill, self.memory} - {None}:
            _remove_dir(part)


def own_cgroups() -> dict[str, str]:
    """This process's cgroup directories: "" for the v2 hierarchy, "memory" for a v1 memory hierarchy."""
    mounts = _cgroup_mounts()
    out = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        key = "" if controllers == "" else "memory" if "memory" in controllers.split(",") else None
        if key is None or key not in mounts:
            continue
        root, point = mounts[key]
        if path == root or path.startswith(root.rstrip("/") + "/"):
            out[key] = str(Path(point) / path[len(root.rstrip("/")):].lstrip("/"))
    return out


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    """Mount root and mount point of the cgroup v2 hierarchy ("") and of a v1 memory hierarchy."""
    out: dict[str, tuple[str, str]] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, kind = before.split(), after.split()
        if len(fields) < 5 or len(kind) < 3 or "rw" not in fields[5].split(","):
            continue
        if kind[0] == "cgroup2":
            out.setdefault("", (fields[3], fields[4]))
        elif kind[0] == "cgroup" and "memory" in kind[2].split(","):
            out.setdefault("memory", (fields[3], fields[4]))
    return out


def _make(parent: str | None, name: str) -> str | None:
    if parent is None:
        return None
    path = Path(parent) / name
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return None
    return str(path)


def _enable_memory(parent: Path) -> bool:
    """Whether the memory controller is on for the children of `parent` (turned on if it may be)."""
    try:
        if "memory" in (parent / "cgroup.subtree_control").read_text().split():
            return True
        if "memory" not in (parent / "cgroup.controllers").read_text().split():
            return False
    except OSError:
        return False
    return _write(parent / "cgroup.subtree_control", "+memory")


def _write(path: Path, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False


def _remove_dir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
