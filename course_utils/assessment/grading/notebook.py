"""Lenient notebook reading: the code cells of a submission, whatever its format version or metadata."""

from __future__ import annotations

import json
import re
from pathlib import Path

MAX_BYTES = 50 * 2**20
_CELL_MAGICS_WITH_PYTHON = {"time", "timeit", "capture", "prun"}
_LINE_MAGIC = re.compile(r"^(\s*)(%|!(?!=)|\?\w|\w+\?\s*$)")


class UnreadableNotebook(ValueError):
    """A submission that is not a notebook at all: empty, not JSON, or without cells."""


def read_code_cells(path: Path) -> list[str]:
    """The source of every code cell, in order (nbformat 3 or 4, source as text or list of lines)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableNotebook(f"cannot read the file ({exc.strerror or exc})") from None
    return code_cells_from_bytes(raw)


def code_cells_from_bytes(raw: bytes) -> list[str]:
    """As `read_code_cells`, from the file's bytes."""
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
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get(key, cell.get("source"))
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if isinstance(source, str):
            sources.append(source)
    return sources


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
