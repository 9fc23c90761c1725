"""Workers sharing a queue claim disjoint runs, and a race between reading the queue and claiming never empties a turn.

On PostgreSQL a claim reserves its candidates with session advisory locks (see
``adapters/storage/reservations.py``); other workers pass over them until the claim
is saved. On every shared store, a candidate another worker took between the read of
the queue and its load is passed over and the queue read again.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from runjournal import Journal
from runjournal.adapters.clock import ManualClock


def _submit(journal: Journal, n: int) -> None:
    journal.submit_many([{"agent_id": "x", "input": {"i": i}} for i in range(n)])


def test_a_claim_that_loses_its_candidates_meanwhile_reads_the_queue_again(shared_store_url: str) -> None:
    with Journal.open(shared_store_url) as a, Journal.open(shared_store_url) as b:
        _submit(a, 6)
        read_queue = a._candidates
        raced = []

        def candidates_then_race(limit, agents):
            listed = read_queue(limit, agents)
            if not raced:  # b claims a's first candidates after a read them, before a loads them
                a.inline_views.release_candidates()
                raced.extend(c.run_id for c in b.claim_many(worker_id="b", count=2))
            return listed

        a._candidates = candidates_then_race
        claims = a.claim_many(worker_id="a", count=2)
        assert len(raced) == 2
        assert len(claims) == 2 and not {c.run_id for c in claims} & set(raced)
        assert len(a.queue()) == 2


@pytest.mark.postgres
def test_workers_on_postgres_reserve_disjoint_candidates_until_released(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a, Journal.open(postgres_url) as b:
        _submit(a, 10)
        best = [q.run_id for q in a.queue()]
        mine = a.inline_views.claim_candidates(4)
        assert mine == best[:4]
        theirs = b.inline_views.claim_candidates(4)
        assert theirs == best[4:8]  # the best runs a holds are passed over, not raced for
        a.inline_views.release_candidates()
        b.inline_views.release_candidates()
        assert b.inline_views.claim_candidates(4) == best[:4]
        b.inline_views.release_candidates()


@pytest.mark.postgres
def test_claims_on_postgres_release_their_reservations_when_saved(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a, Journal.open(postgres_url) as b:
        _submit(a, 6)
        claimed = a.claim_many(worker_id="a", count=2)
        assert len(claimed) == 2 and a._store.recorder.reservations.held == frozenset()
        rest = b.claim_many(worker_id="b", count=10)
        assert len(rest) == 4  # nothing left reserved: b gets every run still queued
        assert not {c.run_id for c in claimed} & {c.run_id for c in rest}


@pytest.mark.postgres
def test_a_dead_workers_reservations_go_with_its_session(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a, Journal.open(postgres_url) as b:
        _submit(a, 4)
        held = a.inline_views.claim_candidates(4)
        assert b.inline_views.claim_candidates(4) == []
        a._store.recorder.reservations.close()  # as when the worker's process dies
        deadline = time.monotonic() + 10  # the server ends the session (and frees its locks) just after
        while (got := b.inline_views.claim_candidates(4)) != held and time.monotonic() < deadline:
            b.inline_views.release_candidates()
            time.sleep(0.05)
        assert got == held
        b.inline_views.release_candidates()


@pytest.mark.postgres
def test_claims_go_on_when_the_reserving_connection_drops(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a:
        _submit(a, 4)
        a.inline_views.claim_candidates(1)
        a.inline_views.release_candidates()
        reservations = a._store.recorder.reservations
        pid = reservations._conn.info.backend_pid
        with psycopg.connect(postgres_url.split("?", 1)[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        first = a.claim_many(worker_id="a", count=2)  # the reservation fails: the claim goes on without it
        assert len(first) == 2
        second = a.claim_many(worker_id="a", count=2)  # and the next one reserves on a new connection
        assert len(second) == 2 and reservations._conn is not None and reservations._conn.info.backend_pid != pid


def _advisory_locks(url: str, pid: int) -> int:
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted",
                            (pid,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_no_reservation_outlives_its_claim(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a:
        _submit(a, 12)
        assert a.claim_next(worker_id="a") is not None
        conn = a._store.recorder.reservations._conn
        pid = conn.info.backend_pid
        assert _advisory_locks(postgres_url, pid) == 0
        # A vanished machine's session (and its reservations) ends within ~25 s, not hours.
        assert conn.execute("SHOW tcp_keepalives_idle").fetchone()[0] in ("10", "10s")
        assert len(a.claim_many(worker_id="a", count=3)) == 3
        assert _advisory_locks(postgres_url, pid) == 0


@pytest.mark.postgres
def test_a_run_whose_lease_expired_is_open_to_every_worker_while_its_old_worker_lives(
    postgres_url: str, clock: ManualClock
) -> None:
    with Journal.open(postgres_url, clock=clock) as a, Journal.open(postgres_url, clock=clock) as b:
        _submit(a, 1)
        (claim,) = a.claim_many(worker_id="a", count=2, lease_seconds=1)  # then a hangs, its session alive
        clock.advance(5)
        assert b.expire_leases() == [claim.run_id]
        taken = b.claim_next(worker_id="b")
        assert taken is not None and taken.run_id == claim.run_id


@pytest.mark.postgres
def test_a_claim_in_progress_holds_back_only_the_run_it_tries(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a, Journal.open(postgres_url) as b:
        a.submit(agent_id="x", input={}, priority=0)
        best = [a.submit(agent_id="x", input={"i": i}, priority=10).run_id for i in range(8)]
        tried = a._candidates(1, None)  # a is mid-claim_next: it reserved what it tries
        assert tried == best[:1]
        taken = b.claim_next(worker_id="b")
        assert taken is not None and taken.run_id == best[1]  # not the priority-0 run
        a.inline_views.release_candidates()


@pytest.mark.postgres
def test_reservations_of_stores_in_other_schemas_of_one_database_never_collide(postgres_url: str) -> None:
    from bench.postgres import fresh_schema

    with fresh_schema(postgres_url.split("?", 1)[0], prefix="other_") as other_url:
        with Journal.open(postgres_url) as a, Journal.open(other_url) as b:
            ours, theirs = a._store.recorder.reservations, b._store.recorder.reservations
            assert ours.reserve(["same-run"], 1) == ["same-run"]
            assert theirs.reserve(["same-run"], 1) == ["same-run"]  # another schema: another key
            ours.release()
            theirs.release()


@pytest.mark.postgres
def test_an_unlock_that_finds_no_lock_drops_the_reserving_session(postgres_url: str) -> None:
    with Journal.open(postgres_url) as a:
        reservations = a._store.recorder.reservations
        assert reservations.reserve(["r1"], 1) == ["r1"]
        conn = reservations._conn
        conn.execute("SELECT pg_advisory_unlock_all()")  # as if the session had been swapped under us
        reservations.release()
        assert reservations._conn is None and conn.closed
        assert reservations.reserve(["r1"], 1) == ["r1"]  # a new session reserves again
        reservations.release()
