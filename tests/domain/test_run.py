"""The Run aggregate: chain links, fencing, lease outcomes, replay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from runjournal.domain import InvalidTransition, LeaseLost, Run, RunState, chain

from .builders import LATER, T0, WORKER, new_run, run_in


def _replay(events: list) -> Run:
    run = None
    for e in events:
        run = e.mutate(run)
    assert run is not None
    return run


def test_submit_creates_and_queues_in_two_events_chained_from_genesis() -> None:
    run = new_run()
    run.enqueue(actor="alice", now=T0)
    created, queued = run.collect_events()
    assert (type(created).__name__, type(queued).__name__) == ("Created", "Queued")
    assert created.chain == chain.link(
        chain.GENESIS, event_type="Created", run_id=run.run_id, version=1, timestamp=T0,
        class_version=type(created).class_version, data={k: v for k, v in vars(created).items()
                               if k not in ("originator_id", "originator_version")},
    )
    assert queued.chain != created.chain and run.chain == queued.chain


def test_replaying_the_events_gives_the_same_run() -> None:
    run = new_run()
    run.enqueue(actor="alice", now=T0)
    run.dequeue(worker_id=WORKER, lease_expires_at=T0 + timedelta(seconds=5), now=T0)
    run.start(worker_id=WORKER, epoch=1, now=T0)
    run.complete(worker_id=WORKER, epoch=1, output={"x": 1}, now=T0)
    events = run.collect_events()
    replayed = _replay(events)
    assert replayed.state == run.state == RunState.COMPLETED
    assert replayed.chain == run.chain and replayed.output == {"x": 1}


def test_a_worker_from_an_older_epoch_is_fenced_off() -> None:
    run = run_in("running")
    run.expire_lease(now=LATER, can_replay=True)
    assert run.state == RunState.QUEUED
    epoch = run.dequeue(worker_id="w2", lease_expires_at=LATER + timedelta(seconds=30), now=LATER)
    run.resume(worker_id="w2", epoch=epoch, now=LATER)  # it replays from where it was
    run.collect_events()
    with pytest.raises(LeaseLost) as info:
        run.complete(worker_id=WORKER, epoch=1, output=None, now=LATER)
    assert info.value.holder == "w2"
    assert run.collect_events() == []


def test_the_table_speaks_before_the_fence() -> None:
    run = run_in("running")
    run.complete(worker_id=WORKER, epoch=1, output=None, now=LATER)
    run.collect_events()
    with pytest.raises(InvalidTransition) as info:  # the old claim is stale too, but the run is over
        run.complete(worker_id=WORKER, epoch=1, output=None, now=LATER)
    assert (info.value.state, info.value.event) == ("completed", "Completed")
    with pytest.raises(InvalidTransition):
        run.complete(worker_id="someone-else", epoch=7, output=None, now=LATER)
    assert run.collect_events() == []


def test_a_lease_cannot_expire_before_its_time() -> None:
    run = run_in("claimed")
    with pytest.raises(InvalidTransition, match="has not expired"):
        run.expire_lease(now=T0, can_replay=False)


@pytest.mark.parametrize(
    ("state", "can_replay", "expected", "reason"),
    [
        ("claimed", False, RunState.QUEUED, "lease expired before the run started"),
        ("running", True, RunState.QUEUED, "lease expired while running; replaying"),
        ("running", False, RunState.FAILED, "stale running run cannot be replayed safely"),
    ],
)
def test_an_expired_lease_requeues_replays_or_fails(state, can_replay, expected, reason) -> None:
    run = run_in(state)
    run.expire_lease(now=LATER, can_replay=can_replay)
    (event,) = run.collect_events()
    assert run.state == expected and event.reason == reason and event.actor == "system:lease"


def test_a_claimed_resume_whose_lease_expires_goes_back_to_resuming() -> None:
    run = run_in("claimed", via_resume=True)
    run.expire_lease(now=LATER, can_replay=False)
    assert run.state == RunState.RESUMING and run.pending_resume["decision"]["decision"] == "approve"


def test_start_refuses_a_run_with_a_decision_pending() -> None:
    run = run_in("claimed", via_resume=True)
    with pytest.raises(InvalidTransition, match="use resume"):
        run.start(worker_id=WORKER, epoch=run.epoch, now=T0)
    pending = run.resume(worker_id=WORKER, epoch=run.epoch, now=T0)
    assert pending["resume_kind"] == "cross-restart" and run.pending_resume is None


def test_an_edit_records_the_edited_arguments_and_their_digest() -> None:
    run = run_in("waiting_for_approval")
    approval_id = run.pending_approval["approval_id"]
    run.resolve_approval(approval_id=approval_id, decision="edit", edits={"env": "staging"}, actor="bob", now=T0)
    (event,) = run.collect_events()
    assert event.edited_args == {"env": "staging"}
    assert event.edited_args_digest == chain.digest({"env": "staging"})
    assert event.actor == "bob"


def test_resolving_an_approval_that_is_not_pending_is_refused() -> None:
    run = run_in("waiting_for_approval")
    with pytest.raises(InvalidTransition, match="not pending"):
        run.resolve_approval(approval_id="other.a9", decision="approve", edits=None, actor="b", now=T0)


def test_the_aggregate_never_reads_a_clock() -> None:
    run = new_run()
    with pytest.raises(KeyError):
        run.trigger_event(run.Queued, actor="alice", priority=0)  # no timestamp given
