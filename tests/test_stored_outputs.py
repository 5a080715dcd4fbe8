"""Stored outputs that strict nbval compares must not print rounding-level numbers in full.

A rounding error (1.1e-16 on one CPU, 2.2e-16 or 0.0e+00 on another) printed digit for digit makes
the lesson fail its own test on a different machine. Such values are asserted and printed as a
bound ("< 1e-12"); cells whose output follows a training trajectory carry NBVAL_IGNORE_OUTPUT.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))

# a number in scientific notation: 1.1e-16, 2e-300, 0.0e+00
_SCIENTIFIC = re.compile(r"(?<![\w.])[-+]?(\d+(?:\.\d*)?|\.\d+)[eE]([-+]?\d+)(?![\w.])")
# a plain decimal with ten or more zeros after the point before a non-zero digit: 0.00000000001
_LONG_DECIMAL = re.compile(r"(?<![\w.])[-+]?0\.0{10,}[1-9]\d*")


def rounding_level_numbers(text: str, limit: float = 1e-10) -> list[str]:
    """The numbers in `text` printed in full whose magnitude is below `limit` (zero in e-notation too)."""
    # a bound such as "< 1e-12" or "within 1e-12" states a limit, not a measured value
    text = re.sub(r"([<≤]|within)\s*[-+]?[\d.]+[eE][-+]?\d+", "", text)
    found = []
    for m in _SCIENTIFIC.finditer(text):
        value = abs(float(m.group(0)))
        if value < limit:
            found.append(m.group(0))
    found += [m.group(0) for m in _LONG_DECIMAL.finditer(text)]
    return found


def _output_text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    data = output.get("data", {})
    return str(data.get("text/plain", "")) if isinstance(data, dict) else ""


@pytest.mark.parametrize("text, flagged", [
    ("ε = 0.0: max |autograd − (softmax(z) − q)| = 1.1e-16", ["1.1e-16"]),
    ("largest |gap − extra term| over 250 steps: 6.7e-16", ["6.7e-16"]),
    ("max difference from PyTorch 0.0e+00", ["0.0e+00"]),
    ("an error of 0.000000000002", ["0.000000000002"]),
    ("loss 1.2345, lr 3e-4, tolerance 1e-10, 2.5e+03 tokens", []),
    ("max |mean NLL − CE| over the grid: < 1e-12", []),
    ("sums to 0 (to within 1e-12); measured 3e-17", ["3e-17"]),
])
def test_scanner_flags_rounding_level_numbers(text, flagged):
    assert rounding_level_numbers(text) == flagged


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_rounding_level_number_in_compared_outputs(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "NBVAL_IGNORE_OUTPUT" in cell.source:
            continue
        for output in cell.get("outputs", []):
            for number in rounding_level_numbers(_output_text(output)):
                problems.append(f"cell {index}: {number}")
    assert not problems, (f"{path.name} prints rounding-level numbers in full (print a bound and "
                          f"assert it): {', '.join(problems)}")
