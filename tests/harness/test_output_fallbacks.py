"""What a run's output is when the agent says nothing, and which timeouts fail a run (the reference's rules).

- error tool results are collected; with no assistant text, the output is those failures joined by a blank line;
- a stream that ends saying nothing is answered by the agent's ``invoke`` (its text only), when it has one;
- a stream that fails or times out before any activity falls back to ``invoke``; only a failure or timeout
  of ``invoke`` itself fails the run then; ``Failed`` records the stage ("stream" or "invoke").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from runjournal.adapters.agents import AgentRequest, Chunk

from .conftest import MakeHarness, event, types, workspace


class Agent:
    """A stream and an invoke, each given as a list of chunks or a behaviour ("hang", an exception)."""

    supports_replay = False

    def __init__(self, stream: object = (), invoke: object = None) -> None:
        self._stream, self._invoke = stream, invoke
        self.invoked = 0

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        for chunk in self._stream if isinstance(self._stream, (list, tuple)) else [self._stream]:
            if chunk == "hang":
                await asyncio.sleep(30)
            elif isinstance(chunk, Exception):
                raise chunk
            else:
                yield chunk


class Invokes(Agent):
    async def invoke(self, request: AgentRequest) -> list[Chunk]:
        self.invoked += 1
        if self._invoke == "hang":
            await asyncio.sleep(30)
        if isinstance(self._invoke, Exception):
            raise self._invoke
        return list(self._invoke or [])


def _run(make_harness: MakeHarness, agent: Agent, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    ws = workspace({"a": {"adapter": "scripted", "script": [{"say": "x"}]}},
                   routing={"default_agent": "a"}, streaming={"invoke_timeout_seconds": timeout})
    h = make_harness(ws, adapters={"a": agent})
    return h, asyncio.run(h.run("go", agent_id="a"))


def test_failed_tool_calls_are_the_output_when_the_agent_says_nothing(make_harness: MakeHarness) -> None:
    agent = Agent([Chunk.tool("search", {"q": "x"}, "index offline", is_error=True),
                   Chunk.tool("lookup", {"id": 1}, {"hits": 2}),
                   Chunk.tool("fetch", {"url": "u"}, {"status": 503}, is_error=True)])
    h, result = _run(make_harness, agent)
    assert result.state == "completed"
    assert result.output == {"text": 'Tool search failed: index offline\n\nTool fetch failed: {"status": 503}'}


def test_failed_tool_calls_are_not_the_output_when_the_agent_speaks(make_harness: MakeHarness) -> None:
    agent = Invokes([Chunk.tool("search", {}, "offline", is_error=True), Chunk.say("I could not search.")])
    _, result = _run(make_harness, agent)
    assert result.output == {"text": "I could not search."} and agent.invoked == 0


def test_a_stream_that_ends_saying_nothing_is_answered_by_invoke(make_harness: MakeHarness) -> None:
    agent = Invokes([Chunk.step({"plan": 1}), Chunk.tool("lookup", {}, {"hits": 2})],
                    invoke=[Chunk.step({"again": True}), Chunk.tool("lookup", {}, {"hits": 2}), Chunk.say("Found 2.")])
    h, result = _run(make_harness, agent)
    assert result.state == "completed" and result.output == {"text": "Found 2."}
    assert agent.invoked == 1
    steps = [e.data["content"] for e in h.journal.history(result.run_id) if e.type == "StepRecorded"]
    assert steps == [{"plan": 1}, {"tool": "lookup", "args": {}, "output": {"hits": 2}, "is_error": False}]


def test_a_stream_timeout_before_any_activity_falls_back_to_invoke(make_harness: MakeHarness) -> None:
    agent = Invokes(["hang"], invoke=[Chunk.say("answered by invoke")])
    h, result = _run(make_harness, agent, timeout=0.2)
    assert result.state == "completed" and result.output == {"text": "answered by invoke"}
    assert agent.invoked == 1


def test_an_invoke_timeout_fails_the_run_and_says_so(make_harness: MakeHarness) -> None:
    agent = Invokes(["hang"], invoke="hang")
    h, result = _run(make_harness, agent, timeout=0.2)
    assert result.state == "failed" and result.error == "timed out after 0.2 s"
    assert event(h.journal, result.run_id, "Failed").data["stage"] == "invoke"


def test_a_timeout_after_activity_fails_in_the_stream_stage_without_invoke(make_harness: MakeHarness) -> None:
    agent = Invokes([Chunk.say("thinking"), "hang"], invoke=[Chunk.say("never")])
    h, result = _run(make_harness, agent, timeout=0.2)
    assert result.state == "failed" and result.error == "timed out after 0.2 s"
    assert agent.invoked == 0
    assert event(h.journal, result.run_id, "Failed").data["stage"] == "stream"


def test_a_failed_invoke_fallback_fails_in_the_invoke_stage(make_harness: MakeHarness) -> None:
    agent = Invokes([ConnectionError("no stream")], invoke=RuntimeError("model down"))
    h, result = _run(make_harness, agent)
    assert result.state == "failed" and result.error == "RuntimeError: model down"
    assert event(h.journal, result.run_id, "Failed").data["stage"] == "invoke"
    assert "Completed" not in types(h.journal, result.run_id)


def test_a_failure_that_is_not_the_agents_records_no_stage(make_harness: MakeHarness) -> None:
    h, _ = _run(make_harness, Agent([Chunk.say("hi")]))
    run = h.submit("go", agent_id="a")
    h.journal.fail_run(run.run_id, error="operator stopped it", actor="ops")
    assert event(h.journal, run.run_id, "Failed").data["stage"] is None
