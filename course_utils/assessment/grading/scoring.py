"""Trusted scoring: expected values from the references, and each item's verdict on what the child reported.

With the instructor key every case counts and answers are judged. Without it (a student release) a
function item is graded on its public cases only and an answer item is recorded, worth 0 of 0 points;
each item's feedback says so.

With `hidden_apart` (the Gradescope autograder) an item whose grade depends on the key also gets a
public part first: its public cases' verdict (or the answer's form), worth 0 of 0 points, which
Gradescope shows at once while the item's graded result waits for the due date.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..items import (
    FIGURE,
    MAX_MANUAL_CHARS,
    AnswerItem,
    Assignment,
    FunctionItem,
    Item,
    ManualItem,
)
from ..verdict import (
    MANUAL_ANSWER,
    ExpectedCase,
    Verdict,
    answer_timeout,
    expected_cases,
    invalid_result,
    item_verdict,
    missing,
    no_result,
    not_a_function,
)
from . import protocol


@dataclass(frozen=True)
class ItemResult:
    """The score and feedback of one graded item (and a figure answer's checked PNG, kept for the instructor)."""

    name: str
    score: float
    max_score: float
    output: str
    figure: bytes | None = None


PUBLIC_ONLY = "(Public cases only: this course tree has no instructor key.)"
NOT_GRADED = "(Not graded: this course tree has no instructor key.)"
HIDDEN_APART_ENV = "COURSE_GRADE_HIDDEN_APART"  # "1": each keyed item also gets its public part
PUBLIC_PART = " (public cases)"  # the name of an item's public part is the item's name with this
GRADED_LATER_NOTE = "(The graded result is shown later.)"


class Plan:
    """An assignment ready to grade: the cases' arguments and their expected outcomes."""

    def __init__(self, assignment: Assignment, hidden_apart: bool | None = None):
        self.assignment = assignment
        self.public_only = not assignment.keyed  # graded without the instructor key
        self.hidden_apart = os.environ.get(HIDDEN_APART_ENV) == "1" if hidden_apart is None else hidden_apart
        self.cases: dict[str, list[ExpectedCase]] = {
            item.name: expected_cases(item, hidden=True)
            for item in assignment.items if isinstance(item, FunctionItem)}

    def child_spec(self) -> list[protocol.ItemSpec]:
        """What the child may know: item names, kinds and case arguments (never expected values)."""
        return [protocol.ItemSpec(item.name, protocol.FUNCTION, tuple(c.args for c in self.cases[item.name]))
                if isinstance(item, FunctionItem) else protocol.ItemSpec(item.name, _answer_kind(item))
                for item in self.assignment.items]

    def score(self, reports: dict[str, protocol.ItemReport]) -> list[ItemResult]:
        """Score every item from the last report the child sent about it (missing: no result)."""
        results = []
        for item in self.assignment.items:
            if self.hidden_apart and has_hidden_part(item):
                results.append(self._public_part(item, reports.get(item.name)))
            results.append(self._score_item(item, reports.get(item.name)))
        return results

    def _public_part(self, item: Item, report: protocol.ItemReport | None) -> ItemResult:
        """What the item's public cases (or an answer's form) say, worth 0 of 0: the key is not used."""
        public = replace(item, keyed=False)
        verdict = self.verdict(public, report)
        if isinstance(item, FunctionItem) and report is not None and report.state not in _NO_OUTCOMES:
            cases = [c for c in self.cases[item.name] if not c.hidden]
            verdict = item_verdict(public, cases, report.outcomes[:len(cases)], report.state == protocol.TIMEOUT)
        return ItemResult(item.name + PUBLIC_PART, 0.0, 0.0, f"{verdict.line()} {GRADED_LATER_NOTE}")

    def _score_item(self, item: Item, report: protocol.ItemReport | None) -> ItemResult:
        verdict = self.verdict(item, report)
        points = float(item.points)
        if isinstance(item, ManualItem) and item.answer == FIGURE:
            return ItemResult(item.name, 0.0, points, verdict.line(), verdict.figure)
        if isinstance(item, ManualItem):
            return ItemResult(item.name, 0.0, points, manual_output(verdict, report))
        if item.keyed:
            return ItemResult(item.name, verdict.earned(points), points, verdict.line())
        if isinstance(item, AnswerItem):
            return ItemResult(item.name, 0.0, 0.0, f"{verdict.line()} {NOT_GRADED}")
        return ItemResult(item.name, verdict.earned(points), points, f"{verdict.line()} {PUBLIC_ONLY}")

    def verdict(self, item: Item, report: protocol.ItemReport | None) -> Verdict:
        """The item's verdict from the child's report, already checked by `protocol.parse_result`."""
        if report is None:
            return no_result()
        if report.state == protocol.MISSING:
            return missing(item)
        if report.state == protocol.NOT_CALLABLE:
            return not_a_function(item, report.type_name)
        if report.state == protocol.INVALID:
            return invalid_result()
        timed_out = report.state == protocol.TIMEOUT
        if timed_out and isinstance(item, (AnswerItem, ManualItem)):
            return answer_timeout()
        return item_verdict(item, self.cases.get(item.name, ()), report.outcomes, timed_out)


_NO_OUTCOMES = (protocol.MISSING, protocol.NOT_CALLABLE, protocol.INVALID)


def has_hidden_part(item: Item) -> bool:
    """Whether the item's graded result uses what the key hides: hidden cases, or an answer judged on the key."""
    return item.keyed and (isinstance(item, AnswerItem) or isinstance(item, FunctionItem) and bool(item.hidden))


def manual_output(verdict: Verdict, report: protocol.ItemReport | None) -> str:
    """A manual item's feedback: the verdict, and for a recorded answer the text itself after `MANUAL_ANSWER`."""
    if not verdict.pending or report is None:
        return verdict.line()
    text = str(report.outcomes[0].value)[:MAX_MANUAL_CHARS]
    return f"{verdict.line()}\n{MANUAL_ANSWER}\n{text}"


def _answer_kind(item: Item) -> str:
    """How the child reads an answer variable: as plain data, or a figure as the PNG it saves as."""
    return protocol.FIGURE if isinstance(item, ManualItem) and item.answer == FIGURE else protocol.ANSWER

