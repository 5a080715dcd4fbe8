"""The untrusted side of grading: a fork server, and the child that runs one submission's cells.

The fork server (`serve`) imports torch, numpy and matplotlib once, then forks one fresh child
per submission. The child drops its privileges, runs the code cells one at a time and streams
the learner's *outcomes* (plain data) as JSON lines on fd 3. It never sees the reference
implementations or the expected values: those stay in the trusted parent.
"""

from __future__ import annotations

import builtins
import ctypes
import importlib
import importlib.abc
import json
import os
import pickle
import resource
import select
import signal
import socket
import sys
import time
import types
from typing import Any

from ..items import Outcome, call_case, plain_outcome
from .notebook import python_source

RESULT_FD = 3
_CHECKS = "course_utils.assessment.checks"
_BLOCKED = ("course_utils.assessment.assignments", "course_utils.assessment.grading", _CHECKS,
            "course_utils.assessment.authoring")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWNET = 0x40000000
_MISSING = object()
_dumps = json.dumps
_write = os.write
_getpid = os.getpid
_exit = os._exit
_monotonic = time.monotonic


class _Timeout(BaseException):
    """Raised by the per-cell alarm; a BaseException so that `except Exception` does not catch it."""


def _on_alarm(signum, frame):
    raise _Timeout()


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _unshare(flags: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).unshare(flags) == 0
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------- the fork server

def serve(sock_fd: int, warm_up: bool = True) -> None:
    """Fork server main loop: receive a job and two pipe fds, fork a child, report how it ended.

    `warm_up` runs once what costs a second on first use in every child; worth it when this
    server will fork more than one child.
    """
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    _preimport(warm_up)
    sock = socket.socket(fileno=sock_fd)
    try:
        _send_msg(sock, {"ready": True})
    except OSError:  # the grader stopped before we were ready (e.g. a usage error)
        return
    specs: dict[str, list[dict]] = {}
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        except OSError:
            return
        if not data:
            return
        job = json.loads(data)
        with open(job["job"], encoding="utf-8") as f:
            job.update(json.load(f))
        if job["spec"] not in specs:
            with open(job["spec"], "rb") as f:  # written by the trusted parent: names and case arguments
                specs[job["spec"]] = pickle.load(f)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(job, specs[job["spec"]], fds)  # never returns
        for fd in fds:
            os.close(fd)
        _send_msg(sock, {"pid": pid})
        _send_msg(sock, _supervise(pid, job))


def _send_msg(sock: socket.socket, obj: dict) -> None:
    sock.sendall(_dumps(obj).encode() + b"\n")


def _preimport(warm_up: bool = True) -> None:
    """Import what notebooks use, once, so each forked child starts warm.

    The assignment definitions (with their references) must never be in this process's memory,
    which every child inherits: a course module that would import them is not preloaded.
    """
    sys.meta_path.insert(0, _Refuse())
    import matplotlib

    matplotlib.use("Agg")
    import pkgutil

    import course_utils

    for name in ("numpy", "torch", "matplotlib.pyplot", "tqdm.auto", "ipywidgets", "IPython.display"):
        try:
            importlib.import_module(name)
        except Exception:  # optional extras; a notebook that needs them will say so itself
            pass
    for mod in pkgutil.walk_packages(course_utils.__path__, "course_utils.",
                                     onerror=lambda name: None):
        full = mod.name
        if full.startswith(_BLOCKED):
            continue
        try:
            importlib.import_module(full)
        except Exception:
            pass
    import torch

    torch.set_num_threads(1)
    if warm_up:
        _warm_up()
    if os.geteuid() == 0 and stdlib_hidden():
        _preimport_stdlib()
    for name in list(sys.modules):
        if name.startswith(("course_utils.assessment.assignments", _CHECKS)):
            del sys.modules[name]
    import gc

    gc.collect()
    gc.freeze()  # children inherit these objects untouched by their garbage collector: less copy-on-write


def _warm_up() -> None:
    """Run once what costs a second on first use (torch.optim imports torch._dynamo; fonts load)."""
    try:
        import matplotlib.pyplot as plt
        import torch

        model = torch.nn.Linear(3, 2)
        for opt in (torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.Adam(model.parameters())):
            loss = torch.nn.functional.cross_entropy(model(torch.ones(4, 3)), torch.tensor([0, 1, 0, 1]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("x")
        fig.canvas.draw()
        plt.close(fig)
    except Exception:  # warming up is only an optimisation
        pass


_STDLIB_SKIP = {"antigravity", "this", "__hello__", "__phello__", "idlelib", "tkinter", "turtle", "turtledemo",
                "test", "lib2to3", "ensurepip", "venv", "readline", "curses", "pydoc_data", "xxlimited",
                "xxlimited_35", "xxsubtype"}


def stdlib_hidden() -> bool:
    """Whether an unprivileged uid cannot read Python's standard library (e.g. an install under /root)."""
    import stat
    import sysconfig

    path = os.path.realpath(sysconfig.get_paths()["stdlib"])
    parts = [path] + [os.path.dirname(path)]
    while parts[-1] != os.path.dirname(parts[-1]):
        parts.append(os.path.dirname(parts[-1]))
    try:
        return any(not os.stat(p).st_mode & stat.S_IXOTH for p in parts) or \
            not os.stat(path).st_mode & stat.S_IROTH
    except OSError:
        return True


def _preimport_stdlib() -> None:
    """Import the whole standard library, for children that will not be able to read it from disk."""
    import pkgutil
    import warnings

    def wanted(name: str) -> bool:
        parts = name.split(".")
        return not ({"__main__", "test", "tests", "idle_test"} & set(parts)) and parts[0] not in _STDLIB_SKIP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names):
            if not wanted(name):
                continue
            try:
                mod = importlib.import_module(name)
            except BaseException:
                continue
            for info in pkgutil.walk_packages(getattr(mod, "__path__", []), name + ".", onerror=lambda n: None):
                if wanted(info.name):
                    try:
                        importlib.import_module(info.name)
                    except BaseException:
                        pass
        try:
            importlib.import_module("pydoc_data.topics")
        except BaseException:
            pass


def _supervise(pid: int, job: dict) -> dict:
    """Wait for the child up to its time limit, kill it and everything it started, report."""
    start = _monotonic()
    deadline = start + float(job["timeout"])
    timed_out = False
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        done, status, usage = _try_wait(pid)
        if done:
            break
        left = deadline - _monotonic()
        if left <= 0:
            timed_out = True
            _kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, usage = os.wait4(pid, 0)
            break
        if pidfd is not None:
            select.select([pidfd], [], [], min(left, 1.0))
        else:
            time.sleep(min(left, 0.005))
    if pidfd is not None:
        os.close(pidfd)
    elapsed = _monotonic() - start
    _kill_group(pid)
    _reap_uid(job.get("uid"))
    _reap_descendants()
    report = {"elapsed": elapsed, "timed_out": timed_out, "maxrss_kb": usage.ru_maxrss,
              "cpu_s": usage.ru_utime + usage.ru_stime}
    if os.WIFSIGNALED(status):
        report["signal"] = os.WTERMSIG(status)
    else:
        report["exit_code"] = os.WEXITSTATUS(status)
    return report


def _try_wait(pid: int):
    got, status, usage = os.wait4(pid, os.WNOHANG)
    return got == pid, status, usage


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_uid(uid: int | None) -> None:
    """As root: kill every process of the submission's uid (daemons and double forks included)."""
    if uid is None or not _pids_of_uid(uid):  # the common case, checked without forking
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(1000):
                os.kill(-1, signal.SIGKILL)  # every process of this uid except this one
        except ProcessLookupError:
            pass
        except BaseException:
            _exit(1)
        _exit(0)
    os.waitpid(pid, 0)


def _pids_of_uid(uid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _reap_descendants() -> None:
    """Kill and reap every process that was re-parented to this fork server (a subreaper)."""
    me = os.getpid()
    for _ in range(200):
        _reap_zombies()
        children = _children_of(me)
        if not children:
            return
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.002)


def _reap_zombies() -> None:
    while True:
        try:
            got, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if got == 0:
            return


def _children_of(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == ppid:
            out.append(int(entry))
    return out


# ---------------------------------------------------------------- the child

def _child(job: dict, items: list[dict], fds: list[int]) -> None:
    code = 70
    try:
        _isolate(job, fds)
        Runner(items, job["cells"], float(job["slice"])).run()
        code = 0
    except BaseException as exc:  # the harness itself failed: say so on stderr
        try:
            _write(2, f"grading harness error: {type(exc).__name__}: {exc}\n".encode())
        except BaseException:
            pass
    finally:
        _exit(code)


def _isolate(job: dict, fds: list[int]) -> None:
    """New session, stdio on the parent's pipes, resource limits, scratch cwd, unprivileged uid."""
    os.setsid()
    result_w, output_w = fds
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_w, 1)
    os.dup2(output_w, 2)
    os.dup2(result_w, RESULT_FD)
    os.closerange(RESULT_FD + 1, 65536)
    status = _proc_status()
    timeout = int(float(job["timeout"])) + 1
    limits = job["limits"]
    _limit(resource.RLIMIT_CPU, timeout, timeout + 1)
    _limit(resource.RLIMIT_DATA, status.get("VmData", 0) + limits["memory"])
    _limit(resource.RLIMIT_AS, status.get("VmSize", 0) + 2 * limits["memory"])
    _limit(resource.RLIMIT_FSIZE, limits["fsize"])
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 1024)
    if limits.get("nproc"):
        _limit(resource.RLIMIT_NPROC, limits["nproc"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file raises OSError instead
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(job["scratch"])
    os.environ.update({"HOME": job["scratch"], "TMPDIR": job["scratch"], "MPLCONFIGDIR": job["scratch"],
                       "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    uid = job.get("uid")
    if uid is not None:
        _unshare(_CLONE_NEWNET)  # an empty network namespace: no network at all
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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


class _Refuse(importlib.abc.MetaPathFinder):
    """Refuses imports of the grader and the assignment definitions inside the child."""

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in _BLOCKED if b != _CHECKS):
            raise ImportError(f"{name} is not available while a submission is graded")
        return None


def _checks_stub() -> types.ModuleType:
    stub = types.ModuleType(_CHECKS, "check() does nothing while a submission is graded.")

    def check(name, value=None):
        return None

    stub.check = check
    stub.evaluate = check
    return stub


class Runner:
    """Runs code cells one at a time and streams each graded item's outcomes to the parent."""

    def __init__(self, items: list[dict], cells: list[str], slice_s: float):
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
            self._evaluate(item, ns.get(item["name"], _MISSING), final=True)
        self._send({"done": True})

    def _namespace(self) -> dict:
        import course_utils.assessment as assessment

        for name in list(sys.modules):
            if name.startswith(_BLOCKED):
                del sys.modules[name]
        for attr in ("assignments", "grading", "authoring"):
            assessment.__dict__.pop(attr, None)
        sys.meta_path.insert(0, _Refuse())
        stub = _checks_stub()
        sys.modules[_CHECKS] = stub
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
            value = ns.get(item["name"], _MISSING)
            if value is not _MISSING and value is not self.seen.get(item["name"], _MISSING):
                self._evaluate(item, value, final=False)

    def _evaluate(self, item: dict, value: Any, final: bool) -> None:
        name = item["name"]
        ns = self.ns
        previous = self.last.get(name)
        if final and previous is not None and previous[0] is value and _unchanged(previous[1], ns):
            # neither the item nor any global name it uses was rebound since it last ran
            self._send(dict(previous[2], final=True))
            return
        msg: dict[str, Any] = {"item": name, "final": final}
        if value is _MISSING:
            msg["state"] = "missing"
        elif item["kind"] == "answer":
            msg["state"] = "ok"
            try:
                msg["outcomes"] = [self._limited(lambda: self._safe(lambda: plain_outcome(value).to_json()))]
            except _Timeout:
                msg["state"] = "timeout"
        elif not callable(value):
            msg["state"] = "not callable"
            msg["type"] = type(value).__name__[:60]
        else:
            deps = _dependencies(value, ns)  # taken before the call, which may rebind globals
            msg.update(self._call_all(item, value))
            self.last[name] = (value, deps, msg)
        if item["kind"] == "answer" or value is _MISSING:
            self.last[name] = (value, (), msg)
        self.seen[name] = value
        self._flush()
        self._send(msg)

    def _call_all(self, item: dict, fn: Any) -> dict:
        outcomes = []
        start = _monotonic()
        try:
            for args in item["cases"]:
                outcomes.append(self._limited(lambda a=args: self._safe(lambda: call_case(fn, a).to_json()),
                                              self.slice_s - (_monotonic() - start)))
                if _monotonic() - start > self.slice_s:
                    raise _Timeout()
        except _Timeout:
            return {"state": "timeout", "outcomes": outcomes}
        finally:
            self._only_in_main_process()
        return {"state": "ok", "outcomes": outcomes}

    def _safe(self, produce) -> dict:
        try:
            return produce()
        except _Timeout:
            raise
        except BaseException as exc:
            return Outcome(error=_brief(exc)).to_json()

    def _limited(self, fn, seconds: float | None = None):
        seconds = self.slice_s if seconds is None else seconds
        if seconds <= 0:
            raise _Timeout()
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _cell_error(self, index: int, error: str) -> None:
        self.cell_errors += 1
        if self.cell_errors <= 50:
            self._send({"cell": index, "error": error})

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
        data = (_dumps(obj, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
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


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:] != ["--no-warm-up"])
