"""Lease expiry and recovery's transitions are group commits: one save for many runs, one lost race fails none."""

from __future__ import annotations

from typing import Any

import pytest

from runjournal import InvalidTransition, Journal
from runjournal.adapters.clock import ManualClock


def _count_saves(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    saves: list[int] = []
    store_save = journal._store.save

    def save(*runs: Any, **kwargs: Any) -> Any:
        saves.append(len(runs))
        return store_save(*runs, **kwargs)

    monkeypatch.setattr(journal._store, "save", save)
    return saves


def _claimed(journal: Journal, n: int) -> list[Any]:
    for i in range(n):
        journal.submit(agent_id="a", input={"i": i})
    return journal.claim_many(worker_id="dead", count=n, lease_seconds=1)


def test_every_lease_that_ran_out_is_expired_in_one_save(any_journal: Journal, clock: ManualClock, monkeypatch) -> None:
    claims = _claimed(any_journal, 3)
    clock.advance(5)
    saves = _count_saves(any_journal, monkeypatch)
    assert sorted(any_journal.expire_leases()) == sorted(c.run_id for c in claims)
    assert saves == [3]
    assert {any_journal.get_run(c.run_id).state for c in claims} == {"queued"}


def test_a_lease_renewed_while_the_group_was_expiring_is_kept_and_the_others_still_expire(
    any_journal: Journal, clock: ManualClock, monkeypatch
) -> None:
    first, second, third = _claimed(any_journal, 3)
    clock.advance(5)
    rival = Journal(any_journal._store, url=any_journal.url, clock=clock)  # the lease holder, alive after all

    def renew_second_meanwhile(agent_id: str) -> bool:
        if not renewed:
            renewed.append(rival.heartbeat(second, lease_seconds=60))
        return False

    renewed: list[Any] = []
    saves = _count_saves(any_journal, monkeypatch)
    handled = any_journal.expire_leases(can_replay=renew_second_meanwhile)
    assert sorted(handled) == sorted([first.run_id, third.run_id])
    assert len(saves) > 1, "the group never met the renewal"
    assert any_journal.get_run(second.run_id).state == "claimed"
    assert [any_journal.get_run(c.run_id).state for c in (first, third)] == ["queued", "queued"]


def test_recover_many_fails_and_counts_attempts_in_one_save_and_refuses_run_by_run(
    any_journal: Journal, monkeypatch
) -> None:
    queued = [any_journal.submit(agent_id="a", input={"i": i}).run_id for i in range(2)]
    saves = _count_saves(any_journal, monkeypatch)
    refused = any_journal.recover_many(failures={queued[0]: "gave up", queued[1]: "gave up too"},
                                       attempts=[queued[0]])
    assert refused[queued[1]] is None
    assert isinstance(refused[queued[0]], InvalidTransition)  # failed first: no attempt on a failed run
    assert saves == [2]  # a refused command costs no fallback: the others still share one save
    assert [any_journal.get_run(r).error for r in queued] == ["gave up", "gave up too"]
    history = [e.type for e in any_journal.history(queued[0])]
    assert history.count("Failed") == 1 and "RecoveryAttempted" not in history
    assert any_journal.recover_many(failures={"no-such-run": "x"})["no-such-run"] is not None
