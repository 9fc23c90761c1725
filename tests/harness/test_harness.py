"""The harness: slots, priorities, approvals, cancellation, streaming, routing, policy, threads, leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentFailed, AgentRequest, Chunk, ScriptedAgent
from runjournal.adapters.clock import ManualClock

from runjournal import InvalidTransition, RunNotFound, StreamEvent, UnknownAgent
from runjournal.domain import LEASED_STATES, RunState
from runjournal.domain.transitions import check

from .conftest import DEPLOYER, ECHO, Gated, event, global_log, types, workspace

HOLDING = LEASED_STATES  # states in which a run holds a worker slot


def say(text: str) -> dict[str, Any]:
    return {"adapter": "scripted", "script": [{"say": text}]}


async def until(predicate: Any, *, timeout: float = 2.0) -> None:
    """Yield to the loop until ``predicate()`` holds (fails the test after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


# -- python agents (loaded by PythonAgent as f"{__name__}:name") ---------------------------------

SEEN_MESSAGES: dict[str, tuple[dict[str, str], ...]] = {}
INVOKED: list[str] = []


async def recall(request: AgentRequest) -> AsyncIterator[Any]:
    SEEN_MESSAGES[request.message] = request.messages
    yield f"reply to {request.message}"


async def repeats_tool_results(request: AgentRequest) -> AsyncIterator[Any]:
    same = Chunk.tool("search", {"q": "x"}, {"hits": 1})
    yield same
    yield same  # identical and consecutive: dropped
    yield Chunk.tool("search", {"q": "y"}, {"hits": 2})
    yield same  # identical to an earlier one but not consecutive: kept
    yield "done"


async def breaks_midway(request: AgentRequest) -> AsyncIterator[Any]:
    yield "partial answer"
    raise RuntimeError("connection reset")


async def breaks_at_once(request: AgentRequest) -> AsyncIterator[Any]:
    raise RuntimeError("stream not available")
    yield "never"  # pragma: no cover - makes this an async generator


async def breaks_at_once_invoke(request: AgentRequest) -> list[Any]:
    INVOKED.append(request.run_id)
    return ["answer from invoke"]


async def breaks_without_invoke(request: AgentRequest) -> AsyncIterator[Any]:
    raise AgentFailed("model unavailable")
    yield "never"  # pragma: no cover


class StreamsNothingButInvokes:
    """An adapter object whose stream fails before any output and whose invoke works."""

    supports_replay = False

    def __init__(self) -> None:
        self.invoked = 0

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        raise ConnectionError("no stream today")
        yield Chunk.say("never")  # pragma: no cover

    async def invoke(self, request: AgentRequest) -> list[Chunk]:
        self.invoked += 1
        return [Chunk.step({"via": "invoke"}), Chunk.say("invoked")]


def python(name: str) -> dict[str, Any]:
    return {"adapter": "python", "callable": f"{__name__}:{name}"}


# -- slots and priorities --------------------------------------------------------------------


def test_twenty_runs_through_two_slots_never_hold_more_than_two_slots_at_once_in_the_log(make_harness):
    sleeps = [0.01, 0.02, 0.03, 0.04, 0.05]
    agents = {f"sleep{i}": {"adapter": "scripted", "script": [{"sleep": s}, {"say": "ok"}]} for i, s in enumerate(sleeps)}
    h = make_harness(workspace(agents, concurrency={"max_concurrent_runs": 2}))

    async def main() -> list[Any]:
        return await asyncio.gather(*(h.run({"message": str(i)}, agent_id=f"sleep{i % 5}") for i in range(20)))

    results = asyncio.run(main())
    assert [r.state for r in results] == ["completed"] * 20

    log = global_log(h.journal)
    assert [e.position for e in log] == sorted(e.position for e in log)
    state: dict[str, str] = {}
    holding, most = 0, 0
    for e in log:
        before = state.get(e.run_id)
        after = RunState.CREATED if before is None else check(e.run_id, before, e.type, e.data.get("to_state"))
        holding += (after in HOLDING) - (before in HOLDING)
        most = max(most, holding)
        state[e.run_id] = after
    assert holding == 0
    assert most == 2
    assert set(state.values()) == {"completed"}
    assert sum(e.type == "Started" for e in log) == 20


def test_one_slot_starts_queued_runs_by_priority_then_in_submission_order(make_harness):
    h = make_harness(workspace({"echo": ECHO}, concurrency={"max_concurrent_runs": 1}))
    priorities = [0, 5, 1, 5, -1, 1, 0]

    async def main() -> list[str]:
        ids = [h.submit({"message": str(i)}, priority=p).run_id for i, p in enumerate(priorities)]
        await h.work(until_idle=True)
        return ids

    ids = asyncio.run(main())
    started = [e.run_id for e in global_log(h.journal) if e.type == "Started"]
    expected = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-priorities[i], i))]
    assert started == expected
    assert [h.journal.get_run(i).state for i in ids] == ["completed"] * len(ids)


def test_a_higher_priority_run_moves_the_queued_runs_back_one_place(make_harness):
    h = make_harness(workspace({"echo": ECHO}, concurrency={"max_concurrent_runs": 1}))
    seen: list[StreamEvent] = []

    async def main() -> tuple[str, str, str]:
        h.subscribe(seen.append)
        a = h.submit("a").run_id
        b = h.submit("b").run_id
        before = [(e.run_id, e.data["position"]) for e in seen if e.type == "queue.position"]
        assert before == [(a, 1), (b, 2)]
        seen.clear()
        c = h.submit("c", priority=10).run_id
        await h.work(until_idle=True)
        return a, b, c

    a, b, c = asyncio.run(main())
    moved = [(e.run_id, e.data["position"]) for e in seen if e.type == "queue.position"]
    assert moved[:3] == [(c, 1), (a, 2), (b, 3)]
    assert moved[3:5] == [(a, 1), (b, 2)]  # and they move up again as runs ahead of them are claimed
    assert all(e.data["max_concurrent_runs"] == 1 for e in seen if e.type == "queue.position")
    assert [e.run_id for e in global_log(h.journal) if e.type == "Started"] == [c, a, b]


# -- approvals --------------------------------------------------------------------------------


def run_to_approval(h: Any) -> Any:
    return asyncio.run(h.run({"message": "deploy to prod"}, agent_id="deployer"))


def test_approving_a_tool_call_resumes_the_run_cross_restart_and_completes_it(make_harness):
    h = make_harness()
    paused = run_to_approval(h)
    assert paused.state == "waiting_for_approval"
    assert paused.approval_id == f"{paused.run_id}.a1"
    requested = event(h.journal, paused.run_id, "ApprovalRequested")
    assert requested.data["approval_id"] == paused.approval_id
    assert requested.data["tool_name"] == "deploy"
    assert requested.data["tool_args"] == {"env": "prod"}
    assert requested.data["checkpoint_ref"] == "step:0"

    done = asyncio.run(h.resume(approval_id=paused.approval_id, decision="approve", actor="alice"))

    assert done.state == "completed"
    assert done.output == {"text": "Deployed"}
    assert types(h.journal, done.run_id) == [
        "Created", "Queued", "Dequeued", "Started", "ApprovalRequested",
        "ApprovalResolved", "Dequeued", "Resumed", "StepRecorded", "Completed",
    ]
    resolved = event(h.journal, done.run_id, "ApprovalResolved")
    assert resolved.actor == "alice"
    assert resolved.data["decision"] == "approve"
    assert resolved.data["edited_args"] is None
    resumed = event(h.journal, done.run_id, "Resumed")
    assert resumed.data["resume_kind"] == "cross-restart"
    assert resumed.data["decision"]["decision"] == "approve"
    step = event(h.journal, done.run_id, "StepRecorded")
    assert step.data["kind"] == "tool_result"
    assert step.data["content"]["tool"] == "deploy"
    assert step.data["content"]["args"] == {"env": "prod"}


def test_rejecting_a_tool_call_tells_the_agent_and_completes_without_running_the_tool(make_harness):
    h = make_harness()
    paused = run_to_approval(h)

    done = asyncio.run(h.resume(approval_id=paused.approval_id, decision="reject", actor="bob"))

    assert done.state == "completed"
    assert done.output["text"].startswith("Tool deploy was rejected.")
    assert "StepRecorded" not in types(h.journal, done.run_id)
    resolved = event(h.journal, done.run_id, "ApprovalResolved")
    assert (resolved.actor, resolved.data["decision"]) == ("bob", "reject")
    assert event(h.journal, done.run_id, "Resumed").data["resume_kind"] == "cross-restart"
    assert types(h.journal, done.run_id)[-1] == "Completed"


def test_editing_a_tool_call_runs_the_tool_with_the_edited_arguments(make_harness):
    h = make_harness()
    paused = run_to_approval(h)

    done = asyncio.run(
        h.resume(approval_id=paused.approval_id, decision="edit", edits={"env": "staging"}, actor="carol")
    )

    assert done.state == "completed"
    resolved = event(h.journal, done.run_id, "ApprovalResolved")
    assert resolved.actor == "carol"
    assert resolved.data["decision"] == "edit"
    assert resolved.data["edits"] == {"env": "staging"}
    assert resolved.data["edited_args"] == {"env": "staging"}
    assert resolved.data["edited_args_digest"]
    step = event(h.journal, done.run_id, "StepRecorded")
    assert step.data["kind"] == "tool_result"
    assert step.data["content"]["args"] == {"env": "staging"}
    assert types(h.journal, done.run_id)[-3:] == ["Resumed", "StepRecorded", "Completed"]


def test_resolving_the_same_approval_twice_is_an_invalid_transition_and_appends_nothing(make_harness):
    h = make_harness()
    paused = run_to_approval(h)
    asyncio.run(h.resume(approval_id=paused.approval_id, decision="approve"))
    end = h.journal.max_position()

    with pytest.raises(InvalidTransition):
        asyncio.run(h.resume(approval_id=paused.approval_id, decision="approve"))

    assert h.journal.max_position() == end
    assert types(h.journal, paused.run_id).count("ApprovalResolved") == 1


def test_resuming_by_thread_id_decides_the_threads_pending_approval(make_harness):
    h = make_harness()
    paused = asyncio.run(h.run({"message": "deploy"}, agent_id="deployer", thread_id="ops"))

    done = asyncio.run(h.resume(thread_id="ops", decision="approve"))

    assert (done.run_id, done.state, done.thread_id) == (paused.run_id, "completed", "ops")
    with pytest.raises(RunNotFound):
        asyncio.run(h.resume(thread_id="ops", decision="approve"))


# -- cancellation -----------------------------------------------------------------------------


def test_cancelling_a_queued_run_behind_a_busy_slot_cancels_it_at_once(make_harness):
    gated = Gated()
    h = make_harness(
        workspace({"echo": ECHO}, concurrency={"max_concurrent_runs": 1}), adapters={"gated": gated}
    )

    async def main() -> tuple[str, str, str]:
        busy = h.submit("hold the slot", agent_id="gated").run_id
        waiting = h.submit("wait", agent_id="gated").run_id
        worker = asyncio.create_task(h.work(until_idle=True))
        await until(lambda: gated.started)
        assert h.journal.get_run(waiting).state == "queued"
        cancelled = await h.cancel(waiting, reason="not needed", actor="dave")
        assert cancelled.state == "cancelled"
        gated.gate.set()
        await worker
        return busy, waiting, cancelled.state

    busy, waiting, _ = asyncio.run(main())
    assert types(h.journal, waiting) == ["Created", "Queued", "Cancelled"]
    cancelled = event(h.journal, waiting, "Cancelled")
    assert (cancelled.actor, cancelled.data["reason"]) == ("dave", "not needed")
    assert gated.started == [busy]
    assert h.journal.get_run(busy).state == "completed"


def test_cancelling_a_run_waiting_for_approval_cancels_it_and_the_approval_can_no_longer_be_resumed(make_harness):
    h = make_harness()
    paused = run_to_approval(h)

    cancelled = asyncio.run(h.cancel(paused.run_id, actor="erin"))

    assert cancelled.state == "cancelled"
    assert types(h.journal, paused.run_id)[-2:] == ["ApprovalRequested", "Cancelled"]
    assert h.journal.pending_approvals() == []
    with pytest.raises(InvalidTransition):
        asyncio.run(h.resume(approval_id=paused.approval_id, decision="approve"))


def test_cancelling_a_running_run_lets_its_worker_stop_it_and_discards_its_output(make_harness):
    gated = Gated()
    h = make_harness(adapters={"gated": gated})

    async def main() -> tuple[str, Any, Any]:
        run_id = h.submit("long job", agent_id="gated").run_id
        waiting = asyncio.create_task(h.wait(run_id))
        await until(lambda: gated.started)
        requested = await h.cancel(run_id, reason="too slow")
        gated.gate.set()
        return run_id, requested, await waiting

    run_id, requested, result = asyncio.run(main())
    assert requested.state == "cancelling"
    assert result.state == "cancelled"
    assert result.output is None
    assert types(h.journal, run_id) == ["Created", "Queued", "Dequeued", "Started", "CancelRequested", "Cancelled"]
    assert event(h.journal, run_id, "Cancelled").actor == "worker:w1"
    assert h.journal.get_run(run_id).output is None


def test_a_cancel_recorded_by_another_process_stops_the_run_at_its_next_check(make_harness):
    gated = Gated()
    h = make_harness(adapters={"gated": gated})

    async def main() -> tuple[str, Any]:
        run_id = h.submit("long job", agent_id="gated").run_id
        waiting = asyncio.create_task(h.wait(run_id))
        await until(lambda: gated.started)
        h.journal.cancel(run_id, actor="ops")  # straight on the journal: this harness is not told
        gated.gate.set()
        return run_id, await waiting

    run_id, result = asyncio.run(main())
    assert result.state == "cancelled"
    assert result.output is None
    assert types(h.journal, run_id)[-2:] == ["CancelRequested", "Cancelled"]


def test_a_run_cancelled_while_claimed_by_a_dead_worker_is_cancelled_when_its_lease_runs_out(make_harness):
    clock = ManualClock()
    h = make_harness(clock=clock)
    run = h.journal.submit(agent_id="echo", input="x")
    h.journal.claim_next(worker_id="dead", lease_seconds=5)

    requested = asyncio.run(h.cancel(run.run_id, actor="ops"))
    assert requested.state == "cancelling"
    clock.advance(6)
    result = asyncio.run(h.wait(run.run_id))

    assert result.state == "cancelled"
    assert types(h.journal, run.run_id) == ["Created", "Queued", "Dequeued", "CancelRequested", "Cancelled"]
    assert event(h.journal, run.run_id, "Cancelled").actor == "system:lease"


def test_cancelling_a_run_whose_approval_was_decided_cancels_it_before_it_resumes(make_harness):
    h = make_harness()
    paused = run_to_approval(h)
    h.journal.resolve_approval(paused.approval_id, decision="approve", actor="alice")

    cancelled = asyncio.run(h.cancel(paused.run_id, actor="bob"))

    assert cancelled.state == "cancelled"
    assert types(h.journal, paused.run_id)[-3:] == ["ApprovalResolved", "CancelRequested", "Cancelled"]
    asyncio.run(h.work(until_idle=True))
    assert "Resumed" not in types(h.journal, paused.run_id)


def test_cancelling_a_finished_run_returns_it_unchanged_and_appends_nothing(make_harness):
    h = make_harness()
    done = asyncio.run(h.run("hi"))
    end = h.journal.max_position()

    same = asyncio.run(h.cancel(done.run_id))

    assert (same.state, same.output) == ("completed", {"text": "echo: hi"})
    assert h.journal.max_position() == end
    with pytest.raises(RunNotFound):
        asyncio.run(h.cancel("00000000-0000-0000-0000-000000000000"))


# -- streaming --------------------------------------------------------------------------------


def test_stream_yields_reasoning_content_steps_tool_results_approval_and_state_in_order(make_harness):
    agent = {
        "adapter": "scripted",
        "script": [
            {"reasoning": "checking {message}"},
            {"say": "Planning"},
            {"step": {"phase": "plan"}},
            {"tool_call": {"name": "search", "args": {"q": "release"}}, "result": {"hits": 3}},
            {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True},
            {"say": "Deployed"},
        ],
    }
    h = make_harness(workspace({"agent": agent}))

    async def main() -> list[StreamEvent]:
        return [e async for e in h.stream({"message": "v2"}, agent_id="agent")]

    events = asyncio.run(main())
    kinds = [e.type for e in events if e.type != "queue.position"]
    assert kinds == ["state", "state", "reasoning", "content", "step", "tool_result", "approval", "state"]
    assert len({e.run_id for e in events}) == 1
    states = [e.data["state"] for e in events if e.type == "state"]
    assert states == ["queued", "running", "waiting_for_approval"]
    by_type = {e.type: e.data for e in events}
    assert by_type["reasoning"] == {"text": "checking v2"}
    assert by_type["content"] == {"text": "Planning"}
    assert by_type["step"] == {"content": {"phase": "plan"}}
    assert by_type["tool_result"]["tool"] == "search"
    assert by_type["tool_result"]["output"] == {"hits": 3}
    assert by_type["approval"]["tool_name"] == "deploy"
    assert by_type["approval"]["approval_id"] == f"{events[0].run_id}.a1"


def test_identical_consecutive_tool_results_are_recorded_once(make_harness):
    h = make_harness(workspace({"tools": python("repeats_tool_results")}))

    result = asyncio.run(h.run("go", agent_id="tools"))

    assert result.state == "completed"
    recorded = [e.data["content"] for e in h.journal.history(result.run_id) if e.type == "StepRecorded"]
    assert [(r["tool"], r["args"], r["output"]) for r in recorded] == [
        ("search", {"q": "x"}, {"hits": 1}),
        ("search", {"q": "y"}, {"hits": 2}),
        ("search", {"q": "x"}, {"hits": 1}),
    ]


def test_an_agent_that_fails_after_some_output_fails_the_run_with_its_error(make_harness):
    h = make_harness(workspace({"midway": python("breaks_midway")}))

    result = asyncio.run(h.run("go", agent_id="midway"))

    assert result.state == "failed"
    assert result.error == "RuntimeError: connection reset"
    assert types(h.journal, result.run_id)[-1] == "Failed"
    assert h.journal.get_run(result.run_id).output is None


def test_a_scripted_failure_after_output_fails_the_run_with_the_scripts_message(make_harness):
    h = make_harness(workspace({"flaky": {"adapter": "scripted", "script": [{"say": "hi"}, {"fail": "quota exceeded"}]}}))

    result = asyncio.run(h.run("go", agent_id="flaky"))

    assert (result.state, result.error) == ("failed", "quota exceeded")


def test_a_stream_that_fails_before_any_output_falls_back_to_the_modules_invoke_once(make_harness):
    INVOKED.clear()
    h = make_harness(workspace({"fallback": python("breaks_at_once")}))

    result = asyncio.run(h.run("go", agent_id="fallback"))

    assert result.state == "completed"
    assert result.output == {"text": "answer from invoke"}
    assert INVOKED == [result.run_id]


def test_a_stream_that_fails_before_any_output_falls_back_to_the_adapters_invoke_once(make_harness):
    adapter = StreamsNothingButInvokes()
    h = make_harness(adapters={"obj": adapter})

    result = asyncio.run(h.run("go", agent_id="obj"))

    assert result.state == "completed"
    assert result.output == {"text": "invoked"}
    assert adapter.invoked == 1
    assert event(h.journal, result.run_id, "StepRecorded").data["content"] == {"via": "invoke"}


def test_a_stream_that_fails_before_any_output_without_invoke_fails_the_run(make_harness):
    h = make_harness(workspace({"down": python("breaks_without_invoke")}))

    result = asyncio.run(h.run("go", agent_id="down"))

    assert (result.state, result.error) == ("failed", "model unavailable")


def test_an_agent_slower_than_invoke_timeout_fails_with_timed_out_after(make_harness):
    slow = {"adapter": "scripted", "script": [{"say": "thinking"}, {"sleep": 5}, {"say": "late"}]}
    h = make_harness(workspace({"slow": slow}, streaming={"invoke_timeout_seconds": 0.2}))

    result = asyncio.run(h.run("go", agent_id="slow"))

    assert result.state == "failed"
    assert result.error == "timed out after 0.2 s"
    assert "Completed" not in types(h.journal, result.run_id)


# -- routing and policy -----------------------------------------------------------------------


def routed_workspace(**routing: Any) -> Any:
    agents = {"echo": say("echo"), "deployer": say("deployer"), "helper": say("helper")}
    return workspace(agents, routing=routing or {"default_agent": "echo", "rules": [{"match": "deploy", "agent": "deployer"}]})


def test_an_explicit_agent_wins_over_rules_and_default(make_harness):
    h = make_harness(routed_workspace())
    assert asyncio.run(h.run({"message": "deploy now"}, agent_id="helper")).agent_id == "helper"


def test_the_first_matching_rule_routes_a_message_without_an_agent(make_harness):
    h = make_harness(routed_workspace(rules=[{"match": "deploy", "agent": "deployer"}, {"match": "dep", "agent": "helper"}]))
    result = asyncio.run(h.run({"message": "please deploy"}))
    assert (result.agent_id, result.output) == ("deployer", {"text": "deployer"})


def test_the_default_agent_takes_a_message_no_rule_matches(make_harness):
    h = make_harness(routed_workspace())
    assert asyncio.run(h.run({"message": "hello"})).agent_id == "echo"


def test_a_second_run_on_a_thread_goes_to_the_threads_agent(make_harness):
    h = make_harness(routed_workspace())

    async def main() -> tuple[Any, Any]:
        first = await h.run({"message": "hello"}, agent_id="helper", thread_id="t1")
        second = await h.run({"message": "deploy it"}, thread_id="t1")
        return first, second

    first, second = asyncio.run(main())
    assert (first.agent_id, second.agent_id) == ("helper", "helper")
    assert second.thread_id == "t1"


def test_an_unknown_agent_raises_before_anything_is_appended(make_harness):
    h = make_harness(routed_workspace())
    asyncio.run(h.run("warm up"))
    end = h.journal.max_position()

    with pytest.raises(UnknownAgent):
        asyncio.run(h.run("hi", agent_id="nobody"))
    assert h.journal.max_position() == end


def test_no_rule_and_no_default_agent_is_an_unknown_agent(make_harness):
    h = make_harness(routed_workspace(rules=[{"match": "deploy", "agent": "deployer"}]))

    with pytest.raises(UnknownAgent):
        h.submit({"message": "hello"})
    assert h.journal.max_position() == 0


def test_a_denied_agent_fails_the_run_before_it_starts(make_harness):
    h = make_harness(workspace({"echo": ECHO, "risky": ECHO}, policy={"deny_agents": ["risky"]}))

    result = asyncio.run(h.run("hi", agent_id="risky"))

    assert result.state == "failed"
    assert result.error is not None and result.error.startswith("Policy evaluation blocked agent risky: ")
    assert types(h.journal, result.run_id) == ["Created", "Failed"]


def test_a_denied_tool_fails_the_run_at_that_tool_call(make_harness):
    agent = {"adapter": "scripted", "script": [
        {"say": "cleaning up"},
        {"tool_call": {"name": "rm", "args": {"path": "/"}}},
        {"say": "never said"},
    ]}
    h = make_harness(workspace({"agent": agent}, policy={"deny_tools": ["rm"]}))

    result = asyncio.run(h.run("go", agent_id="agent"))

    assert result.state == "failed"
    assert result.error is not None and result.error.startswith("Policy evaluation blocked tool rm: ")
    # what it said before the call is part of the record; nothing of the call is
    assert types(h.journal, result.run_id) == ["Created", "Queued", "Dequeued", "Started", "StepRecorded", "Failed"]
    said = event(h.journal, result.run_id, "StepRecorded").data
    assert (said["kind"], said["content"]) == ("output", {"text": "cleaning up"})


def test_a_denied_tool_needing_approval_fails_instead_of_asking(make_harness):
    h = make_harness(workspace({"deployer": DEPLOYER}, policy={"deny_tools": ["deploy"]}))

    result = asyncio.run(h.run("go", agent_id="deployer"))

    assert result.state == "failed"
    assert result.error is not None and result.error.startswith("Policy evaluation blocked tool deploy: ")
    assert "ApprovalRequested" not in types(h.journal, result.run_id)


# -- threads and health -----------------------------------------------------------------------


def test_an_agent_on_a_thread_gets_the_prior_runs_messages(make_harness):
    SEEN_MESSAGES.clear()
    h = make_harness(workspace({"recall": python("recall")}))

    async def main() -> None:
        await h.run({"message": "first"}, agent_id="recall", thread_id="chat")
        await h.run({"message": "second"}, agent_id="recall", thread_id="chat")
        await h.run({"message": "elsewhere"}, agent_id="recall", thread_id="other")

    asyncio.run(main())
    assert SEEN_MESSAGES["first"] == ()
    assert SEEN_MESSAGES["second"] == (
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply to first"},
    )
    assert SEEN_MESSAGES["elsewhere"] == ()


def test_health_counts_slots_queue_approvals_and_adapter_outcomes(make_harness, clock):
    agents = {"echo": ECHO, "deployer": DEPLOYER, "broken": {"adapter": "scripted", "script": [{"fail": "no"}]}}
    h = make_harness(workspace(agents, concurrency={"max_concurrent_runs": 3}), clock=clock)

    async def main() -> None:
        await h.run("ok")
        await h.run("deploy", agent_id="deployer")
        await h.run("bad", agent_id="broken")
        h.submit("later")
        clock.advance(7)
        h.submit("later still")

    asyncio.run(main())
    health = h.health()
    assert health.worker_id == "w1"
    assert health.active_slots == 0
    assert health.max_concurrent_runs == 3
    assert health.queued == 2
    assert health.waiting_for_approval == 1
    assert health.adapter_successes == 2  # completed, and paused for approval
    assert health.adapter_failures == 1
    assert health.oldest_queued_age_seconds == 7.0


def test_health_shows_a_busy_slot_while_a_run_is_running(make_harness):
    gated = Gated()
    h = make_harness(adapters={"gated": gated})

    async def main() -> tuple[Any, Any]:
        run_id = h.submit("x", agent_id="gated").run_id
        waiting = asyncio.create_task(h.wait(run_id))
        await until(lambda: gated.started)
        busy = h.health()
        gated.gate.set()
        await waiting
        return busy, h.health()

    busy, idle = asyncio.run(main())
    assert (busy.active_slots, busy.queued, busy.oldest_queued_age_seconds) == (1, 0, None)
    assert (idle.active_slots, idle.adapter_successes) == (0, 1)


def test_submitting_twice_with_one_idempotency_key_runs_once(make_harness):
    h = make_harness()

    async def main() -> tuple[Any, Any]:
        first = await h.run("once", idempotency_key="job-1")
        second = await h.run("once", idempotency_key="job-1")
        return first, second

    first, second = asyncio.run(main())
    assert first == second
    assert types(h.journal, first.run_id).count("Completed") == 1
    assert len(h.journal.runs()) == 1


def test_a_python_agent_that_cannot_be_imported_fails_the_run_with_the_import_error(make_harness):
    h = make_harness(workspace({"ghost": {"adapter": "python", "callable": "no_such_module_here:agent"}}))

    result = asyncio.run(h.run("x", agent_id="ghost"))

    assert result.state == "failed"
    assert result.error is not None and "cannot import agent 'no_such_module_here:agent'" in result.error


def test_an_unknown_decision_or_an_edit_without_arguments_is_refused_and_appends_nothing(make_harness):
    h = make_harness()
    paused = run_to_approval(h)
    end = h.journal.max_position()

    with pytest.raises(ValueError, match="decision"):
        asyncio.run(h.resume(approval_id=paused.approval_id, decision="maybe"))
    with pytest.raises(ValueError, match="edits"):
        asyncio.run(h.resume(approval_id=paused.approval_id, decision="edit"))

    assert h.journal.max_position() == end
    assert h.journal.get_run(paused.run_id).state == "waiting_for_approval"


# -- leases ---------------------------------------------------------------------------------


def test_a_run_whose_worker_died_is_expired_by_the_harness_loop_and_rerun(make_harness):
    clock = ManualClock()
    ws = workspace(
        {"echo": ECHO},
        concurrency={"lease_seconds": 5, "heartbeat_seconds": 1},
        recovery={"stale_running_after_seconds": 2},
    )
    h = make_harness(ws, clock=clock)
    run = h.journal.submit(agent_id="echo", input={"message": "again"})
    dead = h.journal.claim_next(worker_id="dead", lease_seconds=5, start=True)
    assert dead is not None and dead.run_id == run.run_id
    clock.advance(5 + 2 + 1)

    result = asyncio.run(h.wait(run.run_id))

    assert result.state == "completed"
    assert result.output == {"text": "echo: again"}
    assert types(h.journal, run.run_id) == [
        "Created", "Queued", "Dequeued", "Started", "LeaseExpired", "Dequeued", "Resumed", "Completed",
    ]
    expired = event(h.journal, run.run_id, "LeaseExpired")
    assert (expired.actor, expired.data["to_state"]) == ("system:lease", "queued")
    resumed = event(h.journal, run.run_id, "Resumed")
    assert resumed.data["resume_kind"] == "startup-running-recovery"
    assert resumed.actor == "worker:w1"


def test_a_running_run_inside_its_stale_grace_is_left_to_its_worker(make_harness):
    clock = ManualClock()
    ws = workspace({"echo": ECHO}, concurrency={"lease_seconds": 5, "heartbeat_seconds": 1},
                   recovery={"stale_running_after_seconds": 60})
    h = make_harness(ws, clock=clock)
    run = h.journal.submit(agent_id="echo", input="x")
    h.journal.claim_next(worker_id="slowpoke", lease_seconds=5, start=True)
    clock.advance(10)  # lease ran out, but not yet stale

    asyncio.run(h.work(until_idle=True))

    assert h.journal.get_run(run.run_id).state == "running"
    assert types(h.journal, run.run_id)[-1] == "Started"


def test_a_long_run_keeps_its_lease_by_heartbeats(make_harness):
    # Without renewals the lease (0.15 s) and the stale grace (0.01 s) would run out mid-run.
    slow = {"adapter": "scripted", "script": [{"sleep": 0.3}, {"say": "done"}]}
    ws = workspace({"slow": slow}, concurrency={"lease_seconds": 0.15, "heartbeat_seconds": 0.03},
                   recovery={"stale_running_after_seconds": 0.01})
    h = make_harness(ws)

    result = asyncio.run(h.run("go", agent_id="slow"))

    assert result.state == "completed"
    history = h.journal.history(result.run_id)
    renewals = [e for e in history if e.type == "LeaseRenewed"]
    assert len(renewals) >= 2
    assert all(e.data["worker_id"] == "w1" for e in renewals)
    assert "LeaseExpired" not in [e.type for e in history]


def test_a_worker_whose_lease_was_taken_over_cannot_complete_the_run(make_harness):
    clock = ManualClock()
    ws = workspace({"job": ECHO}, concurrency={"lease_seconds": 30, "heartbeat_seconds": 20},
                   recovery={"stale_running_after_seconds": 1})
    gated = Gated()
    first = make_harness(ws, clock=clock, adapters={"job": gated}, worker_id="first")
    second = make_harness(ws, journal=first.journal, worker_id="second")

    async def main() -> tuple[str, Any]:
        run_id = first.submit("x", agent_id="job").run_id
        waiting = asyncio.create_task(first.wait(run_id))
        await until(lambda: gated.started)
        clock.advance(30 + 1 + 1)  # the first worker looks dead: lease out, and stale
        taken = await second.wait(run_id)
        gated.gate.set()
        assert (await waiting).state == "completed"
        return run_id, taken

    run_id, taken = asyncio.run(main())
    assert taken.state == "completed"
    assert taken.output == {"text": "echo: x"}
    history = first.journal.history(run_id)
    assert [e.type for e in history].count("Completed") == 1
    assert event(first.journal, run_id, "Completed").actor == "worker:second"
    assert first.health().adapter_successes == 0


def test_a_harness_on_a_sqlite_file_runs_and_pauses_durably(make_harness, sqlite_url):
    h = make_harness(url=sqlite_url)
    paused = run_to_approval(h)
    done = asyncio.run(h.resume(approval_id=paused.approval_id, decision="approve"))
    assert done.state == "completed"
    assert h.journal.verify().ok
    assert isinstance(h.adapters["echo"], ScriptedAgent)
