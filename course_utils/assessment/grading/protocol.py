"""The messages between the grader's three sides: each built by one function here and parsed by one here.

    parent → fork server   a job (a JSON file) and the assignment's item specs (a pickle), both
                           in a directory only root can read, announced on the control socket
    fork server → parent   ready, started (the child's pid), exited (how the child ended)
    child → parent         one JSON line per message on the result pipe: an item's outcomes,
                           a cell's error, an integrity flag, done. Untrusted: `parse_result` checks
                           every field and every value (`check_plain`) before anything is compared.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..items import MAX_ELEMENTS, UNSUPPORTED, Outcome

FUNCTION, ANSWER, FIGURE = "function", "answer", "figure"  # FIGURE: an answer sent as a PNG image
OK, TIMEOUT, MISSING, NOT_CALLABLE, INVALID = "ok", "timeout", "missing", "not callable", "invalid"
MAX_ERROR_CHARS = 300
MAX_OUTCOME_ERROR_CHARS = 500
MAX_TYPE_CHARS = 60
MAX_REASON_CHARS = 200
NOTEBOOK = "notebook"  # what a flag names when it was raised while cells ran, outside any item
_COURSE, _NOT_CONCEPTS = "course_utils.", "course_utils.assessment"
_STATES = {OK, TIMEOUT, MISSING, NOT_CALLABLE}
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"}
_ARRAY_KEYS = {"__array__", "dtype", "shape", "data"}
# Bound at import, before any notebook code runs in the child: a notebook that replaces
# json.dumps must not change (or break) how the child reports its results.
_dumps = json.dumps


# ---------------------------------------------------------------- parent → fork server → child

@dataclass(frozen=True)
class Job:
    """One submission to run: its code cells, where its item specs are, its limits, scratch dir and uid."""

    cells: list[str]
    spec: str
    timeout: float
    slice_s: float
    scratch: str
    uid: int | None
    memory: int
    fsize: int
    nproc: int

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> Job:
        """Read a job written by `to_json` (the trusted parent wrote it where only root can read)."""
        return Job(**json.loads(text))


@dataclass(frozen=True)
class ItemSpec:
    """What the child may know of an item: its name, its kind and its cases' arguments, never an expected value.

    `reference` is the qualified name of the item's reference when it is public course code (a function of
    a concept module such as `course_utils.likelihood`), else "": the child records calls to it.
    """

    name: str
    kind: str  # FUNCTION, ANSWER or FIGURE
    cases: tuple[tuple, ...] = ()
    reference: str = ""


def reference_name(fn: Any) -> str:
    """`module.qualname` of a reference defined in a course concept module, else "" (the child cannot reach it)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if type(module) is not str or type(qualname) is not str or not is_reference_name(f"{module}.{qualname}"):
        return ""
    return f"{module}.{qualname}"


def is_reference_name(name: str) -> bool:
    """Whether `name` is a dotted name of a function in a course concept module (never the assessment code)."""
    parts = name.split(".")
    return (name.startswith(_COURSE) and not (name + ".").startswith(_NOT_CONCEPTS + ".")
            and len(parts) >= 3 and all(p.isidentifier() for p in parts))


def outcome_counts(items: list[ItemSpec]) -> dict[str, int]:
    """How many outcomes the parent may accept for each item: one per case, or one for an answer."""
    return {item.name: len(item.cases) if item.kind == FUNCTION else 1 for item in items}


def job_request(job_path: str) -> bytes:
    """The control-socket message that hands the fork server a job file (the pipes travel with it)."""
    return json.dumps({"job": job_path}).encode()


def job_path(data: bytes) -> str:
    """The job file named by a `job_request`."""
    return json.loads(data)["job"]


def supervision_path(job_path: str) -> str:
    """Where the parent writes the job without its cells: all the fork server reads (no submission text)."""
    return job_path + ".limits"


# ---------------------------------------------------------------- fork server → parent

@dataclass(frozen=True)
class Ready:
    """The fork server has imported everything and waits for jobs."""


@dataclass(frozen=True)
class Started:
    """The fork server forked the child of the current job."""

    pid: int


@dataclass(frozen=True)
class Exited:
    """How the child ended: wall and CPU time, peak memory, its signal or exit code, whether it had
    no network (`network_isolated`) and whether its cgroup's memory limit killed it (`memory_exceeded`).

    The parent makes two of its own: `timed_out` when the fork server itself stopped answering,
    `worker_died` when the fork server went away.
    """

    elapsed: float = 0.0
    timed_out: bool = False
    signal: int | None = None
    exit_code: int | None = None
    maxrss_kb: int = 0
    cpu_s: float = 0.0
    worker_died: bool = False
    network_isolated: bool = False
    memory_exceeded: bool = False


_EXITED_TYPES = {"elapsed": (float, int), "timed_out": (bool,), "signal": (int, type(None)),
                 "exit_code": (int, type(None)), "maxrss_kb": (int,), "cpu_s": (float, int),
                 "worker_died": (bool,), "network_isolated": (bool,), "memory_exceeded": (bool,)}


def ready() -> dict:
    return {"ready": True}


def started(pid: int) -> dict:
    return {"pid": pid}


def exited(report: Exited) -> dict:
    return dataclasses.asdict(report)


def parse_control(obj: Any) -> Ready | Started | Exited | None:
    """A fork server message, or None when it is not one."""
    if type(obj) is not dict:
        return None
    if set(obj) == {"ready"} and obj["ready"] is True:
        return Ready()
    if set(obj) == {"pid"} and type(obj["pid"]) is int:
        return Started(obj["pid"])
    if set(obj) == set(_EXITED_TYPES) and all(type(obj[k]) in kinds for k, kinds in _EXITED_TYPES.items()):
        return Exited(**obj)
    return None


# ---------------------------------------------------------------- child → parent (untrusted)

@dataclass(frozen=True)
class ItemReport:
    """The child's outcomes for one item: a state, and for OK or TIMEOUT one outcome per case run."""

    name: str
    final: bool
    state: str  # OK, TIMEOUT, MISSING, NOT_CALLABLE, or INVALID when the message was malformed
    outcomes: tuple[Outcome, ...] = ()
    type_name: str = "value"


@dataclass(frozen=True)
class CellError:
    """A code cell raised (or was stopped): its 1-based index among the code cells and a short message."""

    cell: int
    error: str


@dataclass(frozen=True)
class Flag:
    """The child saw the learner's code call a course reference or read the course's files, during `item`'s
    evaluation (or while cells ran: `item` is NOTEBOOK)."""

    item: str
    reason: str


@dataclass(frozen=True)
class Done:
    """The child ran every cell and evaluated every item."""


def item_message(name: str, final: bool, state: str, outcomes: list[dict] | None = None,
                 type_name: str | None = None) -> dict:
    """The child's report on an item; `outcomes` are `outcome(...)` dicts."""
    msg: dict[str, Any] = {"item": name, "final": final, "state": state}
    if outcomes is not None:
        msg["outcomes"] = outcomes
    if type_name is not None:
        msg["type"] = type_name[:MAX_TYPE_CHARS]
    return msg


def outcome(o: Outcome) -> dict:
    return {"value": o.value, "error": o.error}


def cell_error(index: int, error: str) -> dict:
    return {"cell": index, "error": error[:MAX_ERROR_CHARS]}


def flag(item: str, reason: str) -> dict:
    """An integrity flag on `item` (or NOTEBOOK): what the learner's code did, in a few words."""
    return {"flag": item, "reason": reason[:MAX_REASON_CHARS]}


def done() -> dict:
    return {"done": True}


def encode_line(msg: dict) -> bytes:
    """A message as one JSON line (what the child writes on the result pipe).

    It starts with a line break too: whatever the learner's code wrote on the pipe without ending its
    line stays a (dropped) line of its own instead of swallowing this message.
    """
    return ("\n" + _dumps(msg, separators=(",", ":")) + "\n").encode()


Message = ItemReport | CellError | Flag | Done


def decode_line(line: bytes, expect: dict[str, int] | None = None) -> Message | None:
    """Parse one line from the result pipe; None when it is not a well-formed message.

    With `expect` (`outcome_counts` of the assignment) a report on any other item is refused and
    an item's outcomes beyond its count are dropped before any of them is checked.
    """
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return parse_result(obj, expect)


def parse_result(obj: Any, expect: dict[str, int] | None = None) -> Message | None:
    """Check a message from the child, field by field; None when it is none of the four kinds."""
    if type(obj) is not dict:
        return None
    if obj.get("done") is True:
        return Done()
    if type(obj.get("cell")) is int and type(obj.get("error")) is str:
        return CellError(obj["cell"], encodable(obj["error"][:MAX_ERROR_CHARS]))
    if type(obj.get("flag")) is str and type(obj.get("reason")) is str:
        name = obj["flag"]
        if expect is not None and name not in expect and name != NOTEBOOK:
            return None
        return Flag(encodable(name[:MAX_REASON_CHARS]), encodable(obj["reason"][:MAX_REASON_CHARS]))
    if type(obj.get("item")) is str and (expect is None or obj["item"] in expect):
        return _parse_item(obj, None if expect is None else expect[obj["item"]])
    return None


def _parse_item(obj: dict, most: int | None) -> ItemReport:
    name, final, state = obj["item"], obj.get("final") is True, obj.get("state")
    if type(state) is not str or state not in _STATES:
        return ItemReport(name, final, INVALID)
    if state in (MISSING, NOT_CALLABLE):
        kind = obj.get("type")
        kind = encodable(kind[:MAX_TYPE_CHARS]) if type(kind) is str else "value"
        return ItemReport(name, final, state, type_name=kind)
    outcomes = obj.get("outcomes")
    if type(outcomes) is not list:
        return ItemReport(name, final, INVALID)
    return ItemReport(name, final, state, tuple(parse_outcome(o) for o in outcomes[:most]))


def parse_outcome(d: Any) -> Outcome:
    """An outcome from the child: a well-formed plain value or an error text, else a reason it is neither."""
    if type(d) is not dict or set(d) != {"value", "error"}:
        return Outcome(error="ProtocolError: malformed result")
    err = d["error"]
    if err is not None:
        if type(err) is not str:
            return Outcome(error="ProtocolError: malformed error")
        return Outcome(error=encodable(err[:MAX_OUTCOME_ERROR_CHARS]))
    problem = check_plain(d["value"])
    if problem:
        return Outcome(error=f"{UNSUPPORTED}returned {problem}")
    return Outcome(value=d["value"])


def encodable(text: str) -> str:
    """`text` with every lone surrogate (which no UTF-8 file can hold) written as a visible escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def check_plain(value: Any, depth: int = 0) -> str | None:
    """None if `value` is well-formed plain data from `items.to_plain`, else what is wrong with it."""
    if depth > 25:
        return "a value nested too deeply"
    kind = type(value)
    if value is None or kind in (bool, str):
        return None if kind is not str or len(value) <= 100_000 else "a text that is too long"
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
