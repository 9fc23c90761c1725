"""Config the reference runtime accepts: no slot limit, no heartbeats, recovery off everywhere, strict priorities."""

from __future__ import annotations

import asyncio

import pytest

from runjournal import ApprovalNotFound, InvalidInput, WorkspaceError

from .conftest import MakeHarness, global_log, types, workspace

SLOW = {"adapter": "scripted", "script": [{"sleep": 0.3}, {"say": "done {message}"}]}


def test_max_concurrent_runs_0_runs_every_queued_run_at_once(make_harness: MakeHarness) -> None:
    h = make_harness(workspace({"slow": SLOW}, routing={"default_agent": "slow"},
                               concurrency={"max_concurrent_runs": 0}))
    runs = [h.submit(f"r{i}") for i in range(12)]
    asyncio.run(h.work())
    ids = {r.run_id for r in runs}
    log = [(e.position, e.type) for e in global_log(h.journal) if e.run_id in ids]
    started = [p for p, t in log if t == "Started"]
    completed = [p for p, t in log if t == "Completed"]
    assert len(started) == len(completed) == 12
    assert max(started) < min(completed)  # all twelve held a slot together
    assert h.health().max_concurrent_runs == 0


def test_heartbeat_seconds_0_never_renews_a_lease(make_harness: MakeHarness) -> None:
    h = make_harness(workspace({"slow": SLOW}, routing={"default_agent": "slow"},
                               concurrency={"heartbeat_seconds": 0, "lease_seconds": 0.1}))
    result = asyncio.run(h.run("x"))
    assert result.state == "completed" and result.output == {"text": "done x"}
    assert "LeaseRenewed" not in types(h.journal, result.run_id)


def test_a_heartbeat_still_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(WorkspaceError, match=r"heartbeat_seconds: must be < lease_seconds \(got 30 >= 30\)"):
        workspace(concurrency={"heartbeat_seconds": 30, "lease_seconds": 30})


def test_recovery_enabled_false_switches_off_the_worker_loops_pass_too(make_harness: MakeHarness, clock) -> None:
    for enabled, expected in ((False, "claimed"), (True, "completed")):
        h = make_harness(workspace(recovery={"enabled": enabled}, concurrency={"lease_seconds": 5,
                                                                               "heartbeat_seconds": 1}), clock=clock)
        run = h.submit("left behind")
        assert h.journal.claim_next(worker_id="dead", lease_seconds=5) is not None
        clock.advance(6)
        asyncio.run(h.work())
        assert h.journal.get_run(run.run_id).state == expected
        assert ("LeaseExpired" in types(h.journal, run.run_id)) is enabled


@pytest.mark.parametrize("priority", ["3", 1.5, True, None])
def test_a_priority_that_is_not_an_integer_is_refused_alike(make_harness: MakeHarness, priority: object) -> None:
    h = make_harness()
    with pytest.raises(InvalidInput, match="priority: Input should be a valid integer"):
        h.journal.submit(agent_id="echo", input="x", priority=priority)  # type: ignore[arg-type]
    assert h.journal.max_position() == 0
    assert h.journal.submit(agent_id="echo", input="x", priority=3).priority == 3


def test_resuming_a_thread_with_nothing_pending_says_so_plainly(make_harness: MakeHarness) -> None:
    h = make_harness()
    done = asyncio.run(h.run("hello"))
    with pytest.raises(ApprovalNotFound) as raised:
        asyncio.run(h.resume(thread_id=done.thread_id))
    assert str(raised.value) == (f"thread {done.thread_id} has no pending approval to resume "
                                 "(list them with `runjournal approvals`)")
    assert raised.value.thread_id == done.thread_id and raised.value.code == "approval_not_found"
    with pytest.raises(InvalidInput, match="resume requires either thread_id or approval_id"):
        asyncio.run(h.resume())
