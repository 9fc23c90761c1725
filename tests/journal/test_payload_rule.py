"""One JSON rule at the boundary: what it accepts survives every path; what it refuses appends nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runjournal import InvalidInput, Journal
from runjournal.app.audit import export_events, import_events
from runjournal.app.payload import MAX_DEPTH, MAX_SAFE_INTEGER

from .helpers import running_claim


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


REFUSED: list[tuple[str, Any, str]] = [
    ("big int", {"n": MAX_SAFE_INTEGER + 1}, "outside"),
    ("huge int", [2**70], "outside"),
    ("nan", {"x": float("nan")}, "NaN"),
    ("infinity", {"x": float("inf")}, "NaN or Infinity"),
    ("too deep", _nested(MAX_DEPTH + 1), "nested deeper"),
    ("far too deep", _nested(5000), "nested deeper"),
    ("lone surrogate", {"text": "a\ud800b"}, "lone surrogate"),
    ("surrogate key", {"\udfff": 1}, "lone surrogate"),
    ("10 MB string", "x" * 10_000_000, "over the limit"),
    ("int key", {1: "a"}, "not a string"),
    ("a set", {"s": {1, 2}}, "set is not JSON"),
    ("bytes", {"b": b"raw"}, "bytes is not JSON"),
    ("an object", {"o": object()}, "object is not JSON"),
]


def _approval(j: Journal) -> Any:
    return j.request_approval(running_claim(j), tool_name="t", tool_args={"a": 1})


# field -> (set-up, the command that carries the value): set-up appends, the command must not.
COMMANDS: dict[str, tuple[Callable[[Journal], Any], Callable[[Journal, Any, Any], Any]]] = {
    "input": (lambda j: None, lambda j, _, v: j.submit(agent_id="a", input=v)),
    "submit_many": (
        lambda j: None,
        lambda j, _, v: j.submit_many([{"agent_id": "a", "input": {}}, {"agent_id": "a", "input": v}]),
    ),
    "content": (running_claim, lambda j, c, v: j.record_step(c, "tool_result", v)),
    "tool_args": (running_claim, lambda j, c, v: j.request_approval(c, tool_name="t", tool_args={"a": v})),
    "edits": (_approval, lambda j, a, v: j.resolve_approval(a, decision="edit", edits={"a": v})),
    "output": (running_claim, lambda j, c, v: j.complete(c, output=v)),
}


@pytest.mark.parametrize(("name", "value", "problem"), REFUSED, ids=[r[0] for r in REFUSED])
def test_values_outside_the_rule_are_refused_and_append_nothing(name: str, value: Any, problem: str) -> None:
    with Journal.open("memory://") as j:
        for field, (set_up, command) in COMMANDS.items():
            context = set_up(j)
            before = j.max_position()
            with pytest.raises(InvalidInput) as info:
                command(j, context, value)
            assert problem in str(info.value), (field, str(info.value))
            assert len(str(info.value)) < 400, "the error must not echo the payload"
            assert j.max_position() == before, f"{field}: something was appended"
        assert j.verify().ok


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_every_accepted_value_survives_export_import_and_verify(tmp_path_factory, value: Any) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("store")
    with Journal.open(f"sqlite:///{folder / 'a.db'}") as j:
        run = j.submit(agent_id="a", input=[value])  # a run's input is never null; the other payloads may be
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        j.record_step(claim, "tool_result", value)
        j.complete(claim, output=value)
        text = "\n".join(json.dumps(r, sort_keys=True, default=str) for r in export_events(j))
        j.catch_up()
        assert j.runs(state="completed")[0].run_id == run.run_id
    with Journal.open(f"sqlite:///{folder / 'b.db'}") as copy:
        import_events(copy, io.StringIO(text))
        report = copy.verify()
        assert report.ok, report.problems
        got = copy.get_run(run.run_id)
        assert json.dumps(got.input, sort_keys=True) == json.dumps([value], sort_keys=True)
        assert json.dumps(got.output, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_the_size_cap_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal.open("memory://", max_payload_bytes=100) as j:
        j.submit(agent_id="a", input="x" * 50)
        with pytest.raises(InvalidInput, match="over the limit of 100"):
            j.submit(agent_id="a", input="x" * 200)
    monkeypatch.setenv("RUNJOURNAL_MAX_PAYLOAD_BYTES", "20000000")
    with Journal.open("memory://") as j:
        assert j.submit(agent_id="a", input="x" * 10_000_000).state == "queued"
    monkeypatch.setenv("RUNJOURNAL_MAX_PAYLOAD_BYTES", "lots")
    with pytest.raises(InvalidInput, match="max_payload_bytes"):
        Journal.open("memory://")


def test_an_overlong_error_is_cut_not_refused() -> None:
    """Failing a run must not fail: the message is cut, and says so."""
    with Journal.open("memory://") as j:
        j.submit(agent_id="a", input={})
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        failed = j.fail(claim, error="E" * 1_000_000)
        assert failed.state == "failed" and failed.error.endswith("[cut: 1,000,000 characters]")


def test_the_cli_refuses_an_oversized_input_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "RUNJOURNAL_MAX_PAYLOAD_BYTES": "64", "RUNJOURNAL_URL": f"sqlite:///{tmp_path}/j.db"}
    code = "from runjournal.cli import main; main()"
    init = subprocess.run([sys.executable, "-c", code, "init"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert init.returncode == 0, init.stderr
    args = [sys.executable, "-c", code, "run", "x" * 100]
    result = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "over the limit of 64" in lines[0], result.stderr
