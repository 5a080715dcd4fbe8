"""The grader's messages: what each side builds is what the parent parses, and malformed messages are refused."""

from __future__ import annotations

import json

import pytest

from course_utils.assessment import assignments
from course_utils.assessment.grading import protocol
from course_utils.assessment.grading.scoring import Plan
from course_utils.assessment.items import Outcome, plain_outcome

# ---------------------------------------------------------------- round trips


def _through_the_pipe(msg: dict):
    return protocol.decode_line(protocol.encode_line(msg))


def test_child_messages_round_trip():
    outcomes = [protocol.outcome(plain_outcome(0.75)), protocol.outcome(Outcome(error="ZeroDivisionError: x"))]
    report = _through_the_pipe(protocol.item_message("bernoulli_mle", True, protocol.OK, outcomes))
    assert report == protocol.ItemReport("bernoulli_mle", True, protocol.OK,
                                         (Outcome(value=0.75), Outcome(error="ZeroDivisionError: x")))
    slow = _through_the_pipe(protocol.item_message("best_theta", False, protocol.TIMEOUT, []))
    assert slow == protocol.ItemReport("best_theta", False, protocol.TIMEOUT)
    odd = _through_the_pipe(protocol.item_message("best_theta", True, protocol.NOT_CALLABLE, type_name="x" * 100))
    assert odd.state == protocol.NOT_CALLABLE and odd.type_name == "x" * protocol.MAX_TYPE_CHARS
    assert _through_the_pipe(protocol.cell_error(3, "E" * 1000)) == \
        protocol.CellError(3, "E" * protocol.MAX_ERROR_CHARS)
    assert _through_the_pipe(protocol.done()) == protocol.Done()
    line = protocol.encode_line(protocol.done())  # a fresh line first: a line the learner left open stays apart
    assert line.startswith(b"\n") and line.endswith(b"\n") and line.count(b"\n") == 2


def test_array_outcomes_cross_as_plain_data():
    import torch

    got = plain_outcome(torch.tensor([[1.0, 2.0]]))
    report = _through_the_pipe(protocol.item_message("f", True, protocol.OK, [protocol.outcome(got)]))
    assert report.outcomes == (got,)
    assert got.value["shape"] == [1, 2] and got.value["dtype"] == "float32"


def test_fork_server_messages_round_trip():
    assert protocol.parse_control(json.loads(json.dumps(protocol.ready()))) == protocol.Ready()
    assert protocol.parse_control(json.loads(json.dumps(protocol.started(1234)))) == protocol.Started(1234)
    report = protocol.Exited(elapsed=1.5, timed_out=False, signal=9, maxrss_kb=1000, cpu_s=0.25)
    assert protocol.parse_control(json.loads(json.dumps(protocol.exited(report)))) == report


def test_job_round_trips_and_the_spec_holds_no_expected_value():
    job = protocol.Job(cells=["x = 1"], spec="/s", timeout=6.0, slice_s=3.0, scratch="/w", uid=None,
                       memory=2**30, fsize=2**20, nproc=64)
    assert protocol.Job.from_json(job.to_json()) == job
    assert protocol.job_path(protocol.job_request("/jobs/a.json")) == "/jobs/a.json"
    plan = Plan(assignments.load("01"))
    spec = plan.child_spec()
    assert [s.name for s in spec] == [item.name for item in plan.assignment.items]
    assert {s.kind for s in spec} == {protocol.FUNCTION, protocol.ANSWER}
    for s in spec:
        assert set(vars(s)) == {"name", "kind", "cases", "reference"}
        assert s.reference == "" or s.reference.startswith("course_utils.")  # public code, never a value
        assert len(s.cases) == len(plan.cases.get(s.name, ()))


# ---------------------------------------------------------------- malformed messages from the child

@pytest.mark.parametrize("line", [b"not json", b"[" * 100_000, b"[1, 2]", b"3", b'"done"', b"{}",
                                  b'{"done": 1}', b'{"cell": "x", "error": "e"}', b'{"cell": 1, "error": 3}',
                                  b'{"item": 3, "state": "ok", "outcomes": []}', b"\xff\xfe"])
def test_lines_that_are_no_message_are_refused(line):
    assert protocol.decode_line(line) is None


@pytest.mark.parametrize("msg", [
    {"item": "f", "state": "passed", "outcomes": []},
    {"item": "f", "state": "ok"},
    {"item": "f", "state": "ok", "outcomes": "all good"},
    {"item": "f", "state": ["ok"], "outcomes": []},  # unhashable: must not crash the parser
    {"item": "f", "state": {"ok": 1}, "outcomes": []},
    {"item": "f", "final": True},
])
def test_item_reports_with_a_bad_state_or_outcomes_are_invalid(msg):
    report = protocol.parse_result(msg)
    assert report.name == "f" and report.state == protocol.INVALID and report.outcomes == ()


def test_final_must_be_exactly_true_and_type_names_are_text():
    assert not protocol.parse_result({"item": "f", "final": "yes", "state": "missing"}).final
    assert protocol.parse_result({"item": "f", "final": 1, "state": "missing"}).final is False
    assert protocol.parse_result({"item": "f", "state": "not callable", "type": {"x": 1}}).type_name == "value"


@pytest.mark.parametrize(("raw", "error"), [
    ({"value": 1}, "ProtocolError: malformed result"),
    ({"value": 1, "error": None, "extra": 0}, "ProtocolError: malformed result"),
    ([1, None], "ProtocolError: malformed result"),
    ({"value": None, "error": 5}, "ProtocolError: malformed error"),
    ({"value": None, "error": "E" * 10_000}, "E" * protocol.MAX_OUTCOME_ERROR_CHARS),
    ({"value": {"__array__": True, "dtype": "object", "shape": [1], "data": [1]}, "error": None},
     "Unsupported: returned an array of an unsupported dtype"),
    ({"value": 2**70, "error": None}, "Unsupported: returned an integer too large to compare"),
])
def test_malformed_outcomes_become_errors(raw, error):
    assert protocol.parse_outcome(raw) == Outcome(error=error)


@pytest.mark.parametrize("value", [
    {"__array__": True, "dtype": "object", "shape": [1], "data": [1]},
    {"__array__": True, "dtype": "float64", "shape": [10**9], "data": [1.0]},
    {"__array__": True, "dtype": "float64", "shape": [2], "data": [1.0, [2.0]]},
    {"__array__": True, "dtype": "int8", "shape": [1], "data": [1000]},
    {"__array__": True, "dtype": "float64", "shape": [-1], "data": []},
    {"__array__": True, "dtype": "float64", "shape": [1], "data": [1.0], "extra": 1},
    {"__array__": 1, "dtype": "float64", "shape": [1], "data": [1.0]},
    {"value": 1}, 2**70, "x" * 100_001, json.loads("[" * 40 + "1" + "]" * 40)])
def test_malformed_plain_data_from_the_child_is_rejected(value):
    assert protocol.check_plain(value) is not None


def test_well_formed_plain_data_is_accepted():
    for value in (None, True, 3, -2.5, float("nan"), "B", [1, [2.0, None]],
                  plain_outcome([1.0, 2.0]).value, plain_outcome(__import__("numpy").zeros((2, 3))).value):
        assert protocol.check_plain(value) is None, value


def test_a_malformed_value_loses_the_item_with_a_reason():
    plan = Plan(assignments.load("01"))
    n = len(plan.cases["bernoulli_mle"])
    outcomes = [{"value": {"__array__": True, "dtype": "float64", "shape": [2], "data": [1.0]}, "error": None}] * n
    report = protocol.parse_result(protocol.item_message("bernoulli_mle", True, protocol.OK, outcomes))
    result = plan.score({"bernoulli_mle": report})[1]
    assert result.score == 0
    assert result.output.startswith(
        "❌ case 1, bernoulli_mle([1, 0, 1, 1]): returned an array whose data does not match its shape.")
    invalid = protocol.parse_result({"item": "bernoulli_mle", "state": "ok"})
    assert plan.score({"bernoulli_mle": invalid})[1].output == "❌ no valid result came back from the notebook."


# ---------------------------------------------------------------- malformed messages from the fork server

@pytest.mark.parametrize("obj", [[1], {"ready": 1}, {"pid": "12"}, {"pid": 1, "x": 2}, {"elapsed": 1.0},
                                 {**protocol.exited(protocol.Exited()), "extra": 1},
                                 {**protocol.exited(protocol.Exited()), "signal": "SIGKILL"}, "ready"])
def test_control_messages_that_are_none_of_the_three_are_refused(obj):
    assert protocol.parse_control(obj) is None
