"""The PostgreSQL store: schema creation on a pool of one, refused settings, unreachable servers, dropped connections."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import Environment
from runjournal.adapters.clock import ManualClock
from runjournal.adapters.storage import faults
from runjournal.adapters.storage.postgres import Factory, PostgresRunRecorder
from runjournal.adapters.storage.urls import store_env

from runjournal import Journal, StoreError, StoreUnavailable
from runjournal.app.unit_of_work import RunStore

POOL_OF_ONE = {
    "POSTGRES_POOL_SIZE": "1",
    "POSTGRES_MAX_OVERFLOW": "0",
    "POSTGRES_CONNECT_TIMEOUT": "2",
}


def _within(seconds: float, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread; fail (rather than hang the suite) if it takes longer than ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as e:  # noqa: BLE001 - raised again in the test's thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _base(postgres_url: str) -> str:
    return postgres_url.split("?", 1)[0]


def _schema(postgres_url: str) -> str:
    return postgres_url.split("schema=", 1)[1]


def _tables(postgres_url: str) -> set[str]:
    with psycopg.connect(_base(postgres_url)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (_schema(postgres_url),),
        ).fetchall()
    return {r[0] for r in rows}


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- schema creation ------------------------------------------------------------------


def _create_schema(env: dict[str, str]) -> None:
    """What opening a store does to the database: the event, index and snapshot tables."""
    factory = Factory(Environment("runjournal", env))
    try:
        factory.application_recorder()
        factory.aggregate_recorder("snapshots")
    finally:
        factory.close()


@pytest.mark.postgres
def test_the_schema_is_created_from_a_pool_of_one_connection(postgres_url: str) -> None:
    env = {**store_env(postgres_url, environ={}), **POOL_OF_ONE}

    def create() -> None:
        for _ in range(2):  # again on an existing schema: the types exist, nothing fails
            _create_schema(env)

    _within(30, create)
    assert {
        "runjournal_events",
        "runjournal_snapshots",
        "runjournal_queue",
        "runjournal_leases",
    } <= _tables(postgres_url)


@pytest.mark.postgres
def test_a_journal_runs_on_a_pool_of_one_connection(postgres_url: str, tmp_path: Any) -> None:
    env = {**store_env(postgres_url, environ={}), **POOL_OF_ONE}

    def lifecycle() -> str:
        journal = Journal(
            RunStore(env=env),
            url=postgres_url,
            clock=ManualClock(),
            views_path=str(tmp_path / "views.db"),
        )
        try:
            run = journal.submit(agent_id="a", input={})
            claim = journal.claim_next(worker_id="w")
            assert claim is not None and claim.run_id == run.run_id
            journal.start(claim)
            return str(journal.complete(claim, output={"ok": True}).state)
        finally:
            journal.close()

    assert _within(30, lifecycle).endswith("completed")


@pytest.mark.postgres
def test_processes_starting_at_once_create_the_schema_once(postgres_url: str) -> None:
    env = store_env(postgres_url, environ={})
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_store() -> None:
        try:
            start.wait()
            _create_schema(env)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=open_store, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


# -- POSTGRES_ENABLE_DB_FUNCTIONS -----------------------------------------------------


def test_database_functions_are_refused_before_connecting() -> None:
    env = {
        **store_env(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test", environ={}),
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
    }
    with pytest.raises(StoreError, match="POSTGRES_ENABLE_DB_FUNCTIONS") as raised:
        Factory(Environment("runjournal", env))
    assert "claim queue and the leases would not be written" in str(raised.value)
    with pytest.raises(StoreError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        RunStore(env=env)


@pytest.mark.postgres
def test_a_run_recorder_refuses_a_datastore_with_database_functions(postgres_url: str) -> None:
    env = store_env(postgres_url, environ={})
    datastore = PostgresDatastore(
        env["POSTGRES_DBNAME"],
        env["POSTGRES_HOST"],
        env["POSTGRES_PORT"],
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        schema=env["POSTGRES_SCHEMA"],
        enable_db_functions=True,
    )
    try:
        with pytest.raises(StoreError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
            PostgresRunRecorder(datastore, events_table_name="runjournal_events")
    finally:
        datastore.close()


# -- an unreachable server ------------------------------------------------------------


def test_an_unreachable_server_fails_at_once_with_libpq_message() -> None:
    port = _closed_port()
    url = (
        f"postgresql://postgres@127.0.0.1:{port}/test"  # the pool would wait 5 s (connect_timeout)
    )

    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        Factory(Environment("runjournal", store_env(url, environ={})))
    assert time.monotonic() - started < 2
    assert f"port {port} failed" in str(raised.value)
    assert "couldn't get a connection" not in str(raised.value)

    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as unavailable:
        Journal.open(url)
    assert time.monotonic() - started < 2
    assert unavailable.value.cause == faults.CONNECTION
    assert f"port {port} failed" in unavailable.value.detail
    assert "connection refused" in str(unavailable.value).lower()


# -- dropped connections --------------------------------------------------------------


@pytest.mark.postgres
def test_connections_the_server_dropped_are_replaced(
    postgres_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Name this journal's connections (libpq reads PGAPPNAME), so that only they are
    # terminated: other tests share the database.
    name = f"runjournal-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PGAPPNAME", name)
    journal = Journal.open(postgres_url, clock=ManualClock(), views_path=str(tmp_path / "views.db"))
    try:
        run = journal.submit(agent_id="a", input={})
        assert journal.inline_views.queue_rows()
        with psycopg.connect(
            _base(postgres_url), autocommit=True, application_name="terminator"
        ) as admin:
            terminated = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = %s",
                (name,),
            ).fetchall()
            assert terminated and all(r[0] for r in terminated)
            for _ in range(100):  # until the server has let them go
                left = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
                ).fetchone()
                if left == (0,):
                    break
                time.sleep(0.05)

        claim = journal.claim_next(
            worker_id="w"
        )  # reads the queue table first: no library retry there
        assert claim is not None and claim.run_id == run.run_id
        assert str(journal.start(claim).state).endswith("running")
    finally:
        journal.close()


@pytest.mark.postgres
@pytest.mark.parametrize("change, phrase", [
    (lambda url: url.rsplit("/", 1)[0] + "/no_such_database_here", "does not exist"),
    (lambda url: url.replace("postgresql://postgres@", "postgresql://no_such_role@", 1), "does not exist"),
])
def test_a_wrong_database_or_user_is_refused_at_once_not_reported_as_passing(
    postgres_url: str, tmp_path: Any, change: Callable[[str], str], phrase: str
) -> None:
    """A worker backs off on StoreUnavailable; a fault that will not pass must not look like one."""
    url = change(_base(postgres_url))
    started = time.monotonic()
    with pytest.raises(StoreError, match=phrase) as info:
        Journal.open(url, views_path=str(tmp_path / "v.db"))
    assert not isinstance(info.value, StoreUnavailable), str(info.value)
    assert time.monotonic() - started < 3


# -- the URL: every libpq parameter passes through --------------------------------------------------


def test_libpq_parameters_of_the_url_reach_the_store_settings_and_schema_stays_ours() -> None:
    env = store_env("postgresql://u:secret@db.example:5433/runs?sslmode=verify-full&sslrootcert=/etc/ca.pem"
                    "&application_name=rj&target_session_attrs=read-write&connect_timeout=3&schema=audit")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == ("db.example", "5433", "runs")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_CONNECT_TIMEOUT"]) == ("u", "secret", "3")
    assert env["POSTGRES_SCHEMA"] == "audit"
    import json

    assert json.loads(env["POSTGRES_CONNINFO_EXTRA"]) == {
        "sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "application_name": "rj",
        "target_session_attrs": "read-write"}
    assert "POSTGRES_CONNINFO_EXTRA" not in store_env("postgresql://u@h/db")


def test_a_parameter_libpq_does_not_know_is_refused_by_name_with_the_password_hidden() -> None:
    with pytest.raises(StoreError) as refused:
        store_env("postgresql://u:secret@h/db?sslmod=require")
    assert 'invalid URI query parameter: "sslmod"' in str(refused.value)
    assert "secret" not in str(refused.value) and "***@h/db" in str(refused.value)
    with pytest.raises(StoreError, match="needs a host and a database"):
        store_env("postgresql:///db")


def test_the_store_connects_with_every_libpq_parameter_of_its_url(postgres_url: str) -> None:
    name = f"runjournal-test-{uuid.uuid4().hex[:8]}"
    base, _, schema = postgres_url.partition("?")
    with Journal.open(f"{base}?{schema}&application_name={name}") as j:
        j.submit(agent_id="a", input={"n": 1})  # a pooled connection is in use, named as the URL says
        with psycopg.connect(base) as other:
            seen = other.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                 (name,)).fetchone()[0]
        assert seen >= 1
        assert [r.agent_id for r in j.runs()] == ["a"]
