"""Lenient notebook reading: the code cells of a submission, whatever its format version or metadata."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 50 * 2**20
_CELL_MAGICS_WITH_PYTHON = {"time", "timeit", "capture", "prun"}
_LINE_MAGIC = re.compile(r"^(\s*)(%|!(?!=)|\?\w|\w+\?\s*$)")


class UnreadableNotebook(ValueError):
    """A submission that is not a notebook at all: empty, not JSON, or without cells."""


@dataclass(frozen=True)
class CodeCells:
    """A notebook's code cells in order, and where each sits among all its cells (1-based, as Jupyter counts)."""

    sources: list[str]
    numbers: list[int]

    def number(self, code_cell: int) -> int | None:
        """The notebook cell number of the `code_cell`-th code cell (1-based); None when there is none."""
        return self.numbers[code_cell - 1] if 1 <= code_cell <= len(self.numbers) else None


def read_code_cells(path: Path) -> list[str]:
    """The source of every code cell, in order (nbformat 3 or 4, source as text or list of lines)."""
    return read_notebook(path).sources


def read_notebook(path: Path) -> CodeCells:
    """The code cells of the regular file at `path`; a symbolic link is refused, never followed."""
    return notebook_from_bytes(_read_regular_file(Path(path)))


def code_cells_from_bytes(raw: bytes) -> list[str]:
    """As `read_code_cells`, from the file's bytes."""
    return notebook_from_bytes(raw).sources


def _read_regular_file(path: Path) -> bytes:
    """At most MAX_BYTES of a regular file, opened without following a link or blocking on a pipe."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableNotebook("the file is a symbolic link; submit the notebook file itself") from None
        raise UnreadableNotebook(f"cannot read the file ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableNotebook("it is not a regular file")
        if info.st_size > MAX_BYTES:
            raise UnreadableNotebook(f"the file is larger than {MAX_BYTES // 2**20} MB")
        chunks, size = [], 0
        while size <= MAX_BYTES and (chunk := os.read(fd, min(1 << 20, MAX_BYTES + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableNotebook(f"cannot read the file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def notebook_from_bytes(raw: bytes) -> CodeCells:
    """As `read_notebook`, from the file's bytes."""
    if len(raw) > MAX_BYTES:
        raise UnreadableNotebook(f"the file is larger than {MAX_BYTES // 2**20} MB")
    if not raw.strip():
        raise UnreadableNotebook("the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableNotebook("the file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableNotebook(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (RecursionError, ValueError) as exc:
        raise UnreadableNotebook(f"invalid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UnreadableNotebook("the file is JSON but not a notebook (no top-level object)")
    if isinstance(data.get("cells"), list):
        cells = data["cells"]
        key = "source"
    elif isinstance(data.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in data["worksheets"] if isinstance(ws, dict)
                 for c in (ws.get("cells") if isinstance(ws.get("cells"), list) else [])]
        key = "input"
    else:
        raise UnreadableNotebook("the file is JSON but has no cells")
    sources, numbers = [], []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get(key, cell.get("source"))
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if isinstance(source, str):
            sources.append(source)
            numbers.append(number)
    return CodeCells(sources, numbers)


def python_source(cell: str) -> str | None:
    """A cell's code with IPython magics and shell lines neutralised; None if it is not Python.

    `%%time`-style cell magics keep their body; other cell magics (`%%bash`, `%%writefile`)
    drop the whole cell. Line magics, `!shell` lines and `obj?` help lines become `pass`.
    """
    lines = cell.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        name = lines[0].lstrip()[2:].split(maxsplit=1)[0] if lines[0].strip() != "%%" else ""
        if name not in _CELL_MAGICS_WITH_PYTHON:
            return None
        lines = lines[1:]
    out = []
    for line in lines:
        m = _LINE_MAGIC.match(line)
        out.append(f"{m.group(1)}pass" if m else line)
    return "\n".join(out)
