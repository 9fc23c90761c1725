"""Which tool results are recorded: only a repeat of the same call with the same result is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from runjournal.adapters.agents import AgentRequest, Chunk

from .conftest import types, workspace

# -- python agents (loaded by PythonAgent as f"{__name__}:name") ---------------------------------


async def deletes_two_files(request: AgentRequest) -> AsyncIterator[Any]:
    yield Chunk.tool("delete_file", {"path": "/etc/a"}, {"ok": True}, call_id="c1")
    yield Chunk.tool("delete_file", {"path": "/etc/b"}, {"ok": True}, call_id="c2")  # same result, other call
    yield Chunk.tool("delete_file", {"path": "/etc/b"}, {"ok": True}, call_id="c2")  # a true duplicate: dropped
    yield "done"


async def same_call_twice_under_two_ids(request: AgentRequest) -> AsyncIterator[Any]:
    yield Chunk.tool("ping", {"host": "h"}, "pong", call_id="c1")
    yield Chunk.tool("ping", {"host": "h"}, "pong", call_id="c2")  # a second call that returned the same
    yield "done"


async def same_args_in_another_order(request: AgentRequest) -> AsyncIterator[Any]:
    yield Chunk.tool("move", {"src": "a", "dst": "b"}, {"ok": True}, call_id="c1")
    yield Chunk.tool("move", {"dst": "b", "src": "a"}, {"ok": True}, call_id="c1")  # canonically equal: dropped
    yield "done"


def python(name: str) -> dict[str, Any]:
    return {"adapter": "python", "callable": f"{__name__}:{name}"}


def tool_results(h: Any, run_id: str) -> list[dict[str, Any]]:
    steps = [e.data for e in h.journal.history(run_id) if e.type == "StepRecorded"]
    assert all(s["kind"] == "tool_result" for s in steps)
    return [s["content"] for s in steps]


def test_a_second_call_with_other_arguments_is_recorded_even_with_the_same_result(make_harness):
    h = make_harness(workspace({"cleaner": python("deletes_two_files")}))
    seen: list[Any] = []
    h.subscribe(lambda e: seen.append(e.data["args"]) if e.type == "tool_result" else None)

    result = asyncio.run(h.run("clean up", agent_id="cleaner"))

    assert result.state == "completed"
    assert result.output == {"text": "done"}
    recorded = tool_results(h, result.run_id)
    assert [(r["tool"], r["args"], r["output"]) for r in recorded] == [
        ("delete_file", {"path": "/etc/a"}, {"ok": True}),
        ("delete_file", {"path": "/etc/b"}, {"ok": True}),
    ]
    assert seen == [{"path": "/etc/a"}, {"path": "/etc/b"}]  # listeners see what is recorded, once
    assert types(h.journal, result.run_id).count("StepRecorded") == 2


def test_the_same_call_and_result_under_another_tool_call_id_is_recorded(make_harness):
    h = make_harness(workspace({"pinger": python("same_call_twice_under_two_ids")}))

    result = asyncio.run(h.run("ping twice", agent_id="pinger"))

    assert result.state == "completed"
    assert [(r["tool"], r["args"], r["output"]) for r in tool_results(h, result.run_id)] == [
        ("ping", {"host": "h"}, "pong"),
        ("ping", {"host": "h"}, "pong"),
    ]


def test_arguments_are_compared_canonically(make_harness):
    h = make_harness(workspace({"mover": python("same_args_in_another_order")}))

    result = asyncio.run(h.run("move", agent_id="mover"))

    assert result.state == "completed"
    assert [r["args"] for r in tool_results(h, result.run_id)] == [{"src": "a", "dst": "b"}]


def test_a_scripted_agent_deleting_two_files_with_the_same_result_records_both(make_harness):
    script = [
        {"tool_call": {"name": "delete_file", "args": {"path": "/etc/a"}}, "result": {"ok": True}},
        {"tool_call": {"name": "delete_file", "args": {"path": "/etc/b"}}, "result": {"ok": True}},
        {"say": "deleted"},
    ]
    h = make_harness(workspace({"cleaner": {"adapter": "scripted", "script": script}}))

    result = asyncio.run(h.run("clean up", agent_id="cleaner"))

    assert result.state == "completed"
    assert [r["args"] for r in tool_results(h, result.run_id)] == [{"path": "/etc/a"}, {"path": "/etc/b"}]
