"""Per-student feedback files (Markdown or HTML) written from a results.json, readable without Jupyter."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from .results import written_here

FORMATS = ("md", "html")
_LONGEST_BACKTICKS = re.compile(r"`+")
_MD_START = "# Feedback: "
_HTML_START = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Feedback: '
PENDING = "📝"  # how a recorded answer's feedback starts until it is graded (a manual item before its score)


def write_feedback(path: Path, results: dict[str, Any]) -> None:
    """Write the feedback for one result to `path`; its suffix (.md or .html) chooses the format."""
    kind = path.suffix.lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"a feedback file ends in .md or .html, got {path.name!r}")
    text = markdown(results) if kind == "md" else page(results)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
    tmp.replace(path)


def is_feedback(path: Path) -> bool:
    """Whether `path` is a feedback file written here (so that rewriting it loses nothing of anyone's)."""
    start = {"md": _MD_START, "html": _HTML_START}.get(path.suffix.lstrip("."))
    return start is not None and written_here(path, start)


def parts(results: dict[str, Any]) -> tuple[str, list[tuple[str, str, str, str]], list[tuple[int, str]]]:
    """A feedback file's pieces: the score line, each item (mark, name, points, feedback), the cells that raised."""
    extra = results.get("extra_data") or {}
    score = f"{results.get('score', 0)} / {results.get('max_score', 0)}"
    status = str(extra.get("status", ""))
    head = f"Score: {score}" + (f" (status: {status})" if status and status != "ok" else "")
    items = []
    for t in results.get("tests", []):
        full = t.get("score") == t.get("max_score")
        text = " ".join(str(t.get("output", "")).split())
        mark = "✅" if full else PENDING if text.startswith(PENDING) else "❌"
        items.append((mark, str(t.get("name", "")), f"{t.get('score', 0)}/{t.get('max_score', 0)}",
                      text.removeprefix(mark).lstrip()))
    cells = [(int(n), str(err)) for n, err in extra.get("cell_errors", [])]
    return head, items, cells


def markdown(results: dict[str, Any]) -> str:
    """The feedback as Markdown: student-made text is HTML-escaped, cell errors sit in a code fence."""
    name = str((results.get("extra_data") or {}).get("submission", ""))
    head, items, cells = parts(results)
    lines = [f"{_MD_START}{_md_text(name)}", "", f"**{_md_text(head)}**", "", "## Items", ""]
    lines += [f"- {mark} **{_md_text(item)}** ({points}): {_md_text(text)}" for mark, item, points, text in items]
    if cells:
        lines += ["", "## Cells that raised an error", ""]
        for n, err in cells:
            lines += [f"Cell {n}:", "", fenced(err)]
    return "\n".join(lines).rstrip("\n") + "\n"


def page(results: dict[str, Any]) -> str:
    """The feedback as one self-contained HTML page; every text in it is escaped."""
    name = html.escape(str((results.get("extra_data") or {}).get("submission", "")))
    head, items, cells = parts(results)
    rows = "\n".join(f"<tr><td>{mark}</td><td><code>{html.escape(item)}</code></td><td>{points}</td>"
                     f"<td>{html.escape(text)}</td></tr>" for mark, item, points, text in items)
    body = [f"<h1>Feedback: {name}</h1>", f"<p><strong>{html.escape(head)}</strong></p>", "<h2>Items</h2>",
            "<table>", "<tr><th></th><th>item</th><th>points</th><th>feedback</th></tr>", rows, "</table>"]
    if cells:
        body.append("<h2>Cells that raised an error</h2>")
        body += [f"<p>Cell {n}:</p>\n<pre>{html.escape(err)}</pre>" for n, err in cells]
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.3em;text-align:left}"
    return (f"{_HTML_START}{name}</title><style>{style}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def fenced(text: str) -> str:
    """The text in a code fence longer than any run of backticks in it, so it shows exactly as written."""
    longest = max((len(run) for run in _LONGEST_BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}\n"


def _md_text(text: str) -> str:
    """Text for a Markdown line: no raw HTML and no line break can come through."""
    return html.escape(" ".join(text.split()), quote=False)
