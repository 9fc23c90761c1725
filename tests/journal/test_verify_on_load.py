"""Verify on load: every event a load applies checks its chain link; a snapshot is used only once proven."""

from __future__ import annotations

import json
import pickle
import sqlite3

import pytest
from runjournal.domain.errors import StoreError, TamperDetected

from runjournal import Journal

from .helpers import store_as, store_as_v1


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _hex(run_id: str) -> str:
    return run_id.replace("-", "")


def _long_run(j: Journal, steps: int, *, actor: str = "alice") -> str:
    """A completed run of ``steps`` + 5 events (snapshots every 50)."""
    run = j.submit(agent_id="a", input={"ask": "deploy"}, actor=actor)
    claim = j.claim_next(worker_id="w", start=True)
    assert claim is not None
    for i in range(steps):
        j.record_step(claim, "step", {"i": i})
    j.complete(claim, output={"text": "done"})
    return run.run_id


def _sql(url: str, statement: str, *params: object) -> int:
    with sqlite3.connect(_path(url)) as db:
        return db.execute(statement, params).rowcount


def _replace_in_event(url: str, run_id: str, version: int, old: str, new: str, table: str = "stored_events") -> None:
    changed = _sql(
        url,
        f"UPDATE {table} SET state = CAST(replace(CAST(state AS TEXT), ?, ?) AS BLOB)"
        " WHERE originator_id = ? AND originator_version = ?",
        old, new, _hex(run_id), version,
    )
    assert changed == 1


def test_tamper_detected_is_a_store_error_with_its_ids_that_pickles() -> None:
    error = TamperDetected("r1", 7, "chain mismatch")
    assert isinstance(error, StoreError)
    copy = pickle.loads(pickle.dumps(error))
    assert vars(copy) == vars(error) == {"run_id": "r1", "version": 7, "what": "chain mismatch"}
    assert str(copy) == str(error) and "r1" in str(error) and "version 7" in str(error)
    assert error.to_dict()["code"] == "tamper_detected"


def test_an_edited_event_in_the_middle_stops_status_and_history(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run_id = _long_run(j, 10)
    _replace_in_event(sqlite_url, run_id, 6, '"i":1', '"i":9')
    with Journal.open(sqlite_url) as j:
        for read in (lambda: j.get_run(run_id), lambda: j.history(run_id), lambda: j.get_run(run_id, at_version=9)):
            with pytest.raises(TamperDetected) as caught:
                read()
            assert (caught.value.run_id, caught.value.version) == (run_id, 6)
            assert "chain mismatch" in caught.value.what
        assert j.get_run(run_id, at_version=5).version == 5  # before the edit, the run is as it was


def test_a_forged_event_appended_with_a_garbage_chain_is_refused(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run = j.submit(agent_id="a", input={}, actor="alice")
    with sqlite3.connect(_path(sqlite_url)) as db:  # a copy of version 2 (Queued), moved to version 3
        topic, state = db.execute("SELECT topic, state FROM stored_events WHERE originator_id = ? AND "
                                  "originator_version = 2", (_hex(run.run_id),)).fetchone()
        fields = json.loads(state)
        fields["chain"] = "f" * 64
        db.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, 3, ?, ?)",
                   (_hex(run.run_id), topic, json.dumps(fields).encode()))
    with Journal.open(sqlite_url) as j, pytest.raises(TamperDetected) as caught:
        j.get_run(run.run_id)
    assert (caught.value.run_id, caught.value.version) == (run.run_id, 3)


def test_a_deleted_middle_event_is_a_version_gap(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run_id = _long_run(j, 3)
    assert _sql(sqlite_url, "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 4",
                _hex(run_id)) == 1
    with Journal.open(sqlite_url) as j, pytest.raises(TamperDetected) as caught:
        j.get_run(run_id)
    assert caught.value.version == 5 and "missing" in caught.value.what


def test_an_undecodable_event_is_tamper_detected_and_says_it_cannot_be_decoded(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run_id = _long_run(j, 1)
    _sql(sqlite_url, "UPDATE stored_events SET state = X'7b7b' WHERE originator_id = ? AND originator_version = 2",
         _hex(run_id))
    with Journal.open(sqlite_url) as j, pytest.raises(StoreError, match="cannot be decoded") as caught:
        j.get_run(run_id)
    assert isinstance(caught.value, TamperDetected) and caught.value.version == 2


@pytest.mark.parametrize("steps", [46, 60, 140])
def test_clean_runs_past_their_snapshots_load_and_verify(store_url: str, steps: int) -> None:
    with Journal.open(store_url) as j:
        run_id = _long_run(j, steps)
        total = steps + 5
        fresh = Journal.open(store_url) if not store_url.startswith("memory") else j
        try:
            fresh._runs.clear()
            run = fresh.get_run(run_id)
            assert (run.version, run.state, run.created_by, run.output) == (total, "completed", "alice", {"text": "done"})
            for version in (1, 49, 50, 51, min(100, total), total):
                assert fresh.get_run(run_id, at_version=version).version == version
            assert len(fresh.history(run_id)) == total
            assert fresh._store.snapshot_proofs.refused == 0
            assert fresh.verify().ok
        finally:
            if fresh is not j:
                fresh.close()


def _forged_snapshot_store(sqlite_url: str) -> str:
    with Journal.open(sqlite_url) as j:
        run_id = _long_run(j, 55)  # 60 events: one snapshot, at version 50
    with sqlite3.connect(_path(sqlite_url)) as db:
        assert db.execute("SELECT originator_version FROM stored_snapshots").fetchall() == [(50,)]
    return run_id


def test_an_edited_snapshot_is_never_used(sqlite_url: str) -> None:
    run_id = _forged_snapshot_store(sqlite_url)
    # created_by and the input edited; the snapshot's chain head left as it was.
    _replace_in_event(sqlite_url, run_id, 50, '"created_by":"alice"', '"created_by":"cfo"', "stored_snapshots")
    _replace_in_event(sqlite_url, run_id, 50, '"ask":"deploy"', '"ask":"wire money"', "stored_snapshots")
    with Journal.open(sqlite_url) as j:
        run = j.get_run(run_id)
        assert (run.created_by, run.input, run.version) == ("alice", {"ask": "deploy"}, 60)
        assert j.get_run(run_id, at_version=55).created_by == "alice"
        assert j._store.snapshot_proofs.refused >= 1
        report = j.verify()
    assert not report.ok
    (problem,) = report.problems
    assert (problem.run_id, problem.version) == (run_id, 50)
    assert "snapshot" in problem.problem and "created_by" in problem.problem


def test_an_edited_snapshot_output_and_chain_head_is_never_used(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run = j.submit(agent_id="a", input={}, actor="alice")
        claim = j.claim_next(worker_id="w", start=True)
        for i in range(45):
            j.record_step(claim, "step", {"i": i})
        j.complete(claim, output={"text": "done"})  # version 50: the snapshot holds the output
    _replace_in_event(sqlite_url, run.run_id, 50, '"text":"done"', '"text":"paid"', "stored_snapshots")
    with sqlite3.connect(_path(sqlite_url)) as db:
        state = db.execute("SELECT CAST(state AS TEXT) FROM stored_snapshots").fetchone()[0]
    head = json.loads(state)["state"]["chain"]
    _replace_in_event(sqlite_url, run.run_id, 50, head, "0" * 64, "stored_snapshots")
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run.run_id).output == {"text": "done"}
        assert not j.verify().ok


def test_a_snapshot_forged_ahead_of_the_log_is_never_used(sqlite_url: str) -> None:
    run_id = _forged_snapshot_store(sqlite_url)
    _sql(sqlite_url, "INSERT INTO stored_snapshots (originator_id, originator_version, topic, state)"
         " SELECT originator_id, 90, topic, state FROM stored_snapshots WHERE originator_version = 50")
    with Journal.open(sqlite_url) as j:
        run = j.get_run(run_id)
        assert (run.version, run.state) == (60, "completed")
        problems = j.verify().problems
    assert [(p.run_id, p.version) for p in problems] == [(run_id, 90)]


def test_a_new_snapshot_is_taken_from_verified_state_not_from_a_forged_one(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run = j.submit(agent_id="a", input={}, actor="alice")
        claim = j.claim_next(worker_id="w", start=True)
        for i in range(50):
            j.record_step(claim, "step", {"i": i})
    _replace_in_event(sqlite_url, run.run_id, 50, '"created_by":"alice"', '"created_by":"cfo"', "stored_snapshots")
    with Journal.open(sqlite_url) as j:
        claim = claim.model_copy()
        for i in range(50):  # on to version 100: a second snapshot
            j.record_step(claim, "step", {"i": i})
    with sqlite3.connect(_path(sqlite_url)) as db:
        rows = db.execute("SELECT originator_version, CAST(state AS TEXT) FROM stored_snapshots"
                          " ORDER BY originator_version").fetchall()
    assert [v for v, _ in rows] == [50, 100]
    assert json.loads(rows[1][1])["state"]["created_by"] == "alice"
    _sql(sqlite_url, "DELETE FROM stored_snapshots WHERE originator_version = 50")  # the operator's repair
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run.run_id).created_by == "alice"
        assert j.verify().ok


def test_a_proven_snapshot_is_used_and_an_edit_after_the_proof_is_caught(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run_id = _long_run(j, 55)
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run_id).created_by == "alice"  # the first load proves the snapshot
        assert j._store.snapshot_proofs.holds
        _replace_in_event(sqlite_url, run_id, 50, '"created_by":"alice"', '"created_by":"cfo"', "stored_snapshots")
        assert j.get_run(run_id).created_by == "alice"  # changed bytes: no longer the proven snapshot
        assert j._store.snapshot_proofs.refused == 1


def test_an_edited_event_after_a_proven_snapshot_is_caught(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run_id = _long_run(j, 55)
        _replace_in_event(sqlite_url, run_id, 57, '"i":52', '"i":53')
        with pytest.raises(TamperDetected) as caught:
            j.get_run(run_id)  # from this process's own (proven) snapshot, then the events after it
        assert caught.value.version == 57


# What each earlier class version of a Run snapshot lacked, newest last.
_SNAPSHOT_FIELDS_SINCE = {2: ("resumed_with",), 3: ("requested_agent_id", "execution_mode", "invocation"),
                          4: ("fork",)}


@pytest.mark.parametrize("old_version", [1, 2, 3])
def test_a_snapshot_stored_by_an_earlier_release_is_upcast_and_proven(sqlite_url: str, old_version: int) -> None:
    """Snapshot state of class version 1 (no ``resumed_with``), 2 (no request as asked) or 3 (no fork) is what
    earlier releases stored."""
    run_id = _forged_snapshot_store(sqlite_url)
    # Such a release also stored its Created without the request as asked (see test_event_upcasts.py).
    if old_version < 3:
        store_as_v1(_path(sqlite_url), run_id, 1, *_SNAPSHOT_FIELDS_SINCE[3], *_SNAPSHOT_FIELDS_SINCE[4])
    else:  # a release with the request as asked but before forks: Created class version 2
        store_as(_path(sqlite_url), run_id, 1, 2, *_SNAPSHOT_FIELDS_SINCE[4])
    with sqlite3.connect(_path(sqlite_url)) as db:
        stored = json.loads(db.execute("SELECT CAST(state AS TEXT) FROM stored_snapshots").fetchone()[0])
        assert stored["state"]["class_version"] == 4
        stored["state"]["class_version"] = old_version
        for since, fields in _SNAPSHOT_FIELDS_SINCE.items():
            if since > old_version:
                for field in fields:
                    assert field in stored["state"]
                    del stored["state"][field]
        db.execute("UPDATE stored_snapshots SET state = ?", (json.dumps(stored).encode(),))
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run_id, at_version=55).version == 55  # replays past the snapshot, proving it
        assert j._store.snapshot_proofs.refused == 0
        assert j.get_run(run_id, at_version=52).version == 52  # now used, as proven
        assert j.verify().ok
