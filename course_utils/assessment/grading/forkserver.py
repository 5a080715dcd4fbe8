"""The fork server: imports torch, numpy and matplotlib once, then forks one fresh child per submission.

Trusted code, run by the grader as a separate process (`parent.Worker` starts it), never in the
same process as a learner's code: each child it forks becomes `child.run_child` at once. It reports
how each child ended and kills whatever the child left behind.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import protocol
from .child import BLOCKED, CHECKS, Refuse, Sandbox, read_report, run_child
from .processes import (
    CLONE_NEWPID,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_PDEATHSIG,
    Cgroup,
    children_of,
    kill_group,
    kill_uid,
    prctl,
    setns,
    unshare,
)


def serve(sock_fd: int, warm_up: bool = True, cgroup: str = "") -> None:
    """Fork server main loop: receive a job and two pipe fds, fork a child, report how it ended.

    `warm_up` runs once what costs a second on first use in every child; worth it when this
    server will fork more than one child. `cgroup` is the worker's `Cgroup.to_json()` ("" for none).
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    _preimport(warm_up)
    sandbox = Sandbox(Cgroup.from_json(cgroup), answer_dirs())
    sock = socket.socket(fileno=sock_fd)
    try:
        _send_msg(sock, protocol.ready())
    except OSError:  # the grader stopped before we were ready (e.g. a usage error)
        return
    specs: dict[str, list[protocol.ItemSpec]] = {}
    memory = None
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        except OSError:
            return
        if not data:
            return
        path = protocol.job_path(data)
        with open(protocol.supervision_path(path), encoding="utf-8") as f:  # the job without its cells
            job = protocol.Job.from_json(f.read())
        if job.spec not in specs:
            with open(job.spec, "rb") as f:  # written by the trusted parent: names and case arguments
                specs[job.spec] = pickle.load(f)
        if sandbox.cgroup is not None and job.memory != memory:
            memory = job.memory if sandbox.cgroup.limit_memory(job.memory) else None
        child = _fork(sock, path, specs[job.spec], fds, sandbox)
        _send_msg(sock, protocol.started(child.pid))
        _send_msg(sock, protocol.exited(_supervise(child, job, sandbox)))


@dataclass(frozen=True)
class Forked:
    """A child just forked: its pid, the read end of its isolation report, its cgroup's OOM kills before it."""

    pid: int
    report_r: int
    oom_before: int


def _fork(sock: socket.socket, job_path: str, spec: list[protocol.ItemSpec], fds: list[int],
          sandbox: Sandbox) -> Forked:
    """Fork the child of one job (in a PID namespace of its own where no cgroup can kill it all)."""
    report_r, report_w = os.pipe()
    oom_before = sandbox.cgroup.oom_kills() if sandbox.cgroup is not None else 0
    own_pid_ns = _own_pid_namespace() if sandbox.cgroup is None or sandbox.cgroup.kill is None else None
    new_pid_ns = own_pid_ns is not None and os.geteuid() == 0 and unshare(CLONE_NEWPID)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        sock.close()
        os.close(report_r)
        run_child(job_path, spec, [*fds, report_w], sandbox)  # never returns
    if new_pid_ns:
        setns(own_pid_ns, CLONE_NEWPID)  # later children of this server start in its own namespace
    for fd in [*fds, report_w]:
        os.close(fd)
    return Forked(pid, report_r, oom_before)


_pid_ns_fd: int | None = None


def _own_pid_namespace() -> int | None:
    global _pid_ns_fd
    if _pid_ns_fd is None:
        try:
            _pid_ns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
    return _pid_ns_fd


def answer_dirs() -> tuple[str, ...]:
    """Directories with the course's answers, hidden from the child: the assignment definitions, and in
    a checkout (an editable install) its solutions, tests and git history."""
    import course_utils

    package = Path(course_utils.__file__).resolve().parent
    dirs = [package / "assessment" / "assignments"]
    if (package.parent / "pyproject.toml").is_file():
        dirs += [package.parent / name for name in ("solutions", "tests", ".git")]
    return tuple(str(d) for d in dirs if d.is_dir())


def _send_msg(sock: socket.socket, obj: dict) -> None:
    sock.sendall(json.dumps(obj).encode() + b"\n")


def _preimport(warm_up: bool = True) -> None:
    """Import what notebooks use, once, so each forked child starts warm.

    The assignment definitions (with their references) must never be in this process's memory,
    which every child inherits: a course module that would import them is not preloaded.
    """
    sys.meta_path.insert(0, Refuse())
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
        if full.startswith(BLOCKED):
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
        if name.startswith(("course_utils.assessment.assignments", CHECKS)):
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


def _supervise(child: Forked, job: protocol.Job, sandbox: Sandbox) -> protocol.Exited:
    """Wait for the child up to its time limit, kill it and everything it started, report."""
    pid = child.pid
    start = time.monotonic()
    deadline = start + job.timeout
    timed_out = False
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        done, status, usage = _try_wait(pid)
        if done:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            kill_group(pid)
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
    elapsed = time.monotonic() - start
    _kill_leftovers(pid, job, sandbox)
    report = read_report(child.report_r)
    os.close(child.report_r)
    memory_exceeded = sandbox.cgroup is not None and sandbox.cgroup.oom_kills() > child.oom_before
    signalled = os.WIFSIGNALED(status)
    return protocol.Exited(elapsed=elapsed, timed_out=timed_out, maxrss_kb=usage.ru_maxrss,
                           cpu_s=usage.ru_utime + usage.ru_stime,
                           signal=os.WTERMSIG(status) if signalled else None,
                           exit_code=None if signalled else os.WEXITSTATUS(status),
                           network_isolated=report["network"], memory_exceeded=memory_exceeded)


def _kill_leftovers(pid: int, job: protocol.Job, sandbox: Sandbox) -> None:
    """Kill everything the child started: its group, its cgroup, its uid, this server's adopted children.

    Never as the sandbox uid (a process of that uid could stop the killer), each step bounded in time.
    """
    kill_group(pid)
    if sandbox.cgroup is not None:
        sandbox.cgroup.empty(reap=_reap_zombies)
    if job.uid is not None:
        kill_uid(job.uid, reap=_reap_zombies)  # daemons and double forks of the submission's private uid
    _reap_descendants()


def _try_wait(pid: int):
    got, status, usage = os.wait4(pid, os.WNOHANG)
    return got == pid, status, usage


def _reap_descendants() -> None:
    """Kill and reap every process that was re-parented to this fork server (a subreaper)."""
    me = os.getpid()
    for _ in range(200):
        _reap_zombies()
        children = children_of(me)
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


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:] != ["--no-warm-up"])
