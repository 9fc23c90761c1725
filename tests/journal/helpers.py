"""Small builders shared by the journal tests."""

from __future__ import annotations

from runjournal import Claim, Journal


def running_claim(j: Journal) -> Claim:
    """Submit a run, claim it and start it: the claim of a running run."""
    j.submit(agent_id="a", input={})
    claim = j.claim_next(worker_id="w")
    assert claim is not None
    j.start(claim)
    return claim


def finished_run(j: Journal, message: str) -> str:
    """Submit a run and see it through to ``completed``; its id."""
    run = j.submit(agent_id="echo", input={"message": message})
    claim = j.claim_next(worker_id="w1")
    assert claim is not None
    j.start(claim)
    j.complete(claim, output={"text": "done"})
    return run.run_id


def legacy_run_without_request(j: Journal, agent_id: str = "a", *, priority: int = 0, actor: str = "old-release") -> str:
    """A queued run with no persisted request, as stores written before submit refused ``input=None`` hold; its id."""
    from uuid import uuid4

    from runjournal.app.models import SubmitInput

    req = SubmitInput.model_construct(agent_id=agent_id, input=None, thread_id=None, priority=priority,
                                      idempotency_key=None, actor=actor, parent_run_id=None, parent_version=None)
    run = j._new_run(uuid4(), req, None)
    j._save(run)
    return str(run.id)


def store_as_v1(path: str, run_id: str, version: int, *fields: str) -> None:
    """Rewrite event ``version`` of a run as release 1 stored it: without ``fields``, class_version 1."""
    store_as(path, run_id, version, 1, *fields)


def store_as(path: str, run_id: str, version: int, class_version: int, *fields: str) -> None:
    """Rewrite event ``version`` of a run as an earlier release stored it: without ``fields``, at ``class_version``.

    Every later event of the run, and any snapshot of it, is re-chained from the rewritten
    event, so the run verifies as such a store would (an SQLite file at ``path``).
    """
    import json
    import sqlite3
    import uuid

    from runjournal.domain import chain

    from runjournal.app.decoding import decode_stored, expected_link

    with Journal.open(f"sqlite:///{path}") as j:
        mapper = j._store.mapper
        events = [n for page in j.notifications() for n in page if str(n.originator_id) == run_id]
    previous, heads, rows = chain.GENESIS, {}, []
    for n in events:
        stored = decode_stored(mapper, n)
        if n.originator_version == version:
            for field in fields:
                stored.pop(field)
            assert stored["class_version"] > class_version
            stored["class_version"] = class_version
        if n.originator_version >= version:
            stored["chain"] = expected_link(previous, n, stored)
            rows.append((mapper.transcoder.encode(stored), n.id))
        previous = heads[n.originator_version] = stored["chain"]
    originator = uuid.UUID(run_id).hex
    with sqlite3.connect(path) as db:
        assert db.executemany("UPDATE stored_events SET state = ? WHERE rowid = ?", rows).rowcount == len(rows)
        snapshots = db.execute("SELECT originator_version, CAST(state AS TEXT) FROM stored_snapshots "
                               "WHERE originator_id = ?", (originator,)).fetchall()
        for snapshot_version, state in snapshots:
            snapshot = json.loads(state)
            snapshot["state"]["chain"] = heads[snapshot_version]
            db.execute("UPDATE stored_snapshots SET state = ? WHERE originator_id = ? AND originator_version = ?",
                       (json.dumps(snapshot).encode(), originator, snapshot_version))
