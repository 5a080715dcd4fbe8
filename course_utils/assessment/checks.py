"""Learner feedback: `check("name")` compares your answer with the reference on the public cases.

Without the instructor key (a student release) an answer item is only checked for its format and
recorded: its verdict is pending until the graded run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from . import assignments
from .verdict import Verdict, missing, value_verdict

_MISSING = object()


@dataclass(frozen=True)
class Feedback:
    """The verdict on one item and the line shown to the learner (`pending`: recorded, graded later)."""

    passed: bool
    message: str
    pending: bool = False

    def __str__(self) -> str:
        return self.message


def check(name: str, value: Any = _MISSING) -> None:
    """Print one ✅ or ❌ line for the graded item `name` (looked up in your notebook if not given)."""
    if value is _MISSING:
        frame = inspect.currentframe()
        caller = frame.f_back if frame else None
        if caller is not None:
            value = caller.f_locals.get(name, caller.f_globals.get(name, _MISSING))
    print(evaluate(name, value).message)


def evaluate(name: str, value: Any = _MISSING) -> Feedback:
    """Compare `value` with the item's reference on its public cases; never raises."""
    try:
        _, item = assignments.find_item(name)
    except ValueError as exc:
        return _feedback(Verdict(False, str(exc), "check the spelling of the name in check(...)"))
    if value is _MISSING:
        return _feedback(missing(item), name)
    return _feedback(value_verdict(item, value, hidden=False), name)


def _feedback(verdict: Verdict, name: str | None = None) -> Feedback:
    return Feedback(verdict.passed, verdict.line(name), verdict.pending)
