"""Runs inside the sandbox: the forked child isolates itself, then runs one submission's cells.

The child drops its privileges, runs the code cells one at a time and streams the learner's
*outcomes* (plain data) to the parent as `protocol` messages on fd 3. It never sees the reference
implementations or the expected values: those stay in the trusted parent. Everything here runs
in the same process as the learner's code, so nothing it reports is trusted.
"""

from __future__ import annotations

import builtins
import importlib.abc
import os
import resource
import signal
import sys
import time
import types
from dataclasses import dataclass
from typing import Any

from ..items import Outcome, call_case, plain_outcome
from . import protocol
from .notebook import python_source
from .processes import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    PR_SET_PDEATHSIG,
    Cgroup,
    mount,
    prctl,
    unshare,
)

RESULT_FD = 3
CHECKS = "course_utils.assessment.checks"
# Modules the child must not import: the references and hidden cases (assignments), the grader,
# and exercise authoring; `checks` is replaced by a stub whose check() does nothing.
BLOCKED = ("course_utils.assessment.assignments", "course_utils.assessment.grading", CHECKS,
           "course_utils.assessment.authoring")
_MISSING = object()
# Replaced by a private tmpfs in the child's mount namespace: what it leaves there vanishes with it.
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
ISOLATION = ("cgroup", "memory", "ipc", "mounts", "network")
# Bound at import, before any notebook code runs in this process: a notebook that replaces these
# functions must not change how the child reports, measures time or ends.
_write = os.write  # a replaced os.write would lose (or garble) the results written to fd 3
_getpid = os.getpid  # a replaced os.getpid would let a copy made by the learner's fork() report too
_exit = os._exit  # a replaced os._exit would let that copy report, or return the child into the server's loop
_monotonic = time.monotonic  # a replaced clock would stretch the time an item's cases may share
_setitimer = signal.setitimer  # a replaced setitimer would switch off the per-cell alarm


class _Timeout(BaseException):
    """Raised by the per-cell alarm; a BaseException so that `except Exception` does not catch it."""


def _on_alarm(signum, frame):
    raise _Timeout()


@dataclass(frozen=True)
class Sandbox:
    """What the fork server sets up for every child: the worker's cgroup and the directories to hide."""

    cgroup: Cgroup | None = None
    hidden: tuple[str, ...] = ()


def run_child(job_path: str, items: list[protocol.ItemSpec], fds: list[int], sandbox: Sandbox) -> None:
    """The forked child: read its job, isolate itself, run the cells, report, and exit (never returns).

    `fds` are the result pipe, the output pipe and the isolation report pipe to the fork server.
    The job (with the submission's cells) is read here, never in the fork server, whose memory every
    later child inherits.
    """
    code = 70
    try:
        with open(job_path, encoding="utf-8") as f:
            job = protocol.Job.from_json(f.read())
        _isolate(job, fds, sandbox)
        Runner(items, job.cells, job.slice_s).run()
        code = 0
    except BaseException as exc:  # the child's own code failed: say so on stderr
        try:
            _write(2, f"grading child error: {type(exc).__name__}: {exc}\n".encode())
        except BaseException:
            pass
    finally:
        _exit(code)


def _isolate(job: protocol.Job, fds: list[int], sandbox: Sandbox) -> None:
    """New session, stdio on the parent's pipes, cgroup and namespaces, resource limits, scratch cwd, uid."""
    os.setsid()
    result_w, output_w, report_w = fds
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_w, 1)
    os.dup2(output_w, 2)
    os.dup2(result_w, RESULT_FD)
    write_report(report_w, _namespaces(job, sandbox) if job.uid is not None else {})
    os.closerange(RESULT_FD + 1, 65536)  # the report pipe too: nothing after this can write a report
    status = _proc_status()
    timeout = int(job.timeout) + 1
    _limit(resource.RLIMIT_CPU, timeout, timeout + 1)
    _limit(resource.RLIMIT_DATA, status.get("VmData", 0) + job.memory)
    _limit(resource.RLIMIT_AS, status.get("VmSize", 0) + 2 * job.memory)
    _limit(resource.RLIMIT_FSIZE, job.fsize)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 1024)
    if job.nproc:
        _limit(resource.RLIMIT_NPROC, job.nproc)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file raises OSError instead
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(job.scratch)
    os.environ.update({"HOME": job.scratch, "TMPDIR": job.scratch, "MPLCONFIGDIR": job.scratch,
                       "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    uid = job.uid
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _namespaces(job: protocol.Job, sandbox: Sandbox) -> dict[str, bool]:
    """As root: join the worker's cgroup, then new IPC, mount and network namespaces; what took effect."""
    done = {"cgroup": sandbox.cgroup is not None and sandbox.cgroup.join()}
    done["memory"] = done["cgroup"] and sandbox.cgroup.memory is not None
    done["ipc"] = unshare(CLONE_NEWIPC)  # SysV and POSIX IPC objects die with the child
    done["mounts"] = unshare(CLONE_NEWNS) and _private_mounts(job, sandbox.hidden, done["ipc"])
    done["network"] = unshare(CLONE_NEWNET)  # an empty network namespace: no network at all
    return done


def _private_mounts(job: protocol.Job, hidden: tuple[str, ...], own_ipc: bool) -> bool:
    """Private temporary directories, and the course's answers hidden, in this mount namespace only."""
    try:
        before = os.stat(job.scratch)
        mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here is seen outside
        size = f"size={job.memory},nr_inodes=65536"
        for path in PRIVATE_DIRS:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,{size}")
        if own_ipc and os.path.isdir("/dev/mqueue"):
            mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for path in hidden:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0,size=4k")
        _keep_scratch(job, before)
    except OSError as exc:
        _write(2, f"grading child: {exc}\n".encode())
        return False
    return True


def _keep_scratch(job: protocol.Job, before: os.stat_result) -> None:
    """If a private tmpfs now covers the scratch directory, make an empty one at the same path in it."""
    try:
        now = os.stat(job.scratch)
        if (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino):
            return
    except FileNotFoundError:
        pass
    os.makedirs(job.scratch, mode=0o700, exist_ok=True)
    os.chmod(job.scratch, 0o700)
    os.chown(job.scratch, job.uid, job.uid)


def write_report(fd: int, done: dict[str, bool]) -> None:
    """Tell the fork server which isolation took effect (one line, before any learner code runs)."""
    try:
        _write(fd, (",".join(k for k in ISOLATION if done.get(k)) + "\n").encode())
    except OSError:
        pass


def read_report(fd: int) -> dict[str, bool]:
    """The fork server's side of `write_report`: every isolation the child did not report is False."""
    os.set_blocking(fd, False)
    try:
        line = os.read(fd, 256).split(b"\n")[0].decode("ascii", "replace")
    except OSError:
        line = ""
    said = set(line.split(","))
    return {k: k in said for k in ISOLATION}


def _proc_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _limit(kind: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, cur_hard = resource.getrlimit(kind)
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(kind, (soft, hard))


class Refuse(importlib.abc.MetaPathFinder):
    """Refuses imports of the grader and the assignment definitions inside the child."""

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED if b != CHECKS):
            raise ImportError(f"{name} is not available while a submission is graded")
        return None


def _checks_stub() -> types.ModuleType:
    stub = types.ModuleType(CHECKS, "check() does nothing while a submission is graded.")

    def check(name, value=None):
        return None

    stub.check = check
    stub.evaluate = check
    return stub


class Runner:
    """Runs code cells one at a time and streams each graded item's outcomes to the parent."""

    def __init__(self, items: list[protocol.ItemSpec], cells: list[str], slice_s: float):
        self.items, self.cells, self.slice_s = items, cells, max(0.5, slice_s)
        self.pid = _getpid()
        self.seen: dict[str, Any] = {}
        self.last: dict[str, tuple] = {}
        self.ns: dict = {}
        self.cell_errors = 0

    def run(self) -> None:
        ns = self.ns = self._namespace()
        signal.signal(signal.SIGALRM, _on_alarm)
        for index, cell in enumerate(self.cells, start=1):
            self._run_cell(index, cell, ns)
            self._evaluate_changed(ns)
        for item in self.items:
            self._evaluate(item, ns.get(item.name, _MISSING), final=True)
        self._send(protocol.done())

    def _namespace(self) -> dict:
        import course_utils.assessment as assessment

        for name in list(sys.modules):
            if name.startswith(BLOCKED):
                del sys.modules[name]
        for attr in ("assignments", "grading", "authoring"):
            assessment.__dict__.pop(attr, None)
        sys.meta_path.insert(0, Refuse())
        stub = _checks_stub()
        sys.modules[CHECKS] = stub
        assessment.checks = stub
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        display = getattr(sys.modules.get("IPython.display"), "display", None)
        main.__dict__["display"] = display or (lambda *objs, **kw: None)
        sys.modules["__main__"] = main
        sys.argv = ["notebook"]
        return main.__dict__

    def _run_cell(self, index: int, cell: str, ns: dict) -> None:
        source = python_source(cell)
        if source is None:
            return
        try:
            code = compile(source, f"<cell {index}>", "exec")
            self._limited(lambda: exec(code, ns))
        except _Timeout:
            self._cell_error(index, f"stopped after {self.slice_s:.3g} s")
        except BaseException as exc:
            self._cell_error(index, _brief(exc))
        finally:
            self._flush()
            self._only_in_main_process()

    def _evaluate_changed(self, ns: dict) -> None:
        for item in self.items:
            value = ns.get(item.name, _MISSING)
            if value is not _MISSING and value is not self.seen.get(item.name, _MISSING):
                self._evaluate(item, value, final=False)

    def _evaluate(self, item: protocol.ItemSpec, value: Any, final: bool) -> None:
        name, ns = item.name, self.ns
        previous = self.last.get(name)
        if final and previous is not None and previous[0] is value and _unchanged(previous[1], ns):
            # neither the item nor any global name it uses was rebound since it last ran
            self._send({**previous[2], "final": True})
            return
        deps: tuple | None = ()
        if value is _MISSING:
            msg = protocol.item_message(name, final, protocol.MISSING)
        elif item.kind == protocol.ANSWER:
            msg = self._read_answer(name, final, value)
        elif not callable(value):
            msg = protocol.item_message(name, final, protocol.NOT_CALLABLE, type_name=type(value).__name__)
        else:
            deps = _dependencies(value, ns)  # taken before the call, which may rebind globals
            msg = self._call_all(item, final, value)
        self.last[name] = (value, deps, msg)
        self.seen[name] = value
        self._flush()
        self._send(msg)

    def _read_answer(self, name: str, final: bool, value: Any) -> dict:
        try:
            got = self._limited(lambda: self._safe(lambda: plain_outcome(value)))
        except _Timeout:
            return protocol.item_message(name, final, protocol.TIMEOUT, [])
        return protocol.item_message(name, final, protocol.OK, [protocol.outcome(got)])

    def _call_all(self, item: protocol.ItemSpec, final: bool, fn: Any) -> dict:
        outcomes: list[dict] = []
        start = _monotonic()
        state = protocol.OK
        try:
            for args in item.cases:
                got = self._limited(lambda a=args: self._safe(lambda: call_case(fn, a)),
                                    self.slice_s - (_monotonic() - start))
                outcomes.append(protocol.outcome(got))
                if _monotonic() - start > self.slice_s:
                    raise _Timeout()
        except _Timeout:
            state = protocol.TIMEOUT
        finally:
            self._only_in_main_process()
        return protocol.item_message(item.name, final, state, outcomes)

    def _safe(self, produce) -> Outcome:
        try:
            return produce()
        except _Timeout:
            raise
        except BaseException as exc:
            return Outcome(error=_brief(exc))

    def _limited(self, fn, seconds: float | None = None):
        seconds = self.slice_s if seconds is None else seconds
        if seconds <= 0:
            raise _Timeout()
        _setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            _setitimer(signal.ITIMER_REAL, 0)

    def _cell_error(self, index: int, error: str) -> None:
        self.cell_errors += 1
        if self.cell_errors <= 50:
            self._send(protocol.cell_error(index, error))

    def _flush(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass

    def _only_in_main_process(self) -> None:
        if _getpid() != self.pid:  # a copy made by the learner's fork(): it must not report
            _exit(0)

    def _send(self, obj: dict) -> None:
        self._only_in_main_process()
        view = memoryview(protocol.encode_line(obj))
        try:
            while view:
                view = view[_write(RESULT_FD, view):]
        except OSError:
            pass


def _dependencies(fn: Any, ns: dict) -> tuple | None:
    """The global names a notebook function uses, directly or through other notebook functions,
    with the objects bound to them now; None when that cannot be known (not a plain function)."""
    if type(fn) is not types.FunctionType or fn.__globals__ is not ns:
        return None
    names: set[str] = set()
    stack, visited = [fn], set()
    while stack:
        f = stack.pop()
        if id(f) in visited:
            continue
        visited.add(id(f))
        codes = [f.__code__]
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes += [c for c in code.co_consts if type(c) is types.CodeType]
        for name in names:
            v = ns.get(name)
            if type(v) is types.FunctionType and v.__globals__ is ns and id(v) not in visited:
                stack.append(v)
        if len(names) > 2000:
            return None
    return tuple((name, obj, _contents(obj)) for name in sorted(names) for obj in [ns.get(name, _MISSING)])


def _contents(obj: Any) -> Any:
    """What an in-place change would alter: a container's items, a tensor's version counter."""
    kind = type(obj)
    if kind in (dict, list, set, bytearray) and len(obj) > 10_000:
        return object()  # too large to compare: never considered unchanged
    if kind is dict:
        return tuple(x for pair in obj.items() for x in pair)
    if kind in (list, set):
        return tuple(obj)
    if kind is bytearray:
        return bytes(obj)
    version = getattr(obj, "_version", None) if kind.__module__.startswith("torch") else None
    return version if type(version) is int else None


def _unchanged(deps: tuple | None, ns: dict) -> bool:
    """Whether every global a function used is still bound to the same, unmodified object."""
    if deps is None:
        return False
    for name, obj, contents in deps:
        now = ns.get(name, _MISSING)
        if now is not obj:
            return False
        if not _same_contents(contents, _contents(now)):
            return False
    return True


def _same_contents(before: Any, after: Any) -> bool:
    if type(before) is tuple:
        return type(after) is tuple and len(after) == len(before) and \
            all(a is b for a, b in zip(after, before, strict=True))
    if before is None or type(before) in (int, bytes):
        return type(after) is type(before) and after == before
    return False  # a container too large to compare


def _brief(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = type(exc).__name__
    return text[:300]

