"""Replay: a run's agent asked again against its record; no call made, nothing appended, the first divergence found."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentRequest, Chunk, ScriptedAgent
from runjournal.adapters.clock import ManualClock

from runjournal import Harness, Journal, UnknownAgent

from . import test_forks
from .conftest import workspace
from .test_forks import CALLS, STEPPED, agents

CHANGED_ANSWER = "a different answer"


async def researcher_v2(request: AgentRequest) -> AsyncIterator[Any]:
    """The researcher, its last line changed: everything before it still matches."""
    async for item in test_forks.researcher(request):
        yield Chunk.say(CHANGED_ANSWER) if isinstance(item, str) else item


async def researcher_other_search(request: AgentRequest) -> AsyncIterator[Any]:
    """Asks the model as before, then searches for something else: a call the record does not hold."""
    planned = await request.model("planner", lambda: test_forks.plan(request.message), args={"message": request.message})
    yield planned
    yield await request.tool("lookup", {"q": "something else"}, test_forks.lookup, call_id="c1")


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def _positions(j: Journal) -> int:
    return j.max_position()


def test_a_python_agent_replays_identically_and_calls_nothing(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace(agents()))
        run = await h.run({"message": "m"}, agent_id="researcher")
        CALLS.clear()
        before = _positions(h.journal)
        report = await h.replay(run.run_id)
        assert report.identical and report.divergence is None
        assert (report.executions, report.compared) == (1, 4)  # model step, two tool results, the answer
        assert CALLS == [] and _positions(h.journal) == before

    asyncio.run(go())


def test_a_scripted_run_with_an_approval_replays_each_execution(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace(agents()))
        asked = await h.run({"message": "ship"}, agent_id="stepped")
        await h.resume(approval_id=asked.approval_id, decision="edit", edits={"env": "staging"}, actor="alice")
        before = _positions(h.journal)
        report = await h.replay(asked.run_id)
        assert report.identical and report.executions == 2  # Started, then Resumed with the edit
        assert _positions(h.journal) == before

    asyncio.run(go())


def test_a_changed_answer_is_reported_at_the_completion(make_harness) -> None:
    async def go() -> None:
        ws = workspace({"researcher": {"adapter": "python", "callable": f"{__name__}:researcher_v2"}})
        h = make_harness(workspace(agents()))
        run = await h.run({"message": "m"}, agent_id="researcher")
        completed = h.journal.history(run.run_id)[-1]
        changed = Harness(h.journal, ws)
        report = await changed.replay(run.run_id)
        assert not report.identical and report.compared == 3
        d = report.divergence
        assert d is not None and d.version == completed.version and completed.type == "Completed"
        assert d.recorded == {"kind": "answer", "value": "plan for m: 2 then 3"}
        assert d.now == {"kind": "answer", "value": CHANGED_ANSWER}

    asyncio.run(go())


def test_a_call_the_record_does_not_hold_is_reported_at_the_recorded_call_and_not_made(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace(agents()))
        run = await h.run({"message": "m"}, agent_id="researcher")
        first_lookup = [e for e in h.journal.history(run.run_id) if e.data.get("kind") == "tool_result"][0]
        other = Harness(h.journal, workspace({"researcher": {
            "adapter": "python", "callable": f"{__name__}:researcher_other_search"}}))
        CALLS.clear()
        report = await other.replay(run.run_id)
        assert CALLS == []  # the search it asked for was not made
        d = report.divergence
        assert d is not None and d.version == first_lookup.version
        assert d.now == {"tool": "lookup", "args": {"q": "something else"}, "call_id": "c1"}
        assert d.recorded["value"]["args"] == {"q": "a"}

    asyncio.run(go())


def test_a_changed_script_is_reported_at_its_first_different_step(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace(agents()))
        asked = await h.run({"message": "ship"}, agent_id="stepped")
        script = [dict(step) for step in STEPPED["script"]]
        script[0] = {"say": "searching"}
        changed = Harness(h.journal, workspace(agents()), adapters={"stepped": ScriptedAgent(script)})
        report = await changed.replay(asked.run_id)
        said = [e for e in h.journal.history(asked.run_id) if e.data.get("kind") == "output"][0]
        assert report.divergence is not None and report.divergence.version == said.version
        assert report.divergence.now == {"kind": "output", "value": {"text": "searching"}}

    asyncio.run(go())


def test_a_fork_replays_identically_against_its_own_record(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace(agents()))
        run = await h.run({"message": "m"}, agent_id="researcher")
        fork = h.journal.fork(run.run_id, at_version=h.journal.get_run(run.run_id).version)
        await h.wait(fork.run_id)
        assert (await h.replay(fork.run_id)).identical

    asyncio.run(go())


def test_an_execution_its_worker_never_finished_is_compared_as_far_as_it_got(make_harness) -> None:
    async def go() -> None:
        clock = ManualClock()
        j = Journal.open("memory://", clock=clock)
        run = j.submit(agent_id="stepped", input={"message": "ship"})
        claim = j.claim_next(worker_id="gone", start=True, lease_seconds=5)
        j.record_step(claim, "output", {"text": "looking"})  # the worker died after this
        clock.advance(10)
        j.expire_leases(can_replay=lambda _agent: True)
        h = Harness(j, workspace(agents()), worker_id="w2")
        done = await h.wait(run.run_id)
        assert done.state == "waiting_for_approval"
        report = await h.replay(run.run_id)
        assert report.identical and report.executions == 2
        j.close()

    asyncio.run(go())


def test_replaying_a_run_of_an_agent_the_workspace_lacks_is_refused(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace(agents()))
        run = h.journal.submit(agent_id="elsewhere", input={"message": "x"})
        try:
            await h.replay(run.run_id)
        except UnknownAgent as e:
            assert e.agent_id == "elsewhere"
        else:
            raise AssertionError("replay of an unknown agent's run was not refused")

    asyncio.run(go())
