"""A listener that raises is logged and counted; it never changes a run or stops the worker loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runjournal import StreamEvent

from .conftest import types, workspace

HANG = 10.0  # a hang detector, not a timing assertion: a sound harness answers in milliseconds
KINDS = ["state", "queue.position", "reasoning", "content", "step", "tool_result", "approval"]
EVERYTHING = {  # emits every kind of stream event, and pauses once for approval
    "adapter": "scripted",
    "script": [
        {"reasoning": "checking"},
        {"say": "Planning. "},
        {"step": {"phase": "plan"}},
        {"tool_call": {"name": "search", "args": {"q": "v2"}}, "result": {"hits": 3}},
        {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True},
        {"say": "Deployed"},
    ],
}


class RaisesOn:
    """A listener with a bug: raises on every event of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.raised = 0

    def __call__(self, event: StreamEvent) -> None:
        if event.type == self.kind:
            self.raised += 1
            raise RuntimeError(f"listener broke on {self.kind}")


async def deploy(h: Any) -> tuple[Any, Any]:
    """Run the deploy to its approval, approve it, and return both results."""
    paused = await asyncio.wait_for(h.run({"message": "deploy"}, agent_id="agent"), HANG)
    done = await asyncio.wait_for(h.resume(approval_id=paused.approval_id, decision="approve"), HANG)
    return paused, done


def reference_history(make_harness: Any) -> list[str]:
    h = make_harness(workspace({"agent": EVERYTHING}))
    _, done = asyncio.run(deploy(h))
    return types(h.journal, done.run_id)


@pytest.mark.parametrize("kind", KINDS)
def test_a_listener_raising_on_one_kind_of_event_changes_no_run(make_harness, runjournal_logs, kind):
    expected = reference_history(make_harness)
    h = make_harness(workspace({"agent": EVERYTHING}))
    broken, seen = RaisesOn(kind), []
    h.subscribe(broken)
    h.subscribe(seen.append)  # subscribed after the broken one: still gets every event

    paused, done = asyncio.run(deploy(h))

    assert paused.state == "waiting_for_approval"
    assert (done.state, done.output, done.error) == ("completed", {"text": "Deployed"}, None)
    assert types(h.journal, done.run_id) == expected
    assert broken.raised > 0
    assert sum(e.type == kind for e in seen) == broken.raised
    health = h.health()
    assert health.listener_errors == broken.raised
    assert (health.adapter_successes, health.adapter_failures) == (2, 0)
    failures = [entry for entry in runjournal_logs if entry["event"] == "listener failed"]
    assert len(failures) == broken.raised
    assert all(f["stream_event"] == kind and f["level"] == "error" for f in failures)
    assert all("RaisesOn" in f["listener"] and f["run_id"] == done.run_id for f in failures)
    assert all(f["error"] == f"RuntimeError: listener broke on {kind}" for f in failures)
    assert all("Traceback" in f["exception"] for f in failures)


def test_a_listener_raising_on_every_event_leaves_the_worker_serving_many_runs(make_harness):
    h = make_harness(workspace(concurrency={"max_concurrent_runs": 2}))
    calls = []

    def always_broken(event: StreamEvent) -> None:
        calls.append(event.type)
        raise ValueError("no")

    h.subscribe(always_broken)

    async def main() -> list[Any]:
        runs = [h.run({"message": str(i)}) for i in range(5)]
        return await asyncio.wait_for(asyncio.gather(*runs), HANG)

    results = asyncio.run(main())

    assert [(r.state, r.output) for r in results] == [("completed", {"text": f"echo: {i}"}) for i in range(5)]
    assert {"state", "content", "queue.position"} <= set(calls)
    assert h.health().listener_errors == len(calls)


def test_a_stream_still_yields_every_event_past_a_broken_listener(make_harness):
    h = make_harness(workspace({"agent": EVERYTHING}))
    h.subscribe(RaisesOn("content"))

    async def main() -> list[StreamEvent]:
        async def collect() -> list[StreamEvent]:
            return [e async for e in h.stream({"message": "deploy"}, agent_id="agent")]

        return await asyncio.wait_for(collect(), HANG)

    events = asyncio.run(main())

    assert [e.type for e in events if e.type != "queue.position"] == [
        "state", "state", "reasoning", "content", "step", "tool_result", "approval", "state",
    ]
    assert events[-1].data["state"] == "waiting_for_approval"
    assert h.health().listener_errors == 1
