"""Approval deadlines and assignees: an undecided approval expires exactly once, a decision by a stranger is refused."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest
from runjournal.adapters.clock import ManualClock

from runjournal import ConcurrencyConflict, InvalidInput, InvalidTransition, Journal

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
RACES = 12


def _waiting(j: Journal, **approval) -> tuple[str, str]:
    run = j.submit(agent_id="deployer", input={"message": "deploy"})
    claim = j.claim_next(worker_id="w1", start=True)
    assert claim is not None and claim.run_id == run.run_id
    return run.run_id, j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"}, **approval)


def _types(j: Journal, run_id: str) -> list[str]:
    return [e.type for e in j.history(run_id)]


def test_an_undecided_approval_expires_at_its_deadline_once_and_rejects(store_url: str) -> None:
    clock = ManualClock(T0)
    with Journal.open(store_url, clock=clock) as j:
        run_id, approval_id = _waiting(j, expires_in=3600)
        assert j.get_run(run_id).pending_approval["deadline"] == (T0 + timedelta(hours=1)).isoformat()
        clock.advance(3599)
        assert j.expire_approvals() == []
        clock.advance(1)
        assert j.expire_approvals() == [run_id]
        assert j.expire_approvals() == []  # once
        expired = j.history(run_id)[-1]
        assert (expired.type, expired.actor, expired.data["approval_id"]) == (
            "ApprovalExpired", "system:approvals", approval_id)
        run = j.get_run(run_id)
        assert run.state == "resuming" and run.pending_approval is None
        assert run.pending_resume["decision"]["decision"] == "reject" and run.pending_resume["decision"]["expired"]
        assert [(a.status, a.decided_by) for a in j.approvals()] == [("expired", "system:approvals")]
        with pytest.raises(InvalidTransition):  # too late to decide
            j.resolve_approval(approval_id, decision="approve", actor="alice")
        assert j.verify().ok


def test_an_expiry_may_fail_the_run_instead(journal: Journal, clock: ManualClock) -> None:
    run_id, approval_id = _waiting(journal, expires_in=60, on_expiry="fail")
    clock.advance(61)
    assert journal.expire_approvals() == [run_id]
    run = journal.get_run(run_id)
    assert run.state == "failed" and approval_id in run.error and "expired undecided" in run.error
    assert [r.run_id for r in journal.find_runs(error="expired undecided").runs] == [run_id]


def test_a_decision_before_the_deadline_wins_and_nothing_expires(journal: Journal, clock: ManualClock) -> None:
    run_id, approval_id = _waiting(journal, expires_in=60)
    journal.resolve_approval(approval_id, decision="approve", actor="alice")
    clock.advance(120)
    assert journal.expire_approvals() == []
    assert "ApprovalExpired" not in _types(journal, run_id)


def test_only_an_assignee_may_decide_and_a_refusal_appends_nothing(journal: Journal) -> None:
    run_id, approval_id = _waiting(journal, assignees=["bob", "carol"])
    before = journal.max_position()
    with pytest.raises(InvalidInput) as refused:
        journal.resolve_approval(approval_id, decision="approve", actor="mallory")
    assert refused.value.field == "actor" and "bob, carol" in str(refused.value)
    assert journal.max_position() == before
    journal.resolve_approval(approval_id, decision="edit", edits={"env": "staging"}, actor="carol")
    row = journal.approvals()[0]
    assert (row.status, row.decided_by, row.assignees) == ("edited", "carol", ["bob", "carol"])
    assert row.edit_diff == {"env": ["prod", "staging"]}


def test_cancelling_a_waiting_run_leaves_no_approval_to_decide_or_expire(journal: Journal, clock: ManualClock) -> None:
    run_id, approval_id = _waiting(journal, expires_in=60)
    journal.cancel(run_id, actor="ops")
    assert journal.get_run(run_id).pending_approval is None
    assert [a.status for a in journal.approvals()] == ["withdrawn"] and journal.pending_approvals() == []
    clock.advance(120)
    assert journal.expire_approvals() == []
    with pytest.raises(InvalidTransition):
        journal.resolve_approval(approval_id, decision="approve", actor="alice")


def test_bad_deadlines_and_assignees_are_refused(journal: Journal) -> None:
    journal.submit(agent_id="deployer", input={"message": "deploy"})
    claim = journal.claim_next(worker_id="w1", start=True)
    for bad, field in (({"expires_in": 0}, "expires_in"), ({"expires_in": -5}, "expires_in"),
                       ({"assignees": []}, "assignees"), ({"on_expiry": "explode"}, "on_expiry")):
        with pytest.raises(InvalidInput) as caught:
            journal.request_approval(claim, tool_name="deploy", **bad)
        assert caught.value.field == field


def _decide_all(url: str, approvals: list[str], go, out) -> None:
    refused = 0
    with Journal.open(url, clock=ManualClock(T0 + timedelta(minutes=5))) as j:
        go.wait(60)
        for approval_id in approvals:
            try:
                j.resolve_approval(approval_id, decision="approve", actor="alice")
            except ConcurrencyConflict:  # the expiry was being saved at that instant: ask again, as a user would
                try:
                    j.resolve_approval(approval_id, decision="approve", actor="alice")
                except InvalidTransition:
                    refused += 1
            except InvalidTransition:
                refused += 1  # expired first
    out.put(("decider", refused))


def _expire_all(url: str, go, out) -> None:
    expired = []
    with Journal.open(url, clock=ManualClock(T0 + timedelta(minutes=5))) as j:
        go.wait(60)
        for _ in range(RACES):
            expired += j.expire_approvals(limit=1)  # one at a time: the decider interleaves with the expiries
    out.put(("expirer", expired))


def test_an_expiry_racing_a_decision_in_another_process_appends_exactly_one(shared_store_url: str) -> None:
    with Journal.open(shared_store_url, clock=ManualClock(T0)) as j:
        waiting = [_waiting(j, expires_in=60) for _ in range(RACES)]
    ctx = mp.get_context("spawn")
    out, go = ctx.Queue(), ctx.Event()
    racers = [ctx.Process(target=_decide_all, args=(shared_store_url, [a for _, a in waiting], go, out)),
              ctx.Process(target=_expire_all, args=(shared_store_url, go, out))]
    for p in racers:
        p.start()
    go.set()
    results = dict(out.get(timeout=120) for _ in racers)
    for p in racers:
        p.join(timeout=30)
        assert p.exitcode == 0
    with Journal.open(shared_store_url) as j:
        outcomes = {}
        for run_id, _ in waiting:
            ends = [t for t in _types(j, run_id) if t in ("ApprovalResolved", "ApprovalExpired")]
            assert len(ends) == 1, (run_id, _types(j, run_id))  # exactly one of them, never both
            outcomes[run_id] = ends[0]
        assert j.verify().ok
    assert sorted(results["expirer"]) == sorted(r for r, end in outcomes.items() if end == "ApprovalExpired")
    assert results["decider"] == sum(end == "ApprovalExpired" for end in outcomes.values())


def test_a_store_from_before_deadlines_gets_the_column_on_open_and_keeps_working(sqlite_url: str, tmp_path) -> None:
    import sqlite3

    clock = ManualClock(T0)
    with Journal.open(sqlite_url, clock=clock) as j:
        kept, _ = _waiting(j)
    with sqlite3.connect(tmp_path / "journal.db") as db:  # as a store of the release before wrote it
        db.execute("DROP INDEX runjournal_queue_deadline")
        db.execute("ALTER TABLE runjournal_queue DROP COLUMN deadline")
    with Journal.open(sqlite_url, clock=clock) as j:
        run_id, _ = _waiting(j, expires_in=60)
        clock.advance(61)
        assert j.expire_approvals() == [run_id]
        assert j.get_run(kept).state == "waiting_for_approval" and j.verify().ok
