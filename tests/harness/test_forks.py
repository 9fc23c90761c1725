"""Forks: a new run from another at a version, served the parent's recorded calls up to there, live after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentRequest

from runjournal import InvalidInput, Journal, RunNotFound

from .conftest import workspace

CALLS: list[str] = []  # every real tool call the python agent below makes


def lookup(**args: Any) -> dict[str, Any]:
    CALLS.append(f"lookup {args}")
    return {"hits": len(CALLS)}


def plan(message: str) -> str:
    CALLS.append(f"plan {message}")
    return f"plan for {message}"


async def researcher(request: AgentRequest) -> AsyncIterator[Any]:
    """Asks a model, then looks up twice: every call through the request, so a fork is served them."""
    planned = await request.model("planner", lambda: plan(request.message), args={"message": request.message})
    yield planned
    first = await request.tool("lookup", {"q": "a"}, lookup, call_id="c1")
    yield first
    second = await request.tool("lookup", {"q": request.message}, lookup, call_id="c2")
    yield second
    yield f"{planned.output}: {first.output['hits']} then {second.output['hits']}"


STEPPED = {"adapter": "scripted", "script": [
    {"say": "looking"},
    {"tool_call": {"name": "lookup", "args": {"q": "x"}}, "result": {"hits": 3}},
    {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True},
    {"say": "deployed"},
]}


def agents() -> dict[str, Any]:
    return {"stepped": STEPPED, "researcher": {"adapter": "python", "callable": f"{__name__}:researcher"}}


def steps(j: Journal, run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in j.history(run_id) if e.type == "StepRecorded"]


def version_of(j: Journal, run_id: str, kind: str, index: int = 0) -> int:
    return [e.version for e in j.history(run_id) if e.type == "StepRecorded" and e.data["kind"] == kind][index]


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def test_a_fork_is_served_its_parents_calls_up_to_the_fork_and_calls_live_after(make_harness) -> None:
    asyncio.run(_a_fork_is_served_its_parents_calls_up_to_the_fork_and_calls_live_after(make_harness))


async def _a_fork_is_served_its_parents_calls_up_to_the_fork_and_calls_live_after(make_harness) -> None:
    h = make_harness(workspace(agents()))
    parent = await h.run({"message": "m"}, agent_id="researcher")
    assert parent.state == "completed" and len(CALLS) == 3
    j = h.journal
    at = version_of(j, parent.run_id, "tool_result", 0)  # after the first lookup, before the second
    fork = j.fork(parent.run_id, at_version=at, actor="debugger")
    done = await h.wait(fork.run_id)
    assert done.state == "completed"
    assert CALLS == ["plan m", "lookup {'q': 'a'}", "lookup {'q': 'm'}", "lookup {'q': 'm'}"]  # only the 2nd again
    recorded = steps(j, fork.run_id)
    parent_versions = [s["content"].get("served_from") for s in recorded if s["kind"] in ("step", "tool_result")]
    model_v = version_of(j, parent.run_id, "step", 0)
    assert parent_versions == [{"run_id": parent.run_id, "version": model_v},
                               {"run_id": parent.run_id, "version": at}, None]
    assert done.output == {"text": "plan for m: 2 then 4"}  # the parent's hits for what was served, live after
    created = j.history(fork.run_id)[0]
    assert created.actor == "debugger"
    assert (created.data["parent_run_id"], created.data["parent_version"]) == (parent.run_id, at)
    assert created.data["fork"] == {"parent_chain": j.history(parent.run_id)[at - 1].chain, "input": "kept",
                                    "edits": None}
    assert j.get_run(fork.run_id).thread_id != parent.thread_id  # a new thread
    assert j.verify().ok


def test_a_fork_with_edited_input_is_served_only_what_still_matches(make_harness) -> None:
    asyncio.run(_a_fork_with_edited_input_is_served_only_what_still_matches(make_harness))


async def _a_fork_with_edited_input_is_served_only_what_still_matches(make_harness) -> None:
    h = make_harness(workspace(agents()))
    parent = await h.run({"message": "m", "user": "u"}, agent_id="researcher")
    j = h.journal
    fork = j.fork(parent.run_id, at_version=j.get_run(parent.run_id).version, edits={"message": "n", "user": None})
    assert j.get_run(fork.run_id).input == {"message": "n"}  # a merge patch: null removes
    CALLS.clear()
    await h.wait(fork.run_id)
    # The planner is asked with other args now: the record no longer describes the run, all is live.
    assert CALLS == ["plan n", "lookup {'q': 'a'}", "lookup {'q': 'n'}"]
    assert all("served_from" not in s["content"] for s in steps(j, fork.run_id) if s["kind"] != "output")
    assert j.history(fork.run_id)[0].data["fork"]["input"] == "edited"


def test_a_scripted_fork_repeats_the_recorded_tool_result_and_asks_its_approval_again(make_harness) -> None:
    asyncio.run(_a_scripted_fork_repeats_the_recorded_tool_result_and_asks_its_approval_again(make_harness))


async def _a_scripted_fork_repeats_the_recorded_tool_result_and_asks_its_approval_again(make_harness) -> None:
    h = make_harness(workspace(agents()))
    parent = await h.run({"message": "ship"}, agent_id="stepped")
    assert parent.state == "waiting_for_approval"
    approved = await h.resume(approval_id=parent.approval_id, actor="alice")
    assert approved.state == "completed"
    j = h.journal
    fork = j.fork(parent.run_id, at_version=version_of(j, parent.run_id, "tool_result"), input={"message": "again"})
    rested = await h.wait(fork.run_id)
    assert rested.state == "waiting_for_approval"  # a fork decides nothing its parent was asked
    tool = next(s["content"] for s in steps(j, fork.run_id) if s["kind"] == "tool_result")
    assert tool["served_from"]["run_id"] == parent.run_id and tool["output"] == {"hits": 3}
    assert j.history(fork.run_id)[0].data["fork"]["input"] == "replaced"


def test_forks_of_unknown_runs_and_versions_are_refused_and_append_nothing(journal: Journal) -> None:
    run = journal.submit(agent_id="a", input={"m": 1})
    before = journal.max_position()
    with pytest.raises(RunNotFound):
        journal.fork("0193b7c2-0000-7000-8000-000000000000", at_version=1)
    for version in (0, 3, -1):
        with pytest.raises(InvalidInput, match="versions 1..2"):
            journal.fork(run.run_id, at_version=version)
    with pytest.raises(InvalidInput, match="not both"):
        journal.fork(run.run_id, at_version=1, input={"m": 2}, edits={"m": 3})
    with pytest.raises(InvalidInput, match="merge patch"):
        journal.fork(run.run_id, at_version=1, edits=["m"])
    assert journal.max_position() == before
