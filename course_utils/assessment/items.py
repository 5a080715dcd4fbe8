"""Graded items: one definition of each assignment item serves the learner's `check` and the grader.

An item's outcome crosses a process boundary as *plain data* (None, bool, int, float, str,
lists, and arrays as tagged dicts), so the code that produced it cannot influence how it is
compared: `to_plain` runs next to the learner's code, `judge` runs in trusted code. The verdict on
a whole item, and its wording, is `verdict.item_verdict`.

An item is defined in two parts. The public part (names, points, public cases, hints, references) is
in `assignments/chNN_*.py` and ships to students; the instructor key (hidden cases, the mistakes an
item must reject, the answers of answer items) is in `assignments/key/`, which a student release
leaves out. `Assignment.with_key` joins them; an item without its key is marked `keyed=False`.
"""

from __future__ import annotations

import copy
import io
import math
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

MAX_ELEMENTS = 1_000_000
PLACEHOLDER = "NotImplementedError"
UNSUPPORTED = "Unsupported: "  # how an outcome's error says that the returned value could not be compared


@dataclass(frozen=True)
class Case:
    """Arguments for one call: a tuple, or a function with no arguments that builds the tuple."""

    args: tuple | Callable[[], tuple]

    def build(self) -> tuple:
        args = self.args() if callable(self.args) else self.args
        return copy.deepcopy(tuple(args))


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong implementation an item must reject, as code with a label.

    `pitfall` marks the mistake the chapter's lesson warns about: the public cases must catch it,
    so the learner's `check()` already says ❌.
    """

    label: str
    fn: Callable
    pitfall: bool = False


@dataclass(frozen=True)
class FunctionItem:
    """A function the learner writes, compared with `reference` on public and hidden cases.

    `mistakes` lists the wrong implementations the item must reject (every one fails a public case).
    `non_finite_hint` names the pitfall behind a result that is NaN or infinite (or a math error)
    where the reference is finite; it replaces `hint` when that is how a case fails.
    With `partial`, each graded case earns an equal share of `points`; by default an item is
    all-or-nothing (its points only when every case passes).
    """

    name: str
    points: float
    reference: Callable
    public: tuple[Case, ...]
    hidden: tuple[Case, ...] = ()
    rtol: float = 1e-6
    atol: float = 1e-9
    hint: str = ""
    mistakes: tuple[Mistake, ...] = ()
    non_finite_hint: str = ""
    keyed: bool = False  # whether the instructor key (hidden cases, mistakes) is attached
    partial: bool = False  # points per case instead of all-or-nothing

    def cases(self, hidden: bool) -> tuple[Case, ...]:
        return self.public + self.hidden if hidden else self.public


CHOICE, NUMBER, ORDER = "choice", "number", "order"
FORMS = (CHOICE, NUMBER, ORDER)


@dataclass(frozen=True)
class AnswerItem:
    """A concept question answered by a variable, e.g. `ANSWER_SMOOTHING = False`.

    `form` says what a well-formed answer looks like, which is all a tree without the key can check:
    one of `choices`, a number, or an order of the letters in `choices` (each used once).
    """

    name: str
    points: float
    expected: Any = None
    choices: tuple = ()
    atol: float = 0.0
    hint: str = ""
    also_accepted: tuple = ()  # other answers that are equally right (e.g. every valid order)
    why_not: tuple[tuple[Any, str], ...] = ()  # (wrong choice, why that choice is wrong)
    form: str = CHOICE
    keyed: bool = False  # whether the instructor key (the expected answer) is attached

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"{self.name}: form must be one of {', '.join(FORMS)}, got {self.form!r}")
        if self.form in (CHOICE, ORDER) and not self.choices:
            raise ValueError(f"{self.name}: a {self.form!r} answer needs its choices")

    def feedback_for(self, got: Any) -> str:
        """Why the wrong choice `got` (plain data) is wrong, or "" when the item says nothing about it."""
        for choice, why in self.why_not:
            if judge(to_plain(choice), got, 0.0, 0.0) is None:
                return why
        return ""


TEXT, FIGURE = "text", "figure"
MANUAL_ANSWERS = (TEXT, FIGURE)


@dataclass(frozen=True)
class ManualItem:
    """An answer graded by hand: the grader records it (0 of `points` until the instructor's score is
    merged) and collects every student's answer.

    With `answer=TEXT` it is a string, e.g. `EXPLAIN_SMOOTHING = \"\"\"…\"\"\"`; with `answer=FIGURE` a
    matplotlib figure (or its axes, or a PNG's bytes), e.g. `PLOT_LOSS = fig`, kept as a PNG image.
    """

    name: str
    points: float
    prompt: str
    keyed: bool = False  # nothing is secret; set like the other items' when the key is attached
    answer: str = TEXT

    def __post_init__(self):
        if self.answer not in MANUAL_ANSWERS:
            raise ValueError(f"{self.name}: answer must be one of {', '.join(MANUAL_ANSWERS)}, got {self.answer!r}")


MAX_MANUAL_CHARS = 20_000  # a longer answer is cut when collected


Item = FunctionItem | AnswerItem | ManualItem


@dataclass(frozen=True)
class FunctionKey:
    """The instructor's part of a function item: its hidden cases and the mistakes it must reject."""

    hidden: tuple[Case, ...] = ()
    mistakes: tuple[Mistake, ...] = ()


@dataclass(frozen=True)
class AnswerKey:
    """The instructor's part of an answer item: the right answer, how close counts, why wrong ones are wrong."""

    expected: Any
    atol: float = 0.0
    also_accepted: tuple = ()
    why_not: tuple[tuple[Any, str], ...] = ()


ItemKey = FunctionKey | AnswerKey


def with_item_key(item: Item, key: ItemKey | None) -> Item:
    """The item with its key attached (an item with nothing secret, e.g. no hidden cases, has no key)."""
    if isinstance(item, AnswerItem):
        if not isinstance(key, AnswerKey):
            raise ValueError(f"the key has no answer for the answer item {item.name!r}")
        return replace(item, expected=key.expected, atol=key.atol, also_accepted=key.also_accepted,
                       why_not=key.why_not, keyed=True)
    if key is None:
        return replace(item, keyed=True)
    if not isinstance(key, FunctionKey):
        raise ValueError(f"the key for the function item {item.name!r} is an answer, not cases")
    return replace(item, hidden=key.hidden, mistakes=key.mistakes, keyed=True)


@dataclass(frozen=True)
class Assignment:
    """One chapter's graded items, in notebook order."""

    key: str
    title: str
    items: tuple[Item, ...]
    notes: dict = field(default_factory=dict)

    @property
    def number(self) -> str:
        return self.key.split("_", 1)[0]

    @property
    def max_score(self) -> float:
        return float(sum(item.points for item in self.items))

    @property
    def keyed(self) -> bool:
        """Whether the instructor key is attached: hidden cases and answers are graded."""
        return all(item.keyed for item in self.items)

    def item(self, name: str) -> Item:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def with_key(self, key: dict[str, ItemKey]) -> Assignment:
        """This assignment with the instructor key attached to every item; a key for no item is an error."""
        unknown = sorted(set(key) - {item.name for item in self.items})
        if unknown:
            raise ValueError(f"the key of {self.key} names items it does not define: {', '.join(unknown)}")
        return replace(self, items=tuple(with_item_key(item, key.get(item.name)) for item in self.items))


# ---------------------------------------------------------------- values → plain data

class Unsupported(TypeError):
    """A value of a type the comparison does not accept."""


_NUMPY_SCALARS = {np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                  np.uint8, np.uint16, np.uint32, np.uint64, np.bool_}


def to_plain(value: Any, _depth: int = 0) -> Any:
    """Convert a returned value to plain data, accepting only exact built-in and array types.

    Subclasses are refused on purpose: an object whose `__eq__` says yes to everything must not
    pass as a number.
    """
    if _depth > 20:
        raise Unsupported("a value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        if kind is int and abs(value) > 2**63:
            raise Unsupported("an integer too large to compare")
        return value
    if kind in _NUMPY_SCALARS:
        return value.item()
    if kind is np.ndarray:
        return _array(value)
    if kind in (torch.Tensor, torch.nn.Parameter):
        try:
            t = value.detach().to("cpu")
        except (RuntimeError, NotImplementedError) as exc:  # e.g. a tensor on the 'meta' device
            raise Unsupported(f"a tensor that cannot be read ({type(exc).__name__})") from None
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        if t.is_complex() or t.layout != torch.strided:
            raise Unsupported(f"a {t.dtype} tensor with layout {t.layout}")
        return _array(t.numpy())
    if kind in (list, tuple):
        if len(value) > MAX_ELEMENTS:
            raise Unsupported("a list that is too long")
        return [to_plain(v, _depth + 1) for v in value]
    raise Unsupported(f"an object of type {kind.__name__}")


def _array(a: np.ndarray) -> dict:
    if a.size > MAX_ELEMENTS:
        raise Unsupported(f"an array of {a.size} elements (the limit is {MAX_ELEMENTS})")
    if a.dtype.kind not in "biuf":
        raise Unsupported(f"an array of dtype {a.dtype}")
    return {"__array__": True, "dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def _is_array(x: Any) -> bool:
    return type(x) is dict and x.get("__array__") is True


def _np(x: dict) -> np.ndarray:
    return np.asarray(x["data"], dtype=np.dtype(x["dtype"])).reshape(x["shape"])


# ---------------------------------------------------------------- running a case

@dataclass(frozen=True)
class Outcome:
    """What one call produced: a plain value, or the name and message of the exception it raised."""

    value: Any = None
    error: str | None = None


def call_case(fn: Callable, args: tuple) -> Outcome:
    """Call the learner's function on a copy of `args` and convert what it returns."""
    try:
        result = fn(*copy.deepcopy(args))
    except NotImplementedError:
        return Outcome(error=PLACEHOLDER)
    except Exception as exc:  # the learner's error, reported to them
        return Outcome(error=f"{type(exc).__name__}: {exc}"[:500])
    return plain_outcome(result)


def plain_outcome(result: Any) -> Outcome:
    """A returned value as an outcome: its plain data, or why it cannot be compared."""
    try:
        return Outcome(value=to_plain(result))
    except Unsupported as exc:
        return Outcome(error=f"{UNSUPPORTED}returned {exc}")


def expected_outcome(item: FunctionItem, args: tuple) -> Any:
    """The reference's answer for `args`, as plain data (trusted code only)."""
    return to_plain(item.reference(*copy.deepcopy(args)))


# ---------------------------------------------------------------- comparing

def judge(expected: Any, got: Any, rtol: float, atol: float) -> str | None:
    """None when `got` matches `expected` within tolerance, else a short reason."""
    if isinstance(expected, bool):
        if type(got) is not bool:
            return f"expected True or False, got {describe(got)}"
        return None if got == expected else f"expected {expected}, got {got}"
    if isinstance(expected, str):
        if type(got) is not str:
            return f"expected text, got {describe(got)}"
        return None if got.strip().lower() == expected.strip().lower() else f"expected a different answer than {got!r}"
    if isinstance(expected, (int, float)):
        got_num = _scalar(got)
        if got_num is None:
            return f"expected a single number, got {describe(got)}"
        return _close(float(expected), got_num, rtol, atol)
    if _is_array(expected):
        return _judge_array(_np(expected), got, rtol, atol)
    if isinstance(expected, list):
        if type(got) is not list:
            return f"expected a tuple or list of {len(expected)} values, got {describe(got)}"
        if len(got) != len(expected):
            return f"expected {len(expected)} values, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            reason = judge(e, g, rtol, atol)
            if reason:
                return f"element {i}: {reason}"
        return None
    if expected is None:
        return None if got is None else f"expected None, got {describe(got)}"
    raise TypeError(f"reference produced an unsupported value {expected!r}")


def _scalar(got: Any) -> float | None:
    if type(got) in (int, float):
        return float(got)
    if _is_array(got) and int(np.prod(got["shape"])) == 1 and got["dtype"][0] in "fiu":
        return float(_np(got).reshape(()))
    return None


def _close(expected: float, got: float, rtol: float, atol: float) -> str | None:
    if math.isnan(got):
        return "got NaN"
    if math.isinf(expected) or math.isinf(got):
        return None if got == expected else f"expected {fmt(expected)}, got {fmt(got)}"
    if abs(got - expected) <= atol + rtol * abs(expected):
        return None
    return f"expected {fmt(expected)}, got {fmt(got)}"


def _judge_array(expected: np.ndarray, got: Any, rtol: float, atol: float) -> str | None:
    if not _is_array(got):
        return f"expected an array of shape {tuple(expected.shape)}, got {describe(got)}"
    g = _np(got)
    if g.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got {tuple(g.shape)}"
    if expected.dtype.kind == "b" and g.dtype.kind != "b":
        return f"expected a boolean array, got dtype {g.dtype}"
    if expected.dtype.kind in "iu" and g.dtype.kind not in "iu":
        return f"expected an integer array, got dtype {g.dtype}"
    if expected.dtype.kind == "f" and g.dtype.kind != "f":
        return f"expected a floating-point array, got dtype {g.dtype}"
    if expected.dtype.kind == "f":
        g64, e64 = g.astype(np.float64), expected.astype(np.float64)
        if np.isnan(g64).any() and not np.isnan(e64).any():
            return "the result contains NaN"
        ok = np.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
    else:
        ok = g == expected
    if ok.all():
        return None
    idx = tuple(int(i) for i in np.argwhere(~ok)[0])
    return (f"{int((~ok).sum())} of {ok.size} values differ; at index {idx} "
            f"expected {fmt(expected[idx].item())}, got {fmt(g[idx].item())}")


def all_finite(value: Any) -> bool:
    """Whether every number in a plain value is finite (text, integers and booleans count as finite)."""
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(all_finite(v) for v in value)
    if _is_array(value):
        a = _np(value)
        return a.dtype.kind != "f" or bool(np.isfinite(a).all())
    return True


def fmt(x: Any) -> str:
    """A number with 4 significant digits; other values briefly."""
    if isinstance(x, float):
        return f"{x:.4g}"
    return repr(x)


def describe(x: Any, limit: int = 60) -> str:
    """A short description of a plain value for feedback."""
    if _is_array(x):
        return f"an array of shape {tuple(x['shape'])} and dtype {x['dtype']}"
    if type(x) is float:
        return fmt(x)
    if type(x) is list:
        text = "[" + ", ".join(describe(v, limit) for v in x[:6]) + (", …]" if len(x) > 6 else "]")
        return text if len(text) <= limit else text[: limit - 1] + "…"
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_args(args: tuple) -> str:
    """Arguments as the learner would type them, shortened."""
    parts = []
    for a in args:
        if isinstance(a, torch.Tensor):
            parts.append(f"tensor of shape {tuple(a.shape)}")
        elif isinstance(a, np.ndarray):
            parts.append(f"array of shape {a.shape}")
        else:
            try:
                parts.append(describe(to_plain(a)))
            except Unsupported:
                parts.append(type(a).__name__)
    return ", ".join(parts)


def answer_form_problem(item: AnswerItem, got: Any) -> str | None:
    """None when a concept answer is well formed (the check a tree without the key can make), else why not."""
    if item.form == NUMBER:
        number = _scalar(got)
        return None if number is not None and math.isfinite(number) else (
            f"{item.name} must be a number; got {describe(got)}")
    if item.form == ORDER:
        letters = sorted(str(c) for c in item.choices)
        if type(got) is str and sorted(got.strip().upper()) == letters:
            return None
        return f"{item.name} must use each of {', '.join(letters)} once, in some order; got {describe(got)}"
    if not any(judge(to_plain(c), got, 0.0, 0.0) is None for c in item.choices):
        return f"{item.name} must be one of {', '.join(repr(c) for c in item.choices)}; got {describe(got)}"
    return None


def score_answer(item: AnswerItem, got: Any) -> str | None:
    """None when a concept answer is right, else a short reason."""
    if item.form == CHOICE:
        problem = answer_form_problem(item, got)
        if problem:
            return problem
    reasons = [judge(to_plain(right), got, 0.0, item.atol) for right in (item.expected, *item.also_accepted)]
    return None if None in reasons else reasons[0]



# ---------------------------------------------------------------- a figure answer as plain data

FIGURE_DPI = 100  # a matplotlib figure is saved at this resolution: 6.4 × 4.8 inches become 640 × 480 pixels
MAX_FIGURE_BYTES = 240_000
"""A figure's PNG, at most: it crosses from the sandbox as a uint8 array in one JSON message of at most 4 characters
a byte, which must stay under the grader's 1 MiB per message (`parent.MAX_LINE_BYTES`). A line plot is about 20 kB."""
MAX_FIGURE_SIDE = 4000  # pixels, either way
MAX_FIGURE_PIXELS = 4_000_000  # width × height, so that its pixels unpacked stay under 32 MB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # colour type → depths
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_KEPT = (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND")  # all a browser needs; text and other chunks are dropped
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@dataclass(frozen=True)
class Png:
    """A checked PNG image: its size in pixels and its bytes rewritten with only the chunks that draw it."""

    width: int
    height: int
    data: bytes


def figure_outcome(value: Any) -> Outcome:
    """A figure answer as plain data (its PNG's bytes as a uint8 array), or why it is not one; runs next to
    the learner's code, so the trusted side checks the bytes again with `read_png`."""
    try:
        data = figure_png(value)
    except Unsupported as exc:
        return Outcome(error=f"{UNSUPPORTED}{exc}")
    return Outcome(value=_array(np.frombuffer(data, dtype=np.uint8)))


def png_bytes(value: Any) -> bytes | None:
    """The bytes a figure answer's outcome carries (a one-dimensional uint8 array), None for any other value."""
    if not _is_array(value) or value.get("dtype") != "uint8" or type(value.get("shape")) is not list \
            or len(value["shape"]) != 1:
        return None
    try:
        return np.asarray(value["data"], dtype=np.uint8).tobytes()
    except (TypeError, ValueError, OverflowError):  # data that did not pass `protocol.check_plain`
        return None


def figure_png(value: Any) -> bytes:
    """The PNG of a matplotlib figure (or of the figure holding an axes), or PNG bytes as given; Unsupported
    saying what `value` is instead, or why it cannot be saved."""
    if type(value) in (bytes, bytearray):
        return _png_bytes(bytes(value))
    figure = _matplotlib_figure(value)
    if figure is None:
        raise Unsupported(f"{'None' if value is None else _a(type(value).__name__)}, not a matplotlib figure")
    try:
        width, height = (float(x) * FIGURE_DPI for x in figure.get_size_inches())
    except Exception as exc:
        raise Unsupported(f"a figure whose size cannot be read ({type(exc).__name__})") from None
    if not (math.isfinite(width) and math.isfinite(height)) or _too_large(round(width), round(height)):
        raise Unsupported(f"a figure of {width:.0f} × {height:.0f} pixels at {FIGURE_DPI} dpi, larger than "
                          f"{_size_limit()}; make it smaller with figsize")
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    except Exception as exc:
        raise Unsupported(f"a figure that cannot be saved as PNG ({type(exc).__name__}: {exc})"[:300]) from None
    return _png_bytes(buffer.getvalue())


def read_png(data: bytes) -> Png:
    """Check that `data` is one whole PNG image within the size limits and return it; ValueError naming the problem.

    Every chunk's length and checksum is checked, the header's size and pixel format, and the pixel
    data is unpacked (bounded by the header's size) to be sure it is exactly as long as the image.
    """
    if len(data) > MAX_FIGURE_BYTES:
        raise ValueError(f"the image has {len(data):,} bytes, more than the limit of {MAX_FIGURE_BYTES:,}")
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("it is not a PNG image (its first bytes are not a PNG's signature)")
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR":
        raise ValueError("the PNG does not start with its header chunk")
    width, height, depth, colour, interlace = _png_header(chunks[0][1])
    kinds = [kind for kind, _ in chunks]
    if kinds.count(b"IHDR") != 1 or b"IDAT" not in kinds:
        raise ValueError("the PNG needs one header and some pixel data")
    first, last = kinds.index(b"IDAT"), len(kinds) - 1 - kinds[::-1].index(b"IDAT")
    if any(k != b"IDAT" for k in kinds[first:last + 1]):
        raise ValueError("the PNG's pixel data is split by other chunks")
    if colour == 3 and b"PLTE" not in kinds[:first]:
        raise ValueError("the PNG uses a palette but has none before its pixel data")
    pixels = b"".join(body for kind, body in chunks if kind == b"IDAT")
    _check_pixels(pixels, width, height, depth * _PNG_CHANNELS[colour], interlace)
    kept = [(kind, body) for kind, body in chunks if kind in _PNG_KEPT and kind != b"IDAT"]
    at = next(i for i, (kind, _) in enumerate(kept) if kind == b"IEND")
    kept.insert(at, (b"IDAT", pixels))
    return Png(width, height, PNG_SIGNATURE + b"".join(_png_chunk(kind, body) for kind, body in kept))


def _matplotlib_figure(value: Any) -> Any:
    """The matplotlib Figure that `value` is, or that holds it (an axes, a subfigure); None for anything else."""
    module = sys.modules.get("matplotlib.figure")
    if module is None:  # matplotlib was never imported, so `value` cannot be one of its figures
        return None
    for _ in range(10):
        if isinstance(value, module.Figure):
            return value
        if not isinstance(value, module.SubFigure) and not _is_axes(value):
            return None
        value = value.figure
    return None


def _is_axes(value: Any) -> bool:
    axes = sys.modules.get("matplotlib.axes")
    return axes is not None and isinstance(value, axes.Axes)


def _png_bytes(data: bytes) -> bytes:
    """PNG bytes after a first check of size and kind (the trusted side reads them fully with `read_png`)."""
    if data.lstrip()[:5].lower() in (b"<svg ", b"<svg>", b"<?xml"):
        raise Unsupported("an SVG image; give the matplotlib figure itself, which is saved as a PNG")
    if not data.startswith(PNG_SIGNATURE):
        raise Unsupported("bytes that are not a PNG image")
    if len(data) > MAX_FIGURE_BYTES:
        raise Unsupported(f"a PNG of {len(data):,} bytes, more than the limit of {MAX_FIGURE_BYTES:,}; "
                          "make the figure smaller")
    return data


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk (type, body) up to IEND, each checked for length, name and checksum; nothing may follow IEND."""
    chunks, at = [], len(PNG_SIGNATURE)
    while True:
        if at + 12 > len(data):
            raise ValueError("the PNG ends before its end chunk (IEND)")
        size = int.from_bytes(data[at:at + 4], "big")
        kind = data[at + 4:at + 8]
        if size > len(data) - at - 12:
            raise ValueError(f"a PNG chunk claims {size:,} bytes, more than the file holds")
        if not kind.isalpha():
            raise ValueError("the PNG has a chunk with a malformed name")
        body = data[at + 8:at + 8 + size]
        if int.from_bytes(data[at + 8 + size:at + 12 + size], "big") != zlib.crc32(kind + body):
            raise ValueError(f"the PNG chunk {kind.decode()} is damaged (its checksum does not match)")
        if kind[:1].isupper() and kind not in _PNG_KEPT:
            raise ValueError(f"the PNG has a critical chunk {kind.decode()} that no viewer knows")
        chunks.append((kind, body))
        at += 12 + size
        if kind == b"IEND":
            if at != len(data):
                raise ValueError("the PNG has data after its end chunk (IEND)")
            return chunks


def _png_header(body: bytes) -> tuple[int, int, int, int, int]:
    """Width, height, bit depth, colour type and interlace method from an IHDR chunk, each checked."""
    if len(body) != 13:
        raise ValueError("the PNG's header chunk has the wrong length")
    width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
    depth, colour, compression, filtering, interlace = body[8:13]
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace not in (0, 1):
        raise ValueError("the PNG's header names a pixel format that does not exist")
    if not width or not height:
        raise ValueError("the PNG has no pixels (a width or height of 0)")
    if _too_large(width, height):
        raise ValueError(f"the image is {width} × {height} pixels, larger than {_size_limit()}")
    return width, height, depth, colour, interlace


def _check_pixels(compressed: bytes, width: int, height: int, bits: int, interlace: int) -> None:
    """The pixel data unpacks to exactly the image's rows (no more is ever unpacked), each with a valid filter."""
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    rows = []
    for x0, y0, dx, dy in passes:
        columns, lines = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and lines > 0:
            rows += [1 + -(-columns * bits // 8)] * lines
    expected = sum(rows)
    unpack = zlib.decompressobj()
    try:
        raw = unpack.decompress(compressed, expected + 1)
    except zlib.error:
        raise ValueError("the PNG's pixel data is damaged (it does not decompress)") from None
    if len(raw) != expected or not unpack.eof or unpack.unused_data:
        raise ValueError("the PNG's pixel data does not match its width and height")
    at = 0
    for length in rows:
        if raw[at] > 4:
            raise ValueError("the PNG's pixel data has a row with an unknown filter")
        at += length


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _too_large(width: int, height: int) -> bool:
    return width > MAX_FIGURE_SIDE or height > MAX_FIGURE_SIDE or width * height > MAX_FIGURE_PIXELS


def _size_limit() -> str:
    return f"{MAX_FIGURE_SIDE} pixels a side and {MAX_FIGURE_PIXELS:,} pixels in all"


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
