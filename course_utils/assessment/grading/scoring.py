"""Trusted scoring: expected values from the references, and the verdict on each item's outcomes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..items import (
    MAX_ELEMENTS,
    PLACEHOLDER,
    AnswerItem,
    Assignment,
    FunctionItem,
    Outcome,
    describe,
    describe_args,
    expected_outcome,
    judge,
    score_answer,
)

_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"}
_ARRAY_KEYS = {"__array__", "dtype", "shape", "data"}
_TYPE_ONLY = re.compile(r"^(expected (a |an |text|True or False|shape |\d+ values)|got NaN|the result contains NaN)")


@dataclass(frozen=True)
class CasePlan:
    """One call: its arguments (sent to the child) and the reference's answer (kept here)."""

    args: tuple
    expected: Any
    hidden: bool
    number: int  # 1-based within public or within hidden cases


@dataclass(frozen=True)
class ItemResult:
    """The score and feedback of one graded item."""

    name: str
    score: float
    max_score: float
    output: str


class Plan:
    """An assignment ready to grade: the cases' arguments and their expected outcomes."""

    def __init__(self, assignment: Assignment):
        self.assignment = assignment
        self.cases: dict[str, list[CasePlan]] = {}
        for item in assignment.items:
            if isinstance(item, FunctionItem):
                plans = []
                for hidden, cases in ((False, item.public), (True, item.hidden)):
                    for number, case in enumerate(cases, start=1):
                        args = case.build()
                        plans.append(CasePlan(args, expected_outcome(item, args), hidden, number))
                self.cases[item.name] = plans

    def child_spec(self) -> list[dict]:
        """What the child may know: item names, kinds and case arguments (never expected values)."""
        return [{"name": item.name,
                 "kind": "function" if isinstance(item, FunctionItem) else "answer",
                 "cases": [c.args for c in self.cases.get(item.name, [])]}
                for item in self.assignment.items]

    def score(self, messages: dict[str, dict]) -> list[ItemResult]:
        """Score every item from the last message the child sent about it (missing: no result)."""
        return [self._score_item(item, messages.get(item.name)) for item in self.assignment.items]

    def _score_item(self, item, msg: dict | None) -> ItemResult:
        points = float(item.points)
        reason = self._failure(item, msg)
        if reason is None:
            n = len(self.cases.get(item.name, [])) or 1
            text = "correct." if isinstance(item, AnswerItem) else f"all {n} cases pass."
            return ItemResult(item.name, points, points, f"✅ {text}")
        hint = f" Hint: {item.hint}" if item.hint else ""
        return ItemResult(item.name, 0.0, points, f"❌ {reason}{hint}")

    def _failure(self, item, msg: dict | None) -> str | None:
        if msg is None:
            return "no result: the notebook's process ended or ran out of time before this item was evaluated."
        state = msg.get("state")
        if state == "missing":
            return "not defined."
        if state == "not callable":
            kind = msg.get("type") if type(msg.get("type")) is str else "value"
            return f"`{item.name}` should be a function, but it is a value of type {kind[:60]}."
        if state == "timeout" and isinstance(item, AnswerItem):
            return "reading the answer took too long."
        outcomes = msg.get("outcomes")
        if state not in ("ok", "timeout") or type(outcomes) is not list:
            return "no valid result came back from the notebook."
        outcomes = [Outcome.from_json(o) for o in outcomes]
        if isinstance(item, AnswerItem):
            return self._answer_failure(item, outcomes)
        return self._function_failure(item, outcomes, timed_out=state == "timeout")

    def _answer_failure(self, item: AnswerItem, outcomes: list[Outcome]) -> str | None:
        if len(outcomes) != 1:
            return "no valid result came back from the notebook."
        got = outcomes[0]
        if got.error:
            return f"{item.name} could not be read: {got.error.removeprefix('Unsupported: ')}."
        problem = check_plain(got.value)
        if problem:
            return f"{item.name} could not be read: {problem}."
        reason = _safe_judge(lambda: score_answer(item, got.value))
        if reason is None:
            return None
        return f"{reason}." if "must be one of" in reason else "not quite."

    def _function_failure(self, item: FunctionItem, outcomes: list[Outcome], timed_out: bool) -> str | None:
        plans = self.cases[item.name]
        if any(o.error == PLACEHOLDER for o in outcomes):
            return "not attempted (it still raises NotImplementedError)."
        for plan, got in zip(plans, outcomes, strict=False):
            reason = self._case_failure(item, plan, got)
            if reason:
                return reason
        if len(outcomes) < len(plans):
            plan = plans[len(outcomes)]
            where = f"hidden case {plan.number}" if plan.hidden else f"case {plan.number}"
            why = "took too long" if timed_out else "produced no result"
            return f"{where} failed: {why} (each item's cases share a time limit)."
        return None

    def _case_failure(self, item: FunctionItem, plan: CasePlan, got: Outcome) -> str | None:
        if got.error:
            why = got.error.removeprefix("Unsupported: ")
            why = why if got.error.startswith("Unsupported: ") else f"raised {why}"
        else:
            problem = check_plain(got.value)
            why = problem or _safe_judge(lambda: judge(plan.expected, got.value, item.rtol, item.atol))
            if why and plan.hidden and not problem:
                why = _without_expected(why, got.value)
        if not why:
            return None
        if plan.hidden:
            return f"hidden case {plan.number} failed: {why}."
        return f"case {plan.number}, {item.name}({describe_args(plan.args)}): {why}."


def _safe_judge(compare) -> str | None:
    try:
        return compare()
    except Exception as exc:  # malformed data that passed the shape checks: never a pass
        return f"the result could not be compared ({type(exc).__name__})"


def _without_expected(reason: str, got: Any) -> str:
    """A hidden case's failure reason that does not reveal the expected value."""
    core = re.sub(r"^(element \d+: )+", "", reason)
    if _TYPE_ONLY.match(core):
        return reason
    return f"wrong result (got {describe(got)})"


def check_plain(value: Any, depth: int = 0) -> str | None:
    """None if `value` is well-formed plain data from `items.to_plain`, else what is wrong with it."""
    if depth > 25:
        return "the result is nested too deeply"
    kind = type(value)
    if value is None or kind in (bool, str):
        return None if kind is not str or len(value) <= 100_000 else "the text is too long"
    if kind is int:
        return None if abs(value) <= 2**63 else "an integer too large to compare"
    if kind is float:
        return None
    if kind is list:
        if len(value) > MAX_ELEMENTS:
            return "a list that is too long"
        for v in value:
            problem = check_plain(v, depth + 1)
            if problem:
                return problem
        return None
    if kind is dict:
        return _check_array(value)
    return f"an unexpected {kind.__name__}"


def _check_array(d: dict) -> str | None:
    if set(d) != _ARRAY_KEYS or d["__array__"] is not True:
        return "a malformed array"
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if type(dtype) is not str or dtype not in _DTYPES:
        return "an array of an unsupported dtype"
    if type(shape) is not list or len(shape) > 32 or any(type(s) is not int or s < 0 for s in shape):
        return "an array with a malformed shape"
    if type(data) is not list or len(data) > MAX_ELEMENTS or math.prod(shape) != len(data):
        return "an array whose data does not match its shape"
    if any(type(x) not in (bool, int, float) for x in data):
        return "an array with non-numeric data"
    try:
        np.asarray(data, dtype=np.dtype(dtype))
    except (OverflowError, ValueError, TypeError):
        return "an array whose values do not fit its dtype"
    return None
