"""Reference behaviours around streaming and resuming that runjournal keeps the same."""

from __future__ import annotations

import asyncio

import pytest

from runjournal import UnknownAgent

from .conftest import MakeHarness, workspace

TWICE = {"adapter": "scripted", "script": [
    {"tool_call": {"name": "deploy", "args": {"env": "staging"}}, "requires_approval": True},
    {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True},
    {"say": "Deployed twice"},
]}


def test_a_resumed_run_may_ask_for_approval_again(make_harness: MakeHarness) -> None:
    h = make_harness(workspace({"twice": TWICE}, routing={"default_agent": "twice"}))
    first = asyncio.run(h.run("deploy"))
    assert first.state == "waiting_for_approval" and first.approval_id == f"{first.run_id}.a1"
    second = asyncio.run(h.resume(approval_id=first.approval_id, decision="approve", actor="alice"))
    assert second.state == "waiting_for_approval" and second.approval_id == f"{first.run_id}.a2"
    done = asyncio.run(h.resume(approval_id=second.approval_id, decision="approve", actor="alice"))
    assert done.state == "completed" and done.output == {"text": "Deployed twice"}
    asked = [e.data["tool_args"] for e in h.journal.history(first.run_id) if e.type == "ApprovalRequested"]
    assert asked == [{"env": "staging"}, {"env": "prod"}]


def test_streaming_to_an_unknown_agent_raises_like_run(make_harness: MakeHarness) -> None:
    h = make_harness()

    async def consume() -> None:
        async for _ in h.stream("hi", agent_id="nobody"):
            pass

    for call in (consume(), h.run("hi", agent_id="nobody")):
        with pytest.raises(UnknownAgent, match="nobody"):
            asyncio.run(call)
    assert h.journal.max_position() == 0
