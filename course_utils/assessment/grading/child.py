"""Runs inside the sandbox: the forked child isolates itself, then runs one submission's cells.

The child drops its privileges, runs the code cells one at a time and streams the learner's
*outcomes* (plain data) to the parent as `protocol` messages on fd 3. It never sees the reference
implementations or the expected values: those stay in the trusted parent. Everything here runs
in the same process as the learner's code, so nothing it reports is trusted.

It also records, before any cell runs, what the learner's code must not do while an item is graded:
call the item's reference (public course code) or read the course's answers or source. Each such
event is sent at once as an integrity flag (see "Integrity flags" below).
"""

from __future__ import annotations

import _thread
import builtins
import importlib
import importlib.abc
import os
import resource
import signal
import sys
import sysconfig
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..items import Outcome, call_case, figure_outcome, plain_outcome
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
_sigmask = signal.pthread_sigmask  # holds the alarm back while a message is written
_getframe = sys._getframe  # the integrity record reads the stack to know who did what
_current_frames = sys._current_frames
_addaudithook = sys.addaudithook
_realpath, _join, _getcwd = os.path.realpath, os.path.join, os.getcwd
_fspath, _fsdecode, _basename = os.fspath, os.fsdecode, os.path.basename
_O_ACCMODE, _O_WRONLY = os.O_ACCMODE, os.O_WRONLY
_encode_line, _flag_message = protocol.encode_line, protocol.flag


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
        Runner(items, job.cells, job.slice_s, answers=sandbox.hidden).run()
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
            if os.path.isdir(path) and not _holds_code(path):
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


def _holds_code(directory: str) -> bool:
    """Whether `directory` holds what the child may still import (the interpreter, sys.path, the course).

    A course or virtual environment installed under /tmp (e.g. a checkout made with `mktemp -d`) would
    vanish under a private tmpfs there and lazy imports would fail: such a directory stays shared, and
    what the sandbox uid leaves in it is deleted after the run as before.
    """
    top = os.path.realpath(directory)
    course = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    needed = [sys.prefix, sys.base_prefix, sys.exec_prefix, course]
    needed += [p for p in sys.path if p]
    for path in needed:
        real = os.path.realpath(path)
        if real == top or real.startswith(top.rstrip("/") + "/"):
            return True
    return False


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

    def __init__(self, items: list[protocol.ItemSpec], cells: list[str], slice_s: float,
                 answers: tuple[str, ...] = ()):
        """`answers` are the directories with the course's answers (`Sandbox.hidden`): reading them is flagged."""
        self.items, self.cells, self.slice_s = items, cells, max(0.5, slice_s)
        self.answers = answers
        self.pid = _getpid()
        self.seen: dict[str, Any] = {}
        self.last: dict[str, tuple] = {}
        self.ns: dict = {}
        self.cell_errors = 0

    def run(self) -> None:
        ns = self.ns = self._namespace()
        record_integrity(self.items, course_paths(self.answers))
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
        elif item.kind == protocol.FIGURE:
            deps = None  # a figure can change after it was assigned (a later cell draws on it): read it again
            msg = self._read_answer(name, final, value, figure_outcome)
        elif item.kind == protocol.ANSWER:
            msg = self._read_answer(name, final, value, plain_outcome)
        elif not callable(value):
            msg = protocol.item_message(name, final, protocol.NOT_CALLABLE, type_name=type(value).__name__)
        else:
            deps = _dependencies(value, ns)  # taken before the call, which may rebind globals
            msg = self._call_all(item, final, value)
        self.last[name] = (value, deps, msg)
        self.seen[name] = value
        self._flush()
        self._send(msg)

    def _read_answer(self, name: str, final: bool, value: Any, read: Callable[[Any], Outcome]) -> dict:
        """An answer variable's outcome: its plain value, or for a figure the PNG it saves as (`read`)."""
        try:
            got = self._limited(lambda: self._safe(lambda: read(value)))
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
        _send_line(protocol.encode_line(obj))


def _send_line(data: bytes) -> None:
    """Write one message on the result pipe, whole: the per-cell alarm waits until it is written."""
    old = _sigmask(signal.SIG_BLOCK, (signal.SIGALRM,))
    try:
        view = memoryview(data)
        while view:
            view = view[_write(RESULT_FD, view):]
    except OSError:
        pass
    finally:
        _sigmask(signal.SIG_SETMASK, old)


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



# ---------------------------------------------------------------- integrity flags
#
# Records made before any cell runs, each sending a flag at once on the result pipe (a flag sent
# cannot be taken back by later code): calls of an item's reference while that item's cases run,
# reads of the course's answers or source, and new runs of a course module's code (which would
# bring back an unrecorded reference). The item being evaluated is read from the
# stack (the frame of `Runner._call_all`), not from a variable the learner's code could reset.
# Everything here shares the learner's process: it stops the casual copy, not a determined
# attacker (README, "What it does not protect against").

MAX_FLAGS = 100
"""Distinct flags one child sends; the rest are dropped (the first ones already cost the items)."""
ANSWER, SOURCE = "answer", "source"
_MACHINERY = ("traceback.py", "warnings.py", "pydoc.py")
"""Standard-library modules that read a course file to show a line of a traceback, a warning or help()."""


@dataclass(frozen=True)
class CoursePaths:
    """Where the course's files are, and which code is not the learner's."""

    answers: tuple[str, ...]  # never read while grading: assignment definitions, solutions, tests, history
    package: tuple[str, ...]  # the installed course_utils, as imported and resolved
    assessment: tuple[str, ...]  # its assessment/ folder, likewise
    root: str  # the folder above the package: paths in flags are shown from here
    stdlib: tuple[str, ...]
    installed: tuple[str, ...]  # site-packages


def course_paths(answers: tuple[str, ...]) -> CoursePaths:
    """The course's paths in this environment; `answers` as the fork server found them (`answer_dirs`)."""
    import course_utils

    package = os.path.dirname(course_utils.__file__)
    paths = sysconfig.get_paths()
    return CoursePaths(
        answers=tuple(_realpath(a) for a in answers),
        package=_both(package),
        assessment=_both(os.path.join(package, "assessment")),
        root=os.path.dirname(_realpath(package)),
        stdlib=_both(paths["stdlib"], paths["platstdlib"]),
        installed=_both(paths["purelib"], paths["platlib"]))


def _both(*dirs: str) -> tuple[str, ...]:
    """Each folder as given and resolved, with a trailing separator (a prefix test then means 'inside')."""
    return tuple(sorted({os.path.join(p, "") for d in dirs for p in (d, _realpath(d))}))


def record_integrity(items: list[protocol.ItemSpec], paths: CoursePaths) -> None:
    """Wrap each item's reference, and watch every file the process opens and every module it runs, for life."""
    flag = _flagger()
    evaluating = _evaluating(Runner._call_all.__code__, _thread.get_ident())
    wrap_references(items, flag, evaluating, paths)
    _addaudithook(_read_watcher(paths, flag, evaluating, loaded_course_modules()))


def _flagger() -> Callable[[str, str], None]:
    """A function sending each distinct (item, reason) flag once, from whatever process or thread."""
    sent: set[tuple[str, str]] = set()

    def flag(item: str, reason: str) -> None:
        if (item, reason) in sent or len(sent) >= MAX_FLAGS:
            return
        sent.add((item, reason))
        _send_line(_encode_line(_flag_message(item, reason)))

    return flag


def _evaluating(call_all: types.CodeType, main_thread: int) -> Callable[[Any], str | None]:
    """A function naming the item whose cases run now (None while cells run), from a frame and the main thread."""

    def in_stack(frame) -> str | None:
        while frame is not None:
            if frame.f_code is call_all:
                item = frame.f_locals.get("item")
                name = getattr(item, "name", None)
                return name if type(name) is str else None
            frame = frame.f_back
        return None

    def evaluating(frame) -> str | None:
        found = in_stack(frame)
        if found is None and _thread.get_ident() != main_thread:  # a thread the learner's function started
            found = in_stack(_current_frames().get(main_thread))
        return found

    return evaluating


def wrap_references(items: list[protocol.ItemSpec], flag: Callable[[str, str], None],
                    evaluating: Callable[[Any], str | None], paths: CoursePaths) -> dict[str, Callable]:
    """Replace each item's reference, wherever a course module holds it, by a recorder; {name: recorder}.

    Done before any cell runs, so that `from course_utils.likelihood import ...` in any cell gets the
    recorder. A call made while the item's cases run is flagged unless the caller is course code that
    names the reference itself (a course function using it as a building block).
    """
    owners: dict[str, set[str]] = {}
    for item in items:
        if item.kind == protocol.FUNCTION and protocol.is_reference_name(item.reference):
            owners.setdefault(item.reference, set()).add(item.name)
    recorders: dict[str, Callable] = {}
    for name, items_of in owners.items():
        fn = _resolve(name)
        if fn is not None:
            recorders[name] = _recorder(fn, name, frozenset(items_of), flag, evaluating, paths)
            _replace_everywhere(fn, recorders[name])
    return recorders


def _resolve(name: str) -> Callable | None:
    """The module-level function `name` (`course_utils.module.function`), or None when there is none."""
    module_name, _, attr = name.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    return fn if type(fn) is types.FunctionType else None


def _replace_everywhere(fn: Callable, recorder: Callable) -> None:
    """Bind `recorder` in place of `fn` in every course module that holds it (re-exports and `from` imports)."""
    for name, module in list(sys.modules.items()):
        if name != "course_utils" and not name.startswith("course_utils."):
            continue
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is not dict:
            continue
        for attr, value in list(namespace.items()):
            if value is fn:
                namespace[attr] = recorder


def _recorder(fn: types.FunctionType, name: str, items: frozenset[str], flag: Callable[[str, str], None],
              evaluating: Callable[[Any], str | None], paths: CoursePaths) -> Callable:
    """`fn` that flags a call from outside the course while one of `items` is evaluated (its state in closures)."""
    own_name, reason = fn.__name__, f"called {name}"

    def recorded(*args, **kwargs):
        try:
            caller = _getframe(1)
            code = caller.f_code
            internal = code.co_filename.startswith(paths.package) and own_name in code.co_names \
                and not code.co_filename.startswith(paths.assessment)
            if not internal:
                item = evaluating(caller)
                if item in items:
                    flag(item, reason)
        except Exception:  # recording must never change what the call does
            pass
        return fn(*args, **kwargs)

    for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(recorded, attr, getattr(fn, attr))
    recorded.__dict__.update(fn.__dict__)
    try:
        import inspect

        recorded.__signature__ = inspect.signature(fn)
    except (TypeError, ValueError):
        pass
    return recorded


def loaded_course_modules() -> dict[str, str]:
    """The source file of each course module loaded now → its name (running one again would undo the recorders)."""
    found = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if (name == "course_utils" or name.startswith("course_utils.")) and type(file) is str:
            found[file] = name
    return found


def _read_watcher(paths: CoursePaths, flag: Callable[[str, str], None], evaluating: Callable[[Any], str | None],
                  loaded: dict[str, str]) -> Callable[[str, tuple], None]:
    """An audit hook flagging each read of the course's answers (by anyone) or source (by the learner's code),
    and each new run of a course module's code (`importlib.reload`, or an import after removing it from
    `sys.modules`), which would bring back the references unrecorded.

    Opens that only write are ignored; an open the sandbox then denies is still flagged (the audit event
    comes first). The flag names the item being evaluated, or the notebook while cells run.
    """

    def watch(event: str, args: tuple) -> None:
        if event == "exec":
            try:
                code = args[0]
                if type(code) is types.CodeType and code.co_filename in loaded:
                    flag(evaluating(_getframe(1)) or protocol.NOTEBOOK, f"reloaded {loaded[code.co_filename]}")
            except Exception:
                pass
            return
        if event != "open":
            return
        try:
            path, flags = args[0], args[2] if len(args) > 2 else 0
            if type(flags) is int and flags & _O_ACCMODE == _O_WRONLY:
                return
            found = course_file(path, paths)
            if found is None:
                return
            kind, shown = found
            frame = _getframe(1)
            if kind == SOURCE and not learner_opened(frame, paths):
                return
            flag(evaluating(frame) or protocol.NOTEBOOK, f"read {shown}")
        except Exception:  # watching must never change what the open does
            return

    return watch


def course_file(path: Any, paths: CoursePaths) -> tuple[str, str] | None:
    """(ANSWER or SOURCE, the path shown from the course's root) for a path opened, else None.

    SOURCE: anything under the package's assessment/, or a module of the package (.py, .pyc).
    """
    if type(path) is int:
        return None
    full = _realpath(_join(_getcwd(), _fsdecode(_fspath(path))))
    shown = full[len(paths.root) + 1:] if full.startswith(paths.root + "/") else full
    if any(full == a or full.startswith(a + "/") for a in paths.answers):
        return ANSWER, shown
    if full.startswith(paths.assessment) or full.startswith(paths.package) and full.endswith((".py", ".pyc")):
        return SOURCE, shown
    return None


def learner_opened(frame, paths: CoursePaths) -> bool:
    """Whether the nearest caller outside the standard library is the learner's code.

    Reads by installed libraries, by the course itself, by the import system and by the standard
    library's traceback, warnings and help() machinery are not the learner's.
    """
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            return False
        if filename.startswith(paths.package) or filename.startswith(paths.installed):
            return False
        if filename.startswith(paths.stdlib) or filename.startswith("<frozen "):
            if _basename(filename) in _MACHINERY:
                return False
            frame = frame.f_back
            continue
        return True
    return False
