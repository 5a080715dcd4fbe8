"""Shared fixtures: grading tests get an environment the sandbox user can read, wherever the checkout sits."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from course_utils.assessment.grading import cli, parent

# Modules run in parallel worker processes (pytest-xdist) share the folders they open up: a count
# of users per folder, kept in a locked file, restores a folder's mode only when its last user ends.
_LEDGER = Path(tempfile.gettempdir()) / "course-grade-tests-opened-folders.json"


@contextmanager
def _ledger() -> Iterator[dict]:
    with open(os.open(_LEDGER, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read()
        data = json.loads(text) if text.strip() else {}
        yield data
        f.seek(0)
        f.truncate()
        f.write(json.dumps(data))


def _open_up(folder: Path) -> None:
    with _ledger() as ledger:
        entry = ledger.setdefault(str(folder), {"mode": stat.S_IMODE(folder.stat().st_mode), "users": 0})
        entry["users"] += 1
        folder.chmod(entry["mode"] | 0o001)


def _close_again(folder: Path) -> None:
    with _ledger() as ledger:
        entry = ledger.get(str(folder))
        if entry is None:
            return
        entry["users"] -= 1
        if entry["users"] <= 0:
            folder.chmod(entry["mode"])
            del ledger[str(folder)]


@pytest.fixture(scope="module")
def readable_environment() -> Iterator[None]:
    """As root, the grader refuses to run when its sandbox user cannot read the installed packages.

    A checkout inside a folder only root can enter (`mktemp -d` as root is 0700) gets the missing
    `o+x` on that folder while the module runs, and its old mode back afterwards.
    """
    opened: list[Path] = []
    try:
        while (problem := cli.unreadable_environment()) is not None:
            packages = [Path(p).resolve() for p in parent.unreadable_by_others()]
            folder = next((f for p in packages if (f := cli.first_closed_folder(p)) is not None), None)
            if folder is None or folder in packages or folder in opened:
                pytest.skip(f"the installed packages themselves are unreadable: {problem}")
            _open_up(folder)
            opened.append(folder)
        yield
    finally:
        for folder in reversed(opened):
            _close_again(folder)
