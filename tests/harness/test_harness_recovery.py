"""Startup recovery through the harness: each rule of DESIGN.md (Recovery), built with journal commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentRequest, Chunk

from runjournal import Harness, InvalidInput, Journal
from runjournal.app.models import Claim
from runjournal.runtime.recovery import EXHAUSTED, MISSING_REQUEST

from ..journal.helpers import legacy_run_without_request
from .conftest import DEPLOYER, ECHO, event, types, workspace

LEASE = 5
STALE = 60
CANNOT_REPLAY = "stale running run cannot be replayed safely"


def recovery_workspace(**recovery: Any) -> Any:
    agents = {
        "echo": ECHO,
        "deployer": DEPLOYER,
        "python": {"adapter": "python", "callable": f"{__name__}:never_called"},
    }
    return workspace(
        agents,
        concurrency={"lease_seconds": LEASE, "heartbeat_seconds": 1},
        recovery={"stale_running_after_seconds": STALE, **recovery},
    )


async def never_called(request: AgentRequest) -> AsyncIterator[Chunk]:
    raise AssertionError("a python agent must not be replayed")
    yield Chunk.say("never")  # pragma: no cover


@pytest.fixture
def harness(make_harness, clock) -> Harness:
    """A harness on a memory journal and the manual clock, with the default recovery settings."""
    return make_harness(recovery_workspace(), clock=clock)


def claimed(journal: Journal, agent_id: str = "echo", *, start: bool = False, input: Any = "x") -> Claim:  # noqa: A002
    """A run claimed (and, with ``start``, started) by a worker that then dies."""
    journal.submit(agent_id=agent_id, input=input)
    claim = journal.claim_next(worker_id="dead", lease_seconds=LEASE, start=start)
    assert claim is not None
    return claim


def without_request(journal: Journal) -> str:
    return legacy_run_without_request(journal, "echo")


def waiting_for_approval(journal: Journal) -> tuple[str, str]:
    """A deployer run paused on its deploy tool call: (run_id, approval_id)."""
    claim = claimed(journal, "deployer", start=True, input={"message": "deploy"})
    approval_id = journal.request_approval(
        claim, tool_name="deploy", tool_args={"env": "prod"}, tool_call_id="call-0", checkpoint_ref="step:0"
    )
    return claim.run_id, approval_id


def resuming(journal: Journal) -> str:
    """A deployer run whose approval was decided, with no worker picking it up yet."""
    run_id, approval_id = waiting_for_approval(journal)
    journal.resolve_approval(approval_id, decision="approve", actor="alice")
    return run_id


def recover(h: Harness) -> Any:
    return asyncio.run(h.recover())


def work(h: Harness) -> None:
    asyncio.run(h.work(until_idle=True))


# -- queued --------------------------------------------------------------------------------


def test_a_queued_run_without_a_persisted_request_fails(harness):
    run_id = without_request(harness.journal)

    report = recover(harness)

    snapshot = harness.journal.get_run(run_id)
    assert (snapshot.state, snapshot.error) == ("failed", MISSING_REQUEST)
    assert report.failed == {run_id: MISSING_REQUEST}
    failed = event(harness.journal, run_id, "Failed")
    assert (failed.actor, failed.data["previous_state"]) == ("system:recovery", "queued")


def test_a_stale_running_run_without_a_persisted_request_fails_as_the_reference_says(harness, clock):
    run_id = without_request(harness.journal)
    claim = harness.journal.claim_next(worker_id="dead", lease_seconds=LEASE, start=True)
    assert claim is not None and claim.run_id == run_id
    clock.advance(LEASE + STALE + 1)

    report = recover(harness)

    snapshot = harness.journal.get_run(run_id)
    assert (snapshot.state, snapshot.error) == ("failed", "missing persisted run request for stale running run recovery")
    assert report.failed == {run_id: snapshot.error}
    expired = event(harness.journal, run_id, "LeaseExpired")
    assert (expired.actor, expired.data["to_state"]) == ("system:lease", "failed")


def test_submit_refuses_a_run_without_an_input(harness):
    with pytest.raises(InvalidInput, match=r"input: a run needs an input \(any JSON value but null\)"):
        harness.journal.submit(agent_id="echo", input=None)
    assert harness.journal.max_position() == 0


def test_a_queued_run_stays_queued_and_is_run_from_its_persisted_request(harness):
    run = harness.journal.submit(agent_id="echo", input={"message": "from before the restart"})

    report = recover(harness)
    assert harness.journal.get_run(run.run_id).state == "queued"
    assert report.left == 1
    work(harness)

    done = harness.journal.get_run(run.run_id)
    assert (done.state, done.output) == ("completed", {"text": "echo: from before the restart"})


# -- claimed and running --------------------------------------------------------------------


def test_a_claimed_run_whose_lease_expired_is_queued_again(harness, clock):
    claim = claimed(harness.journal)
    clock.advance(LEASE + 1)

    report = recover(harness)

    assert harness.journal.get_run(claim.run_id).state == "queued"
    assert report.expired == [claim.run_id]
    expired = event(harness.journal, claim.run_id, "LeaseExpired")
    assert (expired.actor, expired.data["to_state"], expired.data["epoch"]) == ("system:lease", "queued", 1)
    work(harness)
    assert types(harness.journal, claim.run_id)[-3:] == ["Dequeued", "Started", "Completed"]


def test_a_claimed_run_whose_lease_is_still_current_is_untouched(harness, clock):
    claim = claimed(harness.journal)
    clock.advance(LEASE - 1)
    end = harness.journal.max_position()

    recover(harness)

    assert harness.journal.get_run(claim.run_id).state == "claimed"
    assert harness.journal.max_position() == end


def test_a_stale_running_run_of_a_replayable_agent_is_queued_and_replayed(harness, clock):
    claim = claimed(harness.journal, start=True, input={"message": "again"})
    clock.advance(LEASE + STALE + 1)

    report = recover(harness)

    assert harness.journal.get_run(claim.run_id).state == "queued"
    assert report.expired == [claim.run_id]
    expired = event(harness.journal, claim.run_id, "LeaseExpired")
    assert expired.data["to_state"] == "queued"
    assert expired.data["resume_kind"] == "startup-running-recovery"

    work(harness)

    done = harness.journal.get_run(claim.run_id)
    assert (done.state, done.output) == ("completed", {"text": "echo: again"})
    assert types(harness.journal, claim.run_id)[-3:] == ["Dequeued", "Resumed", "Completed"]
    resumed = event(harness.journal, claim.run_id, "Resumed")
    assert (resumed.data["resume_kind"], resumed.data["decision"]) == ("startup-running-recovery", None)


def test_a_stale_running_run_of_an_agent_without_replay_fails(harness, clock):
    claim = claimed(harness.journal, "python", start=True)
    clock.advance(LEASE + STALE + 1)

    recover(harness)
    work(harness)

    snapshot = harness.journal.get_run(claim.run_id)
    assert (snapshot.state, snapshot.error) == ("failed", CANNOT_REPLAY)
    assert types(harness.journal, claim.run_id)[-1] == "LeaseExpired"
    assert event(harness.journal, claim.run_id, "LeaseExpired").data["to_state"] == "failed"


def test_a_running_run_whose_lease_expired_less_than_the_stale_time_ago_is_untouched(harness, clock):
    claim = claimed(harness.journal, "python", start=True)
    clock.advance(LEASE + STALE - 1)
    end = harness.journal.max_position()

    recover(harness)

    assert harness.journal.get_run(claim.run_id).state == "running"
    assert harness.journal.max_position() == end


def test_a_cancelling_run_whose_worker_died_is_cancelled_when_its_lease_runs_out(harness, clock):
    claim = claimed(harness.journal, start=True)
    harness.journal.cancel(claim.run_id, reason="stop", actor="ops")
    clock.advance(LEASE + 1)

    report = recover(harness)

    assert report.expired == [claim.run_id]
    assert harness.journal.get_run(claim.run_id).state == "cancelled"
    cancelled = event(harness.journal, claim.run_id, "Cancelled")
    assert (cancelled.actor, cancelled.data["reason"]) == ("system:lease", "stop")


# -- resuming and waiting ----------------------------------------------------------------------


def test_a_resuming_run_gets_a_recovery_attempt_and_is_resumed_with_startup_recovery(harness):
    run_id = resuming(harness.journal)

    report = recover(harness)

    assert report.resumed == [run_id]
    attempted = event(harness.journal, run_id, "RecoveryAttempted")
    assert (attempted.actor, attempted.data["attempt"]) == ("system:recovery", 1)
    assert attempted.data["resume_kind"] == "startup-recovery"
    assert harness.journal.get_run(run_id).state == "resuming"

    work(harness)

    done = harness.journal.get_run(run_id)
    assert (done.state, done.output) == ("completed", {"text": "Deployed"})
    assert types(harness.journal, run_id)[-6:] == [
        "ApprovalResolved", "RecoveryAttempted", "Dequeued", "Resumed", "StepRecorded", "Completed",
    ]
    resumed = event(harness.journal, run_id, "Resumed")
    assert resumed.data["resume_kind"] == "startup-recovery"
    assert resumed.data["decision"]["decision"] == "approve"
    assert resumed.data["decision"]["actor"] == "alice"
    assert event(harness.journal, run_id, "StepRecorded").data["content"]["tool"] == "deploy"


def test_a_resuming_run_is_left_alone_when_resuming_on_startup_is_off(make_harness, clock):
    h = make_harness(recovery_workspace(resume_resuming_runs_on_startup=False), clock=clock)
    run_id = resuming(h.journal)
    end = h.journal.max_position()

    recover(h)

    assert h.journal.max_position() == end
    assert h.journal.get_run(run_id).state == "resuming"


def test_a_resuming_run_fails_once_its_recovery_attempts_are_exhausted(make_harness, clock):
    h = make_harness(recovery_workspace(max_recovery_attempts=2), clock=clock)
    run_id = resuming(h.journal)

    for attempt in (1, 2):
        recover(h)  # attempt n, then a worker claims it and dies before resuming it
        assert h.journal.get_run(run_id).recovery_attempts == attempt
        h.journal.claim_next(worker_id=f"dead{attempt}", lease_seconds=LEASE)
        clock.advance(LEASE + 1)

    report = recover(h)

    snapshot = h.journal.get_run(run_id)
    assert (snapshot.state, snapshot.error) == ("failed", EXHAUSTED)
    assert report.failed == {run_id: EXHAUSTED}
    assert types(h.journal, run_id)[-2:] == ["LeaseExpired", "Failed"]
    assert types(h.journal, run_id).count("RecoveryAttempted") == 2
    failed = event(h.journal, run_id, "Failed")
    assert (failed.actor, failed.data["previous_state"]) == ("system:recovery", "resuming")


def test_a_run_waiting_for_approval_is_untouched(harness, clock):
    run_id, approval_id = waiting_for_approval(harness.journal)
    clock.advance(LEASE + STALE + 1)
    end = harness.journal.max_position()

    report = recover(harness)
    work(harness)

    assert harness.journal.max_position() == end
    assert harness.journal.get_run(run_id).state == "waiting_for_approval"
    assert report.left == 1
    assert [a.approval_id for a in harness.journal.pending_approvals()] == [approval_id]


# -- switches and idempotence --------------------------------------------------------------


def every_situation(journal: Journal) -> dict[str, str]:
    """One run in each situation recovery acts on (clock not yet advanced).

    Built in an order where each claim takes the run just submitted: claimable runs come last.
    """
    runs = {
        "claimed": claimed(journal).run_id,
        "running": claimed(journal, start=True).run_id,
        "not_replayable": claimed(journal, "python", start=True).run_id,
        "waiting": waiting_for_approval(journal)[0],
        "resuming": resuming(journal),
        "no_request": without_request(journal),
    }
    assert [journal.get_run(r).state for r in runs.values()] == [
        "claimed", "running", "running", "waiting_for_approval", "resuming", "queued",
    ]
    return runs


def test_recovery_turned_off_appends_nothing(make_harness, clock):
    h = make_harness(recovery_workspace(enabled=False), clock=clock)
    runs = every_situation(h.journal)
    clock.advance(LEASE + STALE + 1)
    end = h.journal.max_position()

    report = recover(h)

    assert h.journal.max_position() == end
    assert report.expired == [] and report.failed == {} and report.resumed == []
    assert h.journal.get_run(runs["claimed"]).state == "claimed"


def test_recovering_twice_appends_each_transition_once(harness, clock):
    runs = every_situation(harness.journal)
    clock.advance(LEASE + STALE + 1)

    first = recover(harness)
    after_first = harness.journal.max_position()
    second = recover(harness)

    assert harness.journal.max_position() == after_first
    assert sorted(first.expired) == sorted([runs["claimed"], runs["running"], runs["not_replayable"]])
    assert first.failed == {  # the stale one failed through its lease expiry, and is reported too
        runs["no_request"]: MISSING_REQUEST,
        runs["not_replayable"]: "stale running run cannot be replayed safely",
    }
    assert first.resumed == [runs["resuming"]]
    assert (second.expired, second.failed, second.resumed) == ([], {}, [])
    states = {name: harness.journal.get_run(run_id).state for name, run_id in runs.items()}
    assert states == {
        "no_request": "failed", "claimed": "queued", "running": "queued", "not_replayable": "failed",
        "resuming": "resuming", "waiting": "waiting_for_approval",
    }
    for run_id in runs.values():
        history = types(harness.journal, run_id)
        assert history.count("LeaseExpired") <= 1
        assert history.count("RecoveryAttempted") <= 1
        assert history.count("Failed") <= 1


def _resuming_ahead_of_the_queue(journal: Journal, priority: int) -> str:
    """A resuming run made while claimable runs (resuming ones too) wait: ahead of them all, so its claim takes it."""
    journal.submit(agent_id="deployer", input={"message": "deploy"}, priority=priority)
    claim = journal.claim_next(worker_id="dead", lease_seconds=LEASE, start=True)
    assert claim is not None and claim.agent_id == "deployer"
    approval_id = journal.request_approval(
        claim, tool_name="deploy", tool_args={"env": "prod"}, tool_call_id="call-0", checkpoint_ref="step:0"
    )
    journal.resolve_approval(approval_id, decision="approve", actor="alice")
    return claim.run_id


def test_a_recovery_pass_appends_its_transitions_in_two_saves_however_many_runs(harness, clock, monkeypatch):
    """Expired leases in one save, then the failures and recovery attempts in another."""
    runs = every_situation(harness.journal)
    more_resuming = [_resuming_ahead_of_the_queue(harness.journal, priority) for priority in (10, 11)]
    clock.advance(LEASE + STALE + 1)
    saves: list[int] = []
    store_save = harness.journal._store.save
    monkeypatch.setattr(harness.journal._store, "save", lambda *runs, **k: saves.append(len(runs)) or store_save(*runs, **k))

    report = recover(harness)

    assert sorted(report.resumed) == sorted([runs["resuming"], *more_resuming])
    assert len(report.expired) == 3 and report.failed[runs["no_request"]] == MISSING_REQUEST
    assert saves == [3, 4], "recovery's transitions were not grouped"


def test_a_second_process_recovering_the_same_sqlite_store_appends_nothing_more(make_harness, sqlite_url, clock):
    one = make_harness(recovery_workspace(), url=sqlite_url, clock=clock)
    runs = every_situation(one.journal)
    clock.advance(LEASE + STALE + 1)
    recover(one)
    after_first = one.journal.max_position()

    two = make_harness(recovery_workspace(), journal=Journal.open(sqlite_url, clock=clock), worker_id="w2")
    try:
        report = recover(two)
        assert two.journal.max_position() == after_first
        assert (report.expired, report.failed, report.resumed) == ([], {}, [])
        assert two.journal.get_run(runs["claimed"]).state == "queued"
    finally:
        two.journal.close()


def test_a_worker_killed_mid_run_is_recovered_by_the_next_harness_on_the_same_sqlite_file(make_harness, sqlite_url, clock):
    class Hangs:
        supports_replay = True

        async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
            yield Chunk.say("started")
            await asyncio.Event().wait()

    ws = recovery_workspace()
    before = make_harness(ws, url=sqlite_url, clock=clock, adapters={"echo": Hangs()})

    async def crash() -> str:
        run_id = before.submit({"message": "survive"}).run_id
        task = asyncio.create_task(before.wait(run_id))
        while before.journal.get_run(run_id).state != "running":
            await asyncio.sleep(0.005)
        await before.close()  # the worker stops without finishing the run
        task.cancel()
        return run_id

    run_id = asyncio.run(crash())
    assert before.journal.get_run(run_id).state == "running"
    clock.advance(LEASE + STALE + 1)

    after = make_harness(ws, journal=Journal.open(sqlite_url, clock=clock), worker_id="w2")

    async def restart() -> Any:
        async with after:
            return await after.wait(run_id)

    try:
        result = asyncio.run(restart())
        assert (result.state, result.output) == ("completed", {"text": "echo: survive"})
        assert types(after.journal, run_id)[-4:] == ["LeaseExpired", "Dequeued", "Resumed", "Completed"]
        assert event(after.journal, run_id, "Resumed").data["resume_kind"] == "startup-running-recovery"
        assert event(after.journal, run_id, "Completed").actor == "worker:w2"
    finally:
        after.journal.close()
