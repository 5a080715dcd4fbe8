"""The class report of a results folder: per-item means, full-marks shares, common failures, a histogram."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .results import Graded, load_results, number, shown, written_here

REPORT_MD = "report.md"
REPORT_PNG = "report.png"
_REPORT_START = "# Class report: "
_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class ItemSummary:
    """One item across the class: mean score, share with full marks, its most common failure."""

    name: str
    max_score: float
    mean: float
    full_share: float
    failure: str | None
    failure_count: int


def summarise(grades: list[Graded]) -> list[ItemSummary]:
    """Each item's summary, in the order the results list the items."""
    by_item: dict[str, list[dict]] = {}
    for g in grades:
        for t in g.results.get("tests", []):
            by_item.setdefault(str(t.get("name", "")), []).append(t)
    out = []
    for name, tests in by_item.items():
        scores = [float(t.get("score", 0)) for t in tests]
        full = [float(t.get("score", 0)) == float(t.get("max_score", 0)) for t in tests]
        failures = Counter(" ".join(str(t.get("output", "")).split()) for t, ok in zip(tests, full, strict=True)
                           if not ok)
        message, count = failures.most_common(1)[0] if failures else (None, 0)
        out.append(ItemSummary(name, max(float(t.get("max_score", 0)) for t in tests), sum(scores) / len(scores),
                               sum(full) / len(full), message, count))
    return out


def markdown(grades: list[Graded], folder: Path) -> str:
    """The report as Markdown: the class's scores, then one table row per item."""
    scores = [g.score for g in grades]
    top = max(g.max_score for g in grades)
    lines = [f"{_REPORT_START}{_cell(str(folder))}", "",
             f"{len(grades)} submissions; mean score {number(sum(scores) / len(scores))} / {number(top)}, "
             f"lowest {number(min(scores))}, highest {number(max(scores))}.", "",
             f"![score histogram]({REPORT_PNG})", "",
             "| item | points | mean | full marks | most common failure |",
             "|---|---|---|---|---|"]
    for s in summarise(grades):
        failure = "" if s.failure is None else f"{_cell(s.failure[:_MESSAGE_CHARS])} ({s.failure_count}×)"
        lines.append(f"| {_cell(s.name)} | {number(s.max_score)} | {number(round(s.mean, 2))} | "
                     f"{s.full_share:.0%} | {failure} |")
    return "\n".join(lines) + "\n"


def histogram(grades: list[Graded], path: Path) -> None:
    """A histogram of the total scores, one bar per possible whole score, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(g.max_score for g in grades)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    try:
        ax.hist([g.score for g in grades], bins=[b - 0.5 for b in range(int(top) + 2)], edgecolor="white")
        ax.set_xlabel(f"score (out of {number(top)})")
        ax.set_ylabel("submissions")
        ax.set_title(f"{len(grades)} submissions")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def write_report(folder: Path) -> str:
    """Write report.md and report.png into `folder` from its results; returns the Markdown.

    ValueError when the folder holds no result.
    """
    grades = load_results(folder)
    if not grades:
        raise ValueError(f"no results (<submission>.json files) in {shown(str(folder))}")
    text = markdown(grades, folder)
    histogram(grades, folder / REPORT_PNG)
    (folder / REPORT_MD).write_text(text, encoding="utf-8", errors="backslashreplace")
    return text


def is_report(path: Path) -> bool:
    """Whether `path` is a class report written here (not, say, the feedback of a submission named `report`)."""
    return written_here(path, _REPORT_START)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: escaped, one line, no cell separator, no raw HTML."""
    return shown(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
