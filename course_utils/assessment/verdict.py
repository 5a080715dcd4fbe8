"""The one verdict on a graded item: passed or not, and the sentence that says why, for `check()` and the grader.

`check()` reaches it with the outcomes of the public cases, computed next to the learner's code;
the grader with the outcomes of the public and hidden cases that came back from its sandbox. The
same mistake therefore gets the same words in both, except that a hidden case is named only by its
number and never shows its expected value. Without the instructor key (a student release) an answer
item's verdict is *pending*: its format is checked, and the answer is recorded for the graded run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .items import (
    FIGURE,
    PLACEHOLDER,
    UNSUPPORTED,
    AnswerItem,
    FunctionItem,
    Item,
    ManualItem,
    Outcome,
    all_finite,
    answer_form_problem,
    call_case,
    describe,
    describe_args,
    expected_outcome,
    figure_outcome,
    judge,
    plain_outcome,
    png_bytes,
    read_png,
    score_answer,
)

_TYPE_ONLY = re.compile(r"^(expected (a |an |text|True or False|shape |\d+ values)|got NaN|the result contains NaN)")


@dataclass(frozen=True)
class ExpectedCase:
    """One call of an item: its arguments, the reference's answer as plain data, and where it is listed."""

    args: tuple
    expected: Any
    hidden: bool
    number: int  # 1-based among the public cases, or among the hidden ones

    def where(self, item: FunctionItem) -> str:
        """How feedback names this case: the call for a public case, only its number for a hidden one."""
        if self.hidden:
            return f"hidden case {self.number} failed"
        return f"case {self.number}, {item.name}({describe_args(self.args)})"


@dataclass(frozen=True)
class Verdict:
    """Whether an item passed, the sentence that says so or says why not, and a hint when it failed.

    A pending verdict (an answer recorded where there is no key to judge it) has not passed, and is
    marked 📝 rather than ❌. `credit` is the share of the points earned by an item with partial
    credit (None for an all-or-nothing item: everything when it passed, else nothing). A recorded
    figure answer keeps its checked PNG in `figure` (as `read_png` rewrote it), for the instructor.
    """

    passed: bool
    reason: str
    hint: str = ""
    pending: bool = False
    credit: float | None = None
    figure: bytes | None = None

    def earned(self, points: float) -> float:
        """The points this verdict earns out of an item's `points`."""
        share = self.credit if self.credit is not None else float(self.passed)
        return float(points) * share

    def line(self, name: str | None = None) -> str:
        """One line of feedback: `✅ name: reason.`, `📝 name: reason.` or `❌ name: reason. Hint: …`."""
        mark = "✅" if self.passed else "📝" if self.pending else "❌"
        text = _sentence(f"{name}: {self.reason}" if name else self.reason)
        if self.hint and not self.passed:
            text += f" Hint: {self.hint}"
        return " ".join(f"{mark} {text}".split())


def expected_cases(item: FunctionItem, hidden: bool) -> list[ExpectedCase]:
    """The item's public cases (and hidden ones if `hidden`), with the reference's answers (trusted code only)."""
    out = []
    for is_hidden, cases in ((False, item.public), (True, item.hidden if hidden else ())):
        for number, case in enumerate(cases, start=1):
            args = case.build()
            out.append(ExpectedCase(args, expected_outcome(item, args), is_hidden, number))
    return out


def item_verdict(item: Item, cases: Sequence[ExpectedCase], outcomes: Iterable[Outcome],
                 timed_out: bool = False) -> Verdict:
    """The verdict on an item from the learner's outcomes, case by case, stopping at the first failure.

    A function item needs one outcome per case (fewer: the rest ran out of time, or never came);
    an answer item has no cases and exactly one outcome, the plain value of its variable.
    """
    if isinstance(item, ManualItem):
        return _manual_verdict(item, list(outcomes))
    if isinstance(item, AnswerItem):
        return _answer_verdict(item, list(outcomes))
    return _function_verdict(item, cases, outcomes, timed_out)


def case_failure(item: FunctionItem, case: ExpectedCase, got: Outcome) -> str | None:
    """None when one call's outcome matches the reference, else why not (hidden cases redacted)."""
    if got.error == PLACEHOLDER:
        return _NOT_IMPLEMENTED
    if got.error is not None:
        why = got.error.removeprefix(UNSUPPORTED) if got.error.startswith(UNSUPPORTED) else f"raised {got.error}"
    else:
        why = _safe_judge(lambda: judge(case.expected, got.value, item.rtol, item.atol))
        if why and case.hidden:
            why = _without_expected(why, got.value)
    return f"{case.where(item)}: {why}" if why else None


def _function_verdict(item: FunctionItem, cases: Sequence[ExpectedCase], outcomes: Iterable[Outcome],
                      timed_out: bool) -> Verdict:
    """All-or-nothing: stop at the first failure. Partial credit: run every case, the first failure explains."""
    outcomes = iter(outcomes)
    failure, passed = None, 0
    for case in cases:
        got = next(outcomes, None)
        if got is None:
            why = "took too long" if timed_out else "produced no result"
            failure = failure or Verdict(False, f"{case.where(item)}: {why} (each item's cases share a time limit)")
            break
        reason = case_failure(item, case, got)
        if reason == _NOT_IMPLEMENTED:
            return not_implemented()
        if not reason:
            passed += 1
            continue
        failure = failure or Verdict(False, reason, _failure_hint(item, case, got))
        if not item.partial:
            break
    if failure is None:
        return Verdict(True, _all_pass(item, cases), credit=1.0 if item.partial else None)
    if not item.partial:
        return failure
    return replace(failure, reason=f"{failure.reason}; {_count(passed, cases)} pass", credit=passed / len(cases))


def _count(passed: int, cases: Sequence[ExpectedCase]) -> str:
    """`3 of 5 cases` (or `public cases` when none of them is hidden)."""
    kind = "cases" if any(c.hidden for c in cases) else "public cases"
    return f"{passed} of {len(cases)} {kind}"


def _failure_hint(item: FunctionItem, case: ExpectedCase, got: Outcome) -> str:
    """The hint for a failed case: how to return a value, the pitfall behind a non-finite result, or the item's."""
    if got.error is not None and got.error.startswith(UNSUPPORTED):
        return _RETURN_HINT
    try:
        broke = bool(item.non_finite_hint) and all_finite(case.expected) and _breaks_down(got)
    except Exception:  # malformed data that passed the protocol's checks: the item's own hint
        broke = False
    return item.non_finite_hint if broke else item.hint


_MATH_ERRORS = ("ValueError: math domain error", "OverflowError", "ZeroDivisionError")


def _breaks_down(got: Outcome) -> bool:
    """Whether an outcome shows a numerical breakdown: NaN or ±inf in the value, or a math error raised."""
    if got.error is not None:
        return got.error.startswith(_MATH_ERRORS)
    return not all_finite(got.value)


def _answer_verdict(item: AnswerItem, outcomes: list[Outcome]) -> Verdict:
    if len(outcomes) != 1:
        return invalid_result()
    got = outcomes[0]
    if got.error is not None:
        detail = got.error.removeprefix(UNSUPPORTED).removeprefix("returned ")
        return Verdict(False, f"the answer could not be read: {detail}", item.hint)
    if not item.keyed:
        return _recorded(item, got.value)
    reason = _safe_judge(lambda: score_answer(item, got.value))
    if reason is None:
        return Verdict(True, "correct")
    if "must be one of" in reason:
        return Verdict(False, reason, item.hint)
    why = _safe_judge(lambda: item.feedback_for(got.value))
    return Verdict(False, f"not quite: {why}" if why else "not quite", item.hint)


GRADED_LATER = "graded after submission"
MANUAL_ANSWER = "Your answer, for your instructor to grade:"  # what follows it is the learner's text


def _manual_verdict(item: ManualItem, outcomes: list[Outcome]) -> Verdict:
    """A manually graded answer: recorded when it is a text that says something (or a whole figure), else why not."""
    if len(outcomes) != 1:
        return invalid_result()
    got = outcomes[0]
    if item.answer == FIGURE:
        return _figure_verdict(item, got)
    if got.error is not None or not isinstance(got.value, str):
        return Verdict(False, f"`{item.name}` should be a text (a string in quotes)", "write your answer as a string")
    if not got.value.strip():
        return Verdict(False, f"`{item.name}` is empty", "write your answer in the string")
    return Verdict(False, f"recorded ({len(got.value)} characters); graded by hand", pending=True)


FIGURE_HINT = "assign the matplotlib figure itself, e.g. `fig, ax = plt.subplots()`, draw on `ax`, then `{name} = fig`"


def _figure_verdict(item: ManualItem, got: Outcome) -> Verdict:
    """A figure answer: recorded (with its checked PNG) when what came back is a whole image within the limits,
    else why not."""
    hint = FIGURE_HINT.format(name=item.name)
    if got.error is not None:
        unsupported = got.error.startswith(UNSUPPORTED)
        why = f"it is {got.error.removeprefix(UNSUPPORTED)}" if unsupported else f"reading it raised {got.error}"
        return Verdict(False, f"`{item.name}` cannot be recorded as a figure: {why}", hint)
    data = png_bytes(got.value)
    if data is None:
        return Verdict(False, f"`{item.name}` cannot be recorded as a figure: it is {describe(got.value)}", hint)
    try:
        png = read_png(data)
    except ValueError as exc:
        return Verdict(False, f"`{item.name}` cannot be recorded as a figure: {exc}", hint)
    return Verdict(False, f"recorded (a figure of {png.width} × {png.height} pixels); graded by hand", pending=True,
                   figure=png.data)


def _recorded(item: AnswerItem, got: Any) -> Verdict:
    """Without the key: a malformed answer fails, a well-formed one is recorded for the graded run."""
    problem = _safe_judge(lambda: answer_form_problem(item, got))
    if problem:
        return Verdict(False, problem, item.hint)
    return Verdict(False, f"recorded: {describe(got)}; {GRADED_LATER}", pending=True)


def _all_pass(item: FunctionItem, cases: Sequence[ExpectedCase]) -> str:
    n = len(cases)
    if any(c.hidden for c in cases):
        return f"all {n} cases pass"
    text = "the public case passes" if n == 1 else f"all {n} public cases pass"
    return text + (" (the graded run also uses hidden cases)" if item.hidden or not item.keyed else "")


# ---------------------------------------------------------------- verdicts without outcomes

_NOT_IMPLEMENTED = "not implemented yet (it still raises NotImplementedError)"
_RETURN_HINT = "return a number, a tuple of numbers, or a tensor"


def not_implemented() -> Verdict:
    """The placeholder of the exercise is still there."""
    return Verdict(False, _NOT_IMPLEMENTED, "replace `raise NotImplementedError` with your code")


def missing(item: Item) -> Verdict:
    """No variable of the item's name exists."""
    return Verdict(False, f"`{item.name}` is not defined", "define it under exactly this name and run its cell")


def not_a_function(item: Item, type_name: str) -> Verdict:
    """A function item whose name is bound to something that cannot be called."""
    return Verdict(False, f"`{item.name}` should be a function, but it is a value of type {type_name[:60]}",
                   "define it with def")


def no_result() -> Verdict:
    """The grader heard nothing about the item: the notebook's process ended before it was evaluated."""
    return Verdict(False, "no result: the notebook's process ended or ran out of time before this item "
                          "was evaluated")


def invalid_result() -> Verdict:
    """What came back about the item is not a result the grader can read."""
    return Verdict(False, "no valid result came back from the notebook")


def answer_timeout() -> Verdict:
    """Reading an answer variable ran past its time (an object whose conversion never ends)."""
    return Verdict(False, "reading the answer took too long")


# ---------------------------------------------------------------- a local learner's value on all cases

def value_verdict(item: Item, value: Any, hidden: bool) -> Verdict:
    """The verdict on a value in this process: the learner's `check()` (public cases) or a test (all cases)."""
    if isinstance(item, (AnswerItem, ManualItem)):
        as_outcome = figure_outcome if isinstance(item, ManualItem) and item.answer == FIGURE else plain_outcome
        return item_verdict(item, (), [as_outcome(value)])
    if not callable(value):
        return not_a_function(item, type(value).__name__)
    cases = expected_cases(item, hidden)
    return item_verdict(item, cases, (call_case(value, c.args) for c in cases))  # called lazily: stops early


def failing_cases(item: FunctionItem, fn: Callable, hidden: bool = True) -> list[int]:
    """Indices of the cases (public first, then hidden) where `fn` disagrees with the reference."""
    return [i for i, case in enumerate(expected_cases(item, hidden))
            if case_failure(item, case, call_case(fn, case.args))]


def earned_points(item: Item, value: Any) -> float:
    """The points `value` earns on every public and hidden case: all or nothing, or per case with partial credit."""
    return value_verdict(item, value, hidden=True).earned(item.points)


# ---------------------------------------------------------------- helpers

def _safe_judge(compare: Callable[[], str | None]) -> str | None:
    try:
        return compare()
    except Exception as exc:  # malformed data that passed the protocol's checks: never a pass
        return f"the result could not be compared ({type(exc).__name__})"


def _without_expected(reason: str, got: Any) -> str:
    """A hidden case's failure reason that does not reveal the expected value."""
    core = re.sub(r"^(element \d+: )+", "", reason)
    if _TYPE_ONLY.match(core):
        return reason
    return f"wrong result (got {describe(got)})"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."
