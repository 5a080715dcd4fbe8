"""The grader's trusted side of the sandbox: worker slots that each start a fork server, and what comes back.

One fork server per worker slot, one fresh child per submission. Everything the child sends is
untrusted data: it is read in bounded lines and checked by `protocol.decode_line`.

As root, each slot claims a private unprivileged uid (locked with flock so that concurrent
graders never share one); the child runs as that uid, and after it ends every process of that
uid is killed. Without root, the child keeps the grader's uid and relies on resource limits,
its process group and the fork server acting as subreaper.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import pickle
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol
from .processes import PR_SET_THP_DISABLE, Cgroup, kill_group, kill_uid, living_pids_of_uid, pids_of_uid, threads_of

UID_RANGE = range(61000, 62000)
LOCK_DIR = Path(tempfile.gettempdir()) / "course-grade-uids"
MAX_RESULT_BYTES = 16 * 2**20
"""All a child may send on the result pipe. A correct chapter sends well under 1 MB in all (chapter 05's
largest message is 18 kB), even when every cell redefines every item."""
MAX_LINE_BYTES = 2**20
"""One message from the child, bounded before it is decoded: a line longer than this is dropped unread."""
GRADER_CPU_SHARE = 0.25
"""The grader's own CPU time for reading one child's pipes, as a share of the submission's time limit;
a child that costs more (or sends more than MAX_RESULT_BYTES) is stopped with the status `result limit`."""
KEEP_OUTPUT_HEAD = 16 * 2**10
KEEP_OUTPUT_TAIL = 4 * 2**10
_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission."""

    timeout: float
    memory: int = 2 * 2**30
    fsize: int = 64 * 2**20
    nproc: int = 64

    @property
    def cell_slice(self) -> float:
        """Time for one cell, or for one item's cases, before its alarm fires."""
        return max(1.0, self.timeout / 2)


@dataclass
class RunResult:
    """What came back from one child: its streamed messages, its output, how it ended."""

    items: dict[str, protocol.ItemReport] = field(default_factory=dict)
    final: set[str] = field(default_factory=set)
    cell_errors: list[tuple[int, str]] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)  # item (or protocol.NOTEBOOK) → reasons
    done: bool = False
    output_head: bytes = b""
    output_tail: bytes = b""
    output_bytes: int = 0
    result_bytes: int = 0
    protocol_errors: int = 0
    exit: protocol.Exited | None = None
    elapsed: float = 0.0
    expect: dict[str, int] | None = None  # protocol.outcome_counts: the items and outcomes accepted
    overflow: bool = False  # the child sent too much, or cost the grader too much time to read
    grader_cpu_s: float = 0.0  # the grader's CPU time spent reading this child's pipes
    skipping_line: bool = False  # the rest of a too-long line is being dropped

    def output_text(self) -> str:
        text = self.output_head.decode("utf-8", "replace")
        if self.output_bytes > len(self.output_head):
            text += f"\n[… {self.output_bytes - len(self.output_head) - len(self.output_tail)} bytes left out …]\n"
            text += self.output_tail.decode("utf-8", "replace")
        return text


def is_root() -> bool:
    return os.geteuid() == 0


class Worker:
    """One worker slot: a fork server process that has imported torch, and (as root) a private uid."""

    def __init__(self, workdir: Path, warm_up: bool = True, notices: set[str] | None = None):
        """`notices` collects the warnings already printed for this batch (shared by a pool's workers)."""
        self.workdir, self.warm_up = workdir, warm_up
        self.notices = set() if notices is None else notices
        self.uid: int | None = None
        self.cgroup: Cgroup | None = None
        self._lock_fd: int | None = None
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._jobs = 0
        if is_root():
            self.uid, self._lock_fd = _claim_uid()
            self.cgroup = Cgroup.create(f"course-grade-{os.getpid()}-{self.uid}")

    # -- fork server lifecycle
    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
        # No transparent huge pages in the fork server (set before anything is imported): a child
        # writing to a shared 2 MB page copies or splits it; children ran ~25 % slower with them.
        code = (f"import ctypes, sys; ctypes.CDLL(None).prctl({PR_SET_THP_DISABLE}, 1, 0, 0, 0)\n"
                "from course_utils.assessment.grading.forkserver import serve; "
                "serve(int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3])")
        cgroup = self.cgroup.to_json() if self.cgroup is not None else ""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code, str(child_sock.fileno()), "1" if self.warm_up else "0", cgroup],
            pass_fds=[child_sock.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env=env, cwd=str(self.workdir), start_new_session=True)
        child_sock.close()
        self._sock, self._buffer = parent_sock, b""

    def wait_ready(self) -> None:
        ready = self._read_message(time.monotonic() + _START_TIMEOUT_S)
        if not isinstance(ready, protocol.Ready):
            self.stop()
            raise RuntimeError("the grading fork server did not start (see the messages above)")

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                kill_group(self._proc.pid)
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        self.stop()
        if self.cgroup is not None:  # the fork server empties it after each child; this covers a lost one
            self.cgroup.empty()
            self.cgroup.remove()
        if self.uid is not None:
            kill_uid(self.uid)
            _remove_files_of(self.uid)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- one submission
    def run(self, cells: list[str], limits: Limits, spec: Path, expect: dict[str, int] | None = None) -> RunResult:
        """Run one submission's code cells in a fresh child; always returns, whatever the child did.

        `spec` is the pickled `Plan.child_spec()` of the assignment (`Pool.spec`), readable by root only;
        `expect` (`protocol.outcome_counts` of that spec) drops reports on other items and extra outcomes.
        """
        if self._proc is None or self._proc.poll() is not None:
            self.stop()
            self.start()
        self._free_uid()
        self._jobs += 1
        scratch = self.workdir / f"scratch-{os.getpid()}-{id(self)}-{self._jobs}"
        scratch.mkdir(mode=0o700)
        jobs_dir = self.workdir / "jobs"
        job_path = jobs_dir / f"{scratch.name}.json"
        job = protocol.Job(cells=cells, spec=str(spec), timeout=limits.timeout, slice_s=limits.cell_slice,
                           scratch=str(scratch), uid=self.uid, memory=limits.memory, fsize=limits.fsize,
                           nproc=limits.nproc if self.uid is not None else _nproc_for_own_uid())
        job_path.write_text(job.to_json(), encoding="utf-8")  # read by the child only
        limits_path = Path(protocol.supervision_path(str(job_path)))
        limits_path.write_text(dataclasses.replace(job, cells=[]).to_json(), encoding="utf-8")
        if self.uid is not None:
            os.chown(scratch, self.uid, self.uid)
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        run = RunResult(expect=expect)
        try:
            try:
                socket.send_fds(self._sock, [protocol.job_request(str(job_path))], [result_w, output_w])
            finally:  # closed exactly once: another thread may reuse these numbers right away
                os.close(result_w)
                os.close(output_w)
            self._collect(run, result_r, output_r, limits)
        finally:
            os.close(result_r)
            os.close(output_r)
            _quietly(lambda: job_path.unlink(missing_ok=True))
            _quietly(lambda: limits_path.unlink(missing_ok=True))
            remove_tree(scratch)
            if self.uid is not None:
                _remove_files_of(self.uid)
        self._warn_about(run.exit)
        return run

    def _free_uid(self) -> None:
        """Never hand a uid to the next submission while a process of it lives: kill them, or take another uid."""
        if self.uid is None or not living_pids_of_uid(self.uid) or kill_uid(self.uid):
            return
        old, old_fd = self.uid, self._lock_fd
        self.uid, self._lock_fd = _claim_uid()
        os.close(old_fd)
        print(f"course-grade: warning: processes of the sandbox uid {old} could not be killed; "
              f"grading goes on as uid {self.uid}", file=sys.stderr)

    def _warn_about(self, exit_: protocol.Exited | None) -> None:
        """Warn once per batch when a child kept the network (it could not get a namespace of its own)."""
        from_server = exit_ is not None and not exit_.worker_died and exit_.elapsed > 0
        if from_server and not exit_.network_isolated and "network" not in self.notices:
            self.notices.add("network")
            print("course-grade: warning: the sandbox could not take the network away (a network namespace "
                  "needs root with CAP_SYS_ADMIN); notebooks in this batch could use the network "
                  "(see extra_data.network_isolated in each result)", file=sys.stderr)

    def _collect(self, run: RunResult, result_r: int, output_r: int, limits: Limits) -> None:
        sel = selectors.DefaultSelector()
        sel.register(result_r, selectors.EVENT_READ, "result")
        sel.register(output_r, selectors.EVENT_READ, "output")
        sel.register(self._sock, selectors.EVENT_READ, "control")
        start = time.monotonic()
        backstop = start + limits.timeout + 20.0
        pending = bytearray()
        child_pid = None
        open_fds = 2
        drain_until = None
        stopped = False
        while True:
            now = time.monotonic()
            if drain_until is not None and (open_fds == 0 or now > drain_until):
                break
            if now > backstop:  # the fork server itself is stuck: replace it
                run.exit = protocol.Exited(timed_out=True)
                if child_pid:
                    kill_group(child_pid)
                self.abandon()
                break
            wait = min(backstop, drain_until or backstop) - now
            for key, _ in sel.select(timeout=max(0.0, min(wait, 1.0))):
                if key.data == "control":
                    msgs, alive = self._read_available()
                    for msg in msgs:
                        if isinstance(msg, protocol.Started):
                            child_pid = msg.pid
                        elif isinstance(msg, protocol.Exited):
                            run.exit = msg
                            drain_until = time.monotonic() + 2.0
                    if not alive:  # the fork server died: the child goes with it
                        sel.unregister(self._sock)
                        if child_pid:
                            kill_group(child_pid)
                        run.exit = run.exit or protocol.Exited(worker_died=True)
                        self.abandon()
                        drain_until = drain_until or time.monotonic() + 2.0
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                    open_fds -= 1
                    continue
                cpu = time.thread_time()
                if key.data == "output":
                    _keep_output(run, chunk)
                else:
                    _take_lines(run, pending, chunk)
                run.grader_cpu_s += time.thread_time() - cpu
                if run.grader_cpu_s > GRADER_CPU_SHARE * limits.timeout:
                    run.overflow = True
                if run.overflow and child_pid and not stopped:  # what it sends is no longer read
                    kill_group(child_pid)
                    stopped = True
        sel.close()
        run.elapsed = time.monotonic() - start

    def _read_available(self) -> tuple[list, bool]:
        """The fork server's complete messages received so far, and whether it is still there."""
        try:
            data = self._sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            return [], False
        self._buffer += data
        msgs = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            msgs.append(protocol.parse_control(json.loads(line)))
        return msgs, True

    def _read_message(self, deadline: float) -> protocol.Ready | protocol.Started | protocol.Exited | None:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self._proc.poll() is not None and not _readable(self._sock, 0):
                return None
            if not _readable(self._sock, min(left, 0.5)):
                continue
            data = self._sock.recv(1 << 16)
            if not data:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return protocol.parse_control(json.loads(line))

    def abandon(self) -> None:
        if self._proc is not None:
            kill_group(self._proc.pid)
            self._proc.kill()
        self.stop()


class Pool:
    """Worker slots sharing one private working directory; one pool can grade several assignments."""

    def __init__(self, size: int, wait: bool = True, warm_up: bool = True):
        """Start `size` fork servers side by side; with `wait=False`, call `wait_ready` before use
        (the caller can do its own start-up work, such as importing torch, meanwhile).
        `warm_up=False` saves a second of start-up when each server forks only one child."""
        self.workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
        os.chmod(self.workdir, 0o711)  # a sandbox uid may enter its own scratch dir, not list others
        (self.workdir / "jobs").mkdir(mode=0o700)
        self.workers: list[Worker] = []
        self.notices: set[str] = set()
        self._specs = 0
        self._ready = False
        if is_root():
            for path in unreadable_by_others():
                print(f"course-grade: warning: the sandbox user cannot read {path}; notebooks that import "
                      "from it may fail (make it readable by all users)", file=sys.stderr)
        try:
            self.workers = [Worker(self.workdir, warm_up, self.notices) for _ in range(max(1, size))]
            for w in self.workers:
                w.launch()
            if wait:
                self.wait_ready()
        except BaseException:
            self.close()
            raise

    def wait_ready(self) -> None:
        if not self._ready:
            for w in self.workers:
                w.wait_ready()
            self._ready = True

    def spec(self, child_spec: list[protocol.ItemSpec]) -> Path:
        """Store an assignment's child spec where only root (the fork server) can read it."""
        self._specs += 1
        path = self.workdir / "jobs" / f"spec-{self._specs}.pickle"
        path.write_bytes(pickle.dumps(child_spec))
        return path

    def close(self) -> None:
        for w in self.workers:
            if not self._ready:
                w.abandon()  # never used: no need to wait for it to finish importing
            w.close()
        remove_tree(self.workdir)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def unreadable_by_others() -> list[str]:
    """Installed-package directories that a user other than the owner cannot read.

    The standard library is exempt: the fork server imports all of it when it is hidden.
    """
    import sysconfig

    import course_utils

    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
             str(Path(course_utils.__file__).resolve().parent)}
    return sorted(p for p in paths if Path(p).is_dir() and not _world_readable(Path(p)))


def readable_by_others(path: Path) -> bool:
    """Whether a user other than the owner (such as the sandbox uid) can read this file."""
    path = Path(path).resolve()
    try:
        return bool(path.stat().st_mode & 0o004) and all(p.stat().st_mode & 0o001 for p in path.parents)
    except OSError:
        return False


def _world_readable(path: Path) -> bool:
    path = path.resolve()
    try:
        if not path.stat().st_mode & 0o005 == 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in path.parents)
    except OSError:
        return False


def _readable(sock: socket.socket, timeout: float) -> bool:
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        return bool(sel.select(timeout))
    finally:
        sel.close()


def _take_lines(run: RunResult, buffer: bytearray, chunk: bytes) -> None:
    """Add `chunk` to `buffer` and parse the complete JSON lines in it.

    A line is never held or decoded beyond MAX_LINE_BYTES (the rest of a longer one is dropped as
    it arrives), and past MAX_RESULT_BYTES in all nothing more is read: `run.overflow` is set.
    """
    if run.overflow:
        return
    run.result_bytes += len(chunk)
    if run.result_bytes > MAX_RESULT_BYTES:
        run.overflow = True
        buffer.clear()
        return
    *complete, rest = chunk.split(b"\n")
    for piece in complete:
        if _add_to_line(run, buffer, piece) and buffer:
            _record(run, protocol.decode_line(bytes(buffer), run.expect))
        buffer.clear()
        run.skipping_line = False
    _add_to_line(run, buffer, rest)


def _add_to_line(run: RunResult, buffer: bytearray, piece: bytes) -> bool:
    """Append a piece of the current line unless that makes it too long; whether the line is still kept."""
    if run.skipping_line:
        return False
    if len(buffer) + len(piece) > MAX_LINE_BYTES:  # too long to be a result: dropped unread
        run.protocol_errors += 1
        run.skipping_line = True
        buffer.clear()
        return False
    buffer += piece
    return True


def _record(run: RunResult, msg: protocol.Message | None) -> None:
    if msg is None:
        run.protocol_errors += 1
    elif isinstance(msg, protocol.Done):
        run.done = True
    elif isinstance(msg, protocol.CellError):
        if len(run.cell_errors) < 50:
            run.cell_errors.append((msg.cell, msg.error))
    elif isinstance(msg, protocol.Flag):
        _record_flag(run, msg)
    elif msg.name not in run.final or msg.final:  # an item's final report is its last word
        run.items[msg.name] = msg
        if msg.final:
            run.final.add(msg.name)


MAX_FLAGGED = 100
"""Items (or the notebook) a run may flag; without `expect` (the assignment's items) this bounds them."""
MAX_REASONS = 3
"""Distinct reasons kept per flagged item: enough for the instructor, bounded whatever the child sends."""


def _record_flag(run: RunResult, msg: protocol.Flag) -> None:
    """Keep a flag: the child's own report against itself, so a forged one only costs the submission."""
    if msg.item not in run.flags and len(run.flags) >= MAX_FLAGGED:
        return
    reasons = run.flags.setdefault(msg.item, [])
    if msg.reason not in reasons and len(reasons) < MAX_REASONS:
        reasons.append(msg.reason)


def _keep_output(run: RunResult, chunk: bytes) -> None:
    run.output_bytes += len(chunk)
    room = KEEP_OUTPUT_HEAD - len(run.output_head)
    if room > 0:
        run.output_head += chunk[:room]
        chunk = chunk[room:]
    if chunk:
        run.output_tail = (run.output_tail + chunk)[-KEEP_OUTPUT_TAIL:]


def _claim_uid() -> tuple[int, int]:
    """A uid from UID_RANGE that no other grader on this machine holds, with its lock."""
    LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    for uid in UID_RANGE:
        fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if living_pids_of_uid(uid) and not kill_uid(uid):  # a process of it survived: never reuse it
            os.close(fd)
            continue
        return uid, fd
    raise RuntimeError(f"every sandbox uid in {UID_RANGE.start}-{UID_RANGE.stop - 1} is in use")


def _remove_files_of(uid: int) -> None:
    """Delete what the submission's uid left in the shared temporary directories.

    It can only write where everyone may: those directories and any world-writable directory
    inside them (such as /tmp/.X11-unix), which are searched too.
    """
    todo = [Path(p) for p in _SHARED_TMP]
    seen = 0
    while todo and seen < 1000:
        top = todo.pop()
        seen += 1
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                is_dir = entry.is_dir(follow_symlinks=False)
                if st.st_uid != uid:
                    if is_dir and st.st_mode & 0o002:
                        todo.append(Path(entry.path))
                    continue
                if is_dir:
                    remove_tree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def remove_tree(path: str | Path) -> None:
    """Delete a directory tree however deep it is, never following a link; a failure is never raised.

    Walks with directory descriptors (a path deeper than PATH_MAX cannot be named), an explicit
    stack (no recursion limit) and at most _MAX_OPEN_DIRS descriptors open at once.
    """
    _quietly(lambda: _remove_tree(os.fspath(path)))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN_DIRS = 64


@dataclass
class _Level:
    """One directory on the way down: its descriptor (None while closed), its name, identity and subdirectories."""

    fd: int | None
    name: str
    ident: tuple[int, int]
    subdirs: list[str] | None = None


def _remove_tree(path: str) -> None:
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a file or a link: remove the link, not its target
            os.unlink(path)
            return
        raise
    stack = [_Level(top, path, _identity(top))]
    try:
        while stack:
            level = stack[-1]
            if level.subdirs is None:
                level.subdirs = _empty_but_subdirs(level.fd)
            if level.subdirs:
                _descend(stack, level.subdirs.pop())
                continue
            stack.pop()
            if not stack:
                os.close(level.fd)
                level.fd = None
                os.rmdir(path)
                break
            above = stack[-1]
            if above.fd is None:
                above.fd = _reopen_parent(level.fd, above.ident)
            os.close(level.fd)
            level.fd = None
            os.rmdir(level.name, dir_fd=above.fd)
    finally:
        for level in stack:
            if level.fd is not None:
                os.close(level.fd)


def _empty_but_subdirs(fd: int) -> list[str]:
    """Unlink everything in the directory but its subdirectories, and return their names."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
    return subdirs


def _descend(stack: list[_Level], name: str) -> None:
    """Open subdirectory `name` of the top of the stack and push it, closing the oldest descriptor if needed."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=stack[-1].fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=stack[-1].fd)  # replaced by a file or a link meanwhile
        return
    stack.append(_Level(fd, name, _identity(fd)))
    if len(stack) > _MAX_OPEN_DIRS:  # the open ones are always the deepest: close the one above them
        oldest = stack[-_MAX_OPEN_DIRS - 1]
        if oldest.fd is not None:
            os.close(oldest.fd)
            oldest.fd = None


def _reopen_parent(fd: int, ident: tuple[int, int]) -> int:
    """The directory above `fd`, checked to be the one that was left on the way down."""
    parent_fd = os.open("..", _DIR_FLAGS, dir_fd=fd)
    if _identity(parent_fd) != ident:
        os.close(parent_fd)
        raise OSError(errno.ESTALE, "a directory was moved while its tree was being removed")
    return parent_fd


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _quietly(action) -> None:
    """Run a clean-up step; whatever goes wrong in it must not stop the grading."""
    try:
        action()
    except Exception:
        pass


def _nproc_for_own_uid() -> int:
    """Without root, RLIMIT_NPROC counts all of the user's processes: allow the current ones plus 128."""
    return sum(threads_of(pid) for pid in pids_of_uid(os.getuid())) + 128
