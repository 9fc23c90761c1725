"""verify, export, the views and the loader read the same rows; verify reports every row outside them.

Each forgery here is written around the journal, straight into the store, as
someone with write access to the file (or the database) could.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from runjournal import Journal
from runjournal.app import audit
from runjournal.app.verification import verify_store
from runjournal.app.views_check import check_views


def _awaiting_approval(j: Journal) -> tuple[str, str]:
    """A run waiting for a decision on a `deploy` tool call: (run id, approval id)."""
    run = j.submit(agent_id="deployer", input={"message": "deploy"})
    claim = j.claim_next(worker_id="w1")
    assert claim is not None and claim.run_id == run.run_id
    j.start(claim)
    return run.run_id, j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})


def _finished(j: Journal, message: str) -> str:
    run = j.submit(agent_id="echo", input={"message": message})
    claim = j.claim_next(worker_id="w1")
    j.start(claim)
    j.complete(claim, output={"text": "done"})
    return run.run_id


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _forged_approval(tmp_path: Path, url: str, run_id: str, approval_id: str) -> tuple[int, str, bytes]:
    """A genuine-looking ApprovalResolved (by "cfo") for the run's next version: (version, topic, state).

    Made on a copy of the store, so its chain link is even right: only its place in the table is forged.
    """
    copy = tmp_path / "copy.db"
    shutil.copy(_path(url), copy)
    with Journal.open(f"sqlite:///{copy}") as twin:
        resolved = twin.resolve_approval(approval_id, decision="approve", actor="cfo")
    with sqlite3.connect(copy) as db:
        topic, state = db.execute(
            "SELECT topic, state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            (run_id.replace("-", ""), resolved.version),
        ).fetchone()
    return resolved.version, topic, state


def _insert(path: str, rowid: int, run_id: str, version: int, topic: str, state: bytes) -> None:
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state)"
                   " VALUES (?, ?, ?, ?, ?)", (rowid, run_id.replace("-", ""), version, topic, state))


def _without_primary_key(path: str) -> None:
    """Rebuild the events table without its (run, version) key, as an attacker with the file can."""
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE forged (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB);"
            "INSERT INTO forged (rowid, originator_id, originator_version, topic, state)"
            " SELECT rowid, originator_id, originator_version, topic, state FROM stored_events;"
            "DROP TABLE stored_events; ALTER TABLE forged RENAME TO stored_events;"
        )


def test_a_forged_decision_at_a_rowid_below_one_is_reported_and_never_applied(tmp_path, sqlite_url) -> None:
    with Journal.open(sqlite_url) as j:
        run_id, approval_id = _awaiting_approval(j)
        _finished(j, "bystander")
    version, topic, state = _forged_approval(tmp_path, sqlite_url, run_id, approval_id)
    _insert(_path(sqlite_url), -5, run_id, version, topic, state)

    with Journal.open(sqlite_url) as j:
        run = j.get_run(run_id)
        assert (run.version, run.state) == (version - 1, "waiting_for_approval")  # the loader reads the log's rows only
        assert [e.version for e in j.history(run_id)] == list(range(1, version))
        assert j.claim_next(worker_id="w2") is None  # nothing resumes on the forged decision
        assert all(a.status == "pending" for a in j.approvals())
        assert all(r["version"] != version or r["run_id"] != run_id for r in audit.export_events(j))
        report = verify_store(j)
    assert not report.ok
    (problem,) = report.problems
    assert (problem.run_id, problem.version) == (run_id, version)
    assert "position -5, outside the log" in problem.problem


def test_a_row_at_rowid_zero_is_reported(tmp_path, sqlite_url) -> None:
    with Journal.open(sqlite_url) as j:
        run_id = _finished(j, "hello")
    with sqlite3.connect(_path(sqlite_url)) as db:
        topic, state = db.execute("SELECT topic, state FROM stored_events WHERE rowid = 5").fetchone()
    _insert(_path(sqlite_url), 0, run_id, 6, topic, state)
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run_id).version == 5
        (problem,) = verify_store(j).problems
    assert (problem.run_id, problem.version) == (run_id, 6)
    assert "position 0" in problem.problem


def test_a_duplicated_version_outside_the_log_is_reported_and_the_run_still_loads(sqlite_url) -> None:
    with Journal.open(sqlite_url) as j:
        runs = [_finished(j, f"hello {i}") for i in range(3)]
    path = _path(sqlite_url)
    _without_primary_key(path)
    victim = runs[1].replace("-", "")
    with sqlite3.connect(path) as db:
        topic, state = db.execute(
            "SELECT topic, state FROM stored_events WHERE originator_id = ? AND originator_version = 3", (victim,)
        ).fetchone()
    _insert(path, -1, runs[1], 3, topic, state)
    with Journal.open(sqlite_url) as j:
        assert j.get_run(runs[1]).version == 5
        report = verify_store(j)
    assert [(p.run_id, p.version) for p in report.problems] == [(runs[1], 3)]
    assert "outside the log" in report.problems[0].problem


def test_a_duplicated_version_inside_the_log_is_reported(sqlite_url) -> None:
    with Journal.open(sqlite_url) as j:
        runs = [_finished(j, f"hello {i}") for i in range(2)]
    path = _path(sqlite_url)
    _without_primary_key(path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state)"
                   " SELECT originator_id, originator_version, topic, state FROM stored_events"
                   " WHERE originator_id = ? AND originator_version = 2", (runs[0].replace("-", ""),))
    with Journal.open(sqlite_url) as j:
        report = verify_store(j)
    assert not report.ok
    assert [(p.run_id, p.version) for p in report.problems] == [(runs[0], 2)]


def test_a_zeroed_page_is_one_problem_naming_the_file(sqlite_url) -> None:
    with Journal.open(sqlite_url) as j:
        for i in range(60):
            _finished(j, f"message {i}" * 5)
    path = _path(sqlite_url)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size, pages = db.execute("PRAGMA page_size").fetchone()[0], db.execute("PRAGMA page_count").fetchone()[0]
    with open(path, "r+b") as f:
        f.seek(page_size * (pages // 2))
        f.write(b"\0" * page_size)
    with Journal.open(sqlite_url, read_only=True) as j:
        report = verify_store(j)
        deep = verify_store(j, deep=True)
    for found in (report, deep):
        assert not found.ok
        (problem,) = found.problems
        assert "is damaged" in problem.problem and path in problem.problem
    assert "quick_check" in report.problems[0].problem and "integrity_check" in deep.problems[0].problem


def test_clean_stores_verify_with_their_views(any_journal: Journal) -> None:
    j = any_journal
    _, approval_id = _awaiting_approval(j)
    j.resolve_approval(approval_id, decision="edit", edits={"env": "staging"}, actor="bob")
    for i in range(3):
        _finished(j, f"hello {i}")
    j.submit(agent_id="echo", input={"message": "queued"}, thread_id="t1")
    report = verify_store(j, deep=True)
    assert report.ok, report.problems
    assert report.events_checked == j.max_position()
    views = check_views(j)
    assert views.differences == []
    assert views.rows_checked > 0


def test_a_run_the_loader_reads_differently_is_reported(sqlite_url, monkeypatch) -> None:
    with Journal.open(sqlite_url) as j:
        runs = [_finished(j, f"hello {i}") for i in range(2)]
        recorder = j._store.recorder
        real = recorder.select_events

        def short(originator_id, **kwargs):
            rows = list(real(originator_id, **kwargs))
            return rows[:-1] if str(originator_id) == runs[1] else rows

        monkeypatch.setattr(recorder, "select_events", short)
        report = verify_store(j)
    assert [(p.run_id, p.version) for p in report.problems] == [(runs[1], 4)]
    assert "loader reads 4 events" in report.problems[0].problem


def test_a_row_inserted_below_one_on_postgres_is_reported_and_never_applied(postgres_url) -> None:
    import psycopg

    with Journal.open(postgres_url) as j:
        runs = [_finished(j, f"hello {i}") for i in range(2)]
        recorder = j._store.recorder
        table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    base = postgres_url.split("?", 1)[0]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {table} (originator_id, originator_version, topic, state, notification_id)"
            f" SELECT originator_id, 6, topic, state, -5 FROM {table} WHERE originator_id = %s AND originator_version = 5",
            (runs[0],),
        )
    with Journal.open(postgres_url) as j:
        assert j.get_run(runs[0]).version == 5
        assert [e.version for e in j.history(runs[0])] == [1, 2, 3, 4, 5]
        report = verify_store(j)
    (problem,) = report.problems
    assert (problem.run_id, problem.version) == (runs[0], 6)
    assert "position -5" in problem.problem


@pytest.mark.parametrize("key", [False, True])
def test_an_edited_approvals_row_is_reported(tmp_path, sqlite_url, monkeypatch, key) -> None:
    if key:
        from eventsourcing.cryptography import AESCipher

        monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", AESCipher.create_key(num_bytes=32))
    with Journal.open(sqlite_url) as j:
        _, approval_id = _awaiting_approval(j)
        j.resolve_approval(approval_id, decision="approve", actor="bob")
        assert check_views(j).differences == []
        views_path = j.views_path
    with sqlite3.connect(views_path) as db:
        assert db.execute("UPDATE approvals SET decided_by = 'cfo' WHERE approval_id = ?", (approval_id,)).rowcount == 1
        db.execute("DELETE FROM messages")
    with Journal.open(sqlite_url) as j:
        differences = check_views(j).differences
    assert any("table approvals" in d and approval_id in d and "column decided_by" in d and "'cfo'" in d
               and "'bob'" in d for d in differences), differences
    assert any("table messages" in d and "views file lacks it" in d for d in differences), differences
