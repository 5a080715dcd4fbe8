"""Learner feedback: `check("name")` compares your answer with the reference on the public cases."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from . import assignments
from .items import (
    PLACEHOLDER,
    AnswerItem,
    FunctionItem,
    call_case,
    describe_args,
    expected_outcome,
    judge,
    plain_outcome,
    score_answer,
)

_MISSING = object()


@dataclass(frozen=True)
class Feedback:
    """The verdict on one item and the line shown to the learner."""

    passed: bool
    message: str

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
        return Feedback(False, f"❌ {exc}. Hint: check the spelling of the name in check(...).")
    if value is _MISSING:
        return _fail(name, f"`{name}` is not defined yet", "run the cell where you define it first")
    if isinstance(item, AnswerItem):
        return _evaluate_answer(item, value)
    return _evaluate_function(item, value)


def _evaluate_answer(item: AnswerItem, value: Any) -> Feedback:
    outcome = plain_outcome(value)
    if outcome.error:
        return _fail(item.name, outcome.error, item.hint)
    reason = score_answer(item, outcome.value)
    if reason:
        return _fail(item.name, reason if "must be one of" in reason else "not quite", item.hint)
    return Feedback(True, f"✅ {item.name}: correct.")


def _evaluate_function(item: FunctionItem, fn: Any) -> Feedback:
    if not callable(fn):
        return _fail(item.name, f"`{item.name}` should be a function, but it is a {type(fn).__name__}",
                     "define it with def")
    for i, case in enumerate(item.public, start=1):
        args = case.build()
        outcome = call_case(fn, args)
        call = f"{item.name}({describe_args(args)})"
        if outcome.error == PLACEHOLDER:
            return _fail(item.name, "not implemented yet",
                         "replace `raise NotImplementedError` with your code")
        if outcome.error and outcome.error.startswith("Unsupported: "):
            return _fail(item.name, f"case {i}, {call} {outcome.error.removeprefix('Unsupported: ')}",
                         "return a number, a tuple of numbers, or a tensor")
        if outcome.error:
            return _fail(item.name, f"case {i}, {call} raised {outcome.error}", item.hint)
        reason = judge(expected_outcome(item, args), outcome.value, item.rtol, item.atol)
        if reason:
            return _fail(item.name, f"case {i}, {call}: {reason}", item.hint)
    n = len(item.public)
    passed = "the public case passes" if n == 1 else f"all {n} public cases pass"
    return Feedback(True, f"✅ {item.name}: {passed} (the graded run also uses hidden cases).")


def _fail(name: str, reason: str, hint: str) -> Feedback:
    line = f"❌ {name}: {reason}."
    if hint:
        line += f" Hint: {hint}"
    return Feedback(False, " ".join(line.split()))
