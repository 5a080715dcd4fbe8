"""The scaffold every explorer shares: controls whose changes recompute a summary and redraw a figure."""

from __future__ import annotations

import base64
import html
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython import get_ipython
from IPython.core.pylabtools import print_figure
from IPython.display import display
from matplotlib.figure import Figure

Row = W.Widget | Sequence[W.Widget]


class Rejected(ValueError):
    """Input an explorer cannot show (typed by a learner): reported as a ❌ line with a hint, never raised."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Explorer(ABC):
    """Controls, a summary line and a figure area; every change of a control's `.value` refreshes them.

    A subclass creates its controls and its initial state, then calls `super().__init__(rows, draw)`:
    `rows` lists the controls top to bottom (a list in a row puts controls side by side) and `panels`
    what goes below the summary (the figure area `plot` unless given).
    It implements `compute()` (read the controls, set the state, return the summary as HTML, or
    raise `Rejected`), `reset()` (the state after a rejection) and, if it draws, `make_figure()`.
    The state is updated synchronously, so code (and tests) can set `.value` and read it back.
    `figure` is the figure last drawn, or None: it is closed as soon as its image is in `plot`,
    so an explorer never leaves figures open in pyplot however often it redraws.
    Displayed, an explorer is the live widget; its stored output also holds `state_text()` as
    text/plain and its current figure as image/png, which is what an HTML export shows.
    """

    def __init__(self, rows: Sequence[Row], draw: bool = True, panels: Sequence[W.Widget] | None = None) -> None:
        self.draw = draw
        self.summary = W.HTML()
        self.plot = W.Output()
        self.figure: Figure | None = None
        boxes = [W.HBox(list(row)) if isinstance(row, Sequence) else row for row in rows]
        self.panels = list(panels) if panels is not None else [self.plot]
        self.widget = W.VBox([*boxes, self.summary, *self.panels])
        self.controls = [control for row in rows for control in (row if isinstance(row, Sequence) else [row])]
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self._on_change()

    @abstractmethod
    def compute(self) -> str:
        """Set the state from the controls and return the summary line (HTML); raise `Rejected` on bad input."""

    def reset(self) -> None:  # noqa: B027 (an optional hook: explorers that never reject input keep it)
        """Put the state back to 'nothing to show' after a rejected input (subclasses with state override it)."""

    def make_figure(self) -> Figure | None:
        """The figure for the current state; None for an explorer that shows no figure."""
        return None

    def _on_change(self, _change: object = None) -> None:
        try:
            self.summary.value = self.compute()
        except Rejected as problem:
            self.reset()
            self.summary.value = html.escape(f"❌ {problem}. Hint: {problem.hint}.", quote=False)
            self._show(None)
            return
        self._show(self.make_figure() if self.draw else None)

    def _show(self, fig: Figure | None) -> None:
        """Replace the figure area's content with `fig` (or nothing), then close `fig` in pyplot."""
        self.figure = fig
        self.plot.clear_output(wait=fig is not None)
        if fig is None:
            return
        try:
            if get_ipython() is not None:  # in a script there is nowhere to show it: `figure` keeps it
                with self.plot:
                    display(fig)
        finally:
            plt.close(fig)

    def state_text(self) -> str:
        """The current state as plain text: the explorer's name, each control's name and value, the summary."""
        lines = [type(self).__name__]
        lines += [f"  {_name(control)}: {_value_text(control)}" for control in self.controls]
        lines += [text for text in (_plain(self.summary.value), *map(_plain, _html_panels(self.panels))) if text]
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live widget, with the state as text and the current figure as PNG for static renderers."""
        bundle = self.widget._repr_mimebundle_() or {}
        bundle["text/plain"] = self.state_text()
        if self.figure is not None:
            bundle["image/png"] = base64.b64encode(print_figure(self.figure, "png")).decode("ascii")
        return bundle


def _name(control: W.Widget) -> str:
    return getattr(control, "description", "") or type(control).__name__


def _value_text(control: W.Widget) -> str:
    """A control's value as its readout shows it: the label of a choice, a slider's formatted number, quoted text."""
    if hasattr(control, "options") and hasattr(control, "label"):  # a choice among labelled options
        return str(control.label)
    value = control.value
    if isinstance(value, str):
        return repr(value)
    fmt = getattr(control, "readout_format", None)
    try:
        return format(value, fmt) if fmt else str(value)
    except (TypeError, ValueError):
        return str(value)


def _html_panels(panels: Sequence[W.Widget]) -> list[str]:
    return [panel.value for panel in panels if isinstance(panel, W.HTML)]


def _plain(markup: str) -> str:
    """HTML reduced to its text: tags dropped, entities decoded, each line stripped."""
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
