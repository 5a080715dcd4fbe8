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

from . import protocol
from .child import BLOCKED, CHECKS, Refuse, run_child
from .processes import (
    PR_SET_CHILD_SUBREAPER,
    PR_SET_PDEATHSIG,
    children_of,
    kill_group,
    kill_uid,
    prctl,
)


def serve(sock_fd: int, warm_up: bool = True) -> None:
    """Fork server main loop: receive a job and two pipe fds, fork a child, report how it ended.

    `warm_up` runs once what costs a second on first use in every child; worth it when this
    server will fork more than one child.
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    _preimport(warm_up)
    sock = socket.socket(fileno=sock_fd)
    try:
        _send_msg(sock, protocol.ready())
    except OSError:  # the grader stopped before we were ready (e.g. a usage error)
        return
    specs: dict[str, list[protocol.ItemSpec]] = {}
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        except OSError:
            return
        if not data:
            return
        with open(protocol.job_path(data), encoding="utf-8") as f:
            job = protocol.Job.from_json(f.read())
        if job.spec not in specs:
            with open(job.spec, "rb") as f:  # written by the trusted parent: names and case arguments
                specs[job.spec] = pickle.load(f)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            sock.close()
            run_child(job, specs[job.spec], fds)  # never returns
        for fd in fds:
            os.close(fd)
        _send_msg(sock, protocol.started(pid))
        _send_msg(sock, protocol.exited(_supervise(pid, job)))


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


def _supervise(pid: int, job: protocol.Job) -> protocol.Exited:
    """Wait for the child up to its time limit, kill it and everything it started, report."""
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
    kill_group(pid)
    if job.uid is not None:
        kill_uid(job.uid)  # daemons and double forks of the submission's private uid
    _reap_descendants()
    signalled = os.WIFSIGNALED(status)
    return protocol.Exited(elapsed=elapsed, timed_out=timed_out, maxrss_kb=usage.ru_maxrss,
                           cpu_s=usage.ru_utime + usage.ru_stime,
                           signal=os.WTERMSIG(status) if signalled else None,
                           exit_code=None if signalled else os.WEXITSTATUS(status))


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
