"""PostgreSQL event store with the inline views in the same database.

Imported only for ``postgresql://`` URLs, so psycopg stays an optional extra.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ...domain import StoreError
from . import index
from .reservations import Reservations
from .sql_views import SqlInlineViews
from .urls import POSTGRES_CONNINFO
from .index import IndexEntry

# Any constant will do: it serialises schema creation across processes, which
# otherwise race on CREATE TYPE / CREATE TABLE.
_SCHEMA_LOCK_KEY = 0x52554E4A  # "RUNJ"

DB_FUNCTIONS_REFUSED = (
    "POSTGRES_ENABLE_DB_FUNCTIONS is not supported by runjournal's PostgreSQL store: "
    "events inserted through that database function bypass the recorder, so the claim "
    "queue and the leases would not be written with them, and the function takes no "
    "table lock, so a reader tailing the log could miss events; unset it"
)


class _SchemaUnderLock:
    """Creates a recorder's schema in one transaction, on one connection, under an advisory lock.

    eventsourcing creates each composite type in a transaction of its own and then
    the tables in another; runjournal's earlier lock held a third connection around
    both, so a pool of one waited for itself. Here the lock is transaction-scoped
    (``pg_advisory_xact_lock``), taken first in the same transaction as every
    CREATE, and released by its commit or rollback, or when the connection drops.
    """

    datastore: PostgresDatastore
    sql_create_statements: list[Any]
    if TYPE_CHECKING:  # provided by the eventsourcing recorder this is mixed into

        def _create_table(self, curs: Cursor[DictRow]) -> None: ...

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for statement in self.sql_create_statements:
                if "CREATE TYPE" in statement.as_string():
                    # No IF NOT EXISTS for types: a savepoint keeps a repeat from aborting the rest.
                    with contextlib.suppress(psycopg.errors.DuplicateObject), conn.transaction():
                        curs.execute(statement, prepare=False)
            self._create_table(curs)  # every other statement (the stock one skips the types)
        self.datastore.register_type_adapters()


class PostgresSnapshotRecorder(_SchemaUnderLock, PostgresAggregateRecorder):
    """eventsourcing's PostgreSQL snapshot recorder, its schema created under the lock."""


# Candidates read per reservation, per run asked for: room to pass over the runs other workers hold.
_CANDIDATES_PER_CLAIM = 4
_MAX_SCAN = 4096


class PostgresRunRecorder(SqlInlineViews, _SchemaUnderLock, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, also writing the claim queue and leases.

    Its claim candidates are reserved (``reservations.py``): workers on one database
    claim disjoint runs instead of racing for the same best ones.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reservations = Reservations(self._reserving_connection, namespace=self.datastore.schema)
        if self.datastore.enable_db_functions:
            # Its insert path calls the function instead of _fetch_ids_after_insert_events.
            raise StoreError(DB_FUNCTIONS_REFUSED)
        schema = self.datastore.schema
        self.index_sql = index.Statements(
            queue=f'"{schema}".{index.QUEUE_TABLE}',
            leases=f'"{schema}".{index.LEASES_TABLE}',
            placeholder="%s",
        )
        self.sql_create_statements.extend(SQL(s) for s in self.index_sql.create)
        # A store from before queue rows named their run's agent gets the column.
        for added in (self.index_sql.add_agent_column, self.index_sql.add_deadline_column):
            self.sql_create_statements.append(SQL(added.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS")))
        self.sql_create_statements.append(SQL(self.index_sql.deadline_index))
        # The loader reads exactly the rows the log lists (notification ids from 1): a row
        # inserted with an id <= 0 is in no notification, so verify, export and the views
        # never see it; the loader must not apply it either.
        self.select_events_statement = SQL(
            "SELECT * FROM {schema}.{table} WHERE notification_id > 0 AND originator_id = %s"
        ).format(schema=Identifier(schema), table=Identifier(self.events_table_name))
        self._events_table = f'"{schema}"."{self.events_table_name}"'

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        index_entries: Sequence[IndexEntry] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if index_entries:
            positions = index.first_positions(index.run_keys(stored_events), ids)
            index.write_entries(curs, self.index_sql, index_entries, positions)
        return ids

    def _reserving_connection(self) -> psycopg.Connection[Any]:
        pool = self.datastore.pool
        conninfo, settings = connection_args(pool)
        # Client-side keepalives too: a half-open connection fails within ~25 s instead of hanging a claim.
        for name, value in (("keepalives", 1), ("keepalives_idle", 10), ("keepalives_interval", 5), ("keepalives_count", 3)):
            settings.setdefault(name, value)
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=max(2, round(pool.timeout)), **settings)

    def claim_candidates(self, limit: int, agents: Sequence[str] | None = None) -> list[str]:
        """The best claimable runs that no other worker holds reserved, reserved now for this one."""
        scan = limit * _CANDIDATES_PER_CLAIM + len(self.reservations.held)
        while True:
            candidates = super().claim_candidates(scan, agents)
            chosen = self.reservations.reserve(candidates, limit)
            # Every run read may be held by other workers while more wait further down: read on.
            if len(chosen) >= limit or len(candidates) < scan or scan >= _MAX_SCAN:
                return chosen
            scan *= 4

    def release_candidates(self) -> None:
        """Release the reservations of the last claim (it is saved, or given up)."""
        self.reservations.release()

    def _select(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return [tuple(r.values()) for r in curs.fetchall()]

    def stored_checkpoints(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        """The stored LangGraph checkpoints among (thread, checkpoint id) ``keys``, as (type, bytes, type, bytes)."""
        schema, _, _ = self._events_table.rpartition(".")
        table = f"{schema}.runjournal_lg_checkpoints" if schema else "runjournal_lg_checkpoints"
        if not keys or self._select("SELECT to_regclass(%s)", (table,))[0][0] is None:
            return {}
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        for thread_id, checkpoint_id in keys:
            rows = self._select(f"SELECT checkpoint_type, checkpoint, metadata_type, metadata FROM {table}"
                                " WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s",
                                (thread_id, checkpoint_id))
            if rows:
                found[(thread_id, checkpoint_id)] = tuple(rows[0])
        return found

    def run_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids whose hex starts with ``prefix`` (a range of the uuid key)."""
        low, high = index.prefix_bounds(prefix)
        rows = self._select(
            f"SELECT DISTINCT originator_id FROM {self._events_table} WHERE originator_id BETWEEN %s::uuid AND %s::uuid"
            " ORDER BY originator_id LIMIT %s", (low, high, limit))
        return [str(r[0]) for r in rows]

    def log_rows(self, last: int, limit: int) -> tuple[int, int, int, list[tuple[int | None, str, int]]]:
        """The events table beside a reading of the log up to notification id ``last``.

        (rows in all, rows after ``last``, rows with an id <= 0 or none, up to ``limit`` of
        those as (id, run id, version)): what verify compares with what it read.
        """
        t = self._events_table
        outside_rows = "notification_id <= 0 OR notification_id IS NULL"
        total = self._select(f"SELECT COUNT(*) FROM {t}")[0][0]
        after = self._select(f"SELECT COUNT(*) FROM {t} WHERE notification_id > %s", (last,))[0][0]
        outside = self._select(f"SELECT COUNT(*) FROM {t} WHERE {outside_rows}")[0][0]
        listed = self._select(
            f"SELECT notification_id, originator_id, originator_version FROM {t} WHERE {outside_rows}"
            " ORDER BY notification_id NULLS FIRST LIMIT %s",
            (limit,),
        ) if outside else []
        return total, after, outside, [(r[0], str(r[1]), r[2]) for r in listed]

    def replace_index(self, entries: Sequence[tuple[IndexEntry, int]]) -> None:
        """Replace both views (a rebuild from the log)."""
        with self.datastore.transaction(commit=True) as curs:
            for statement in self.index_sql.clear:
                curs.execute(statement)
            for entry, position in entries:
                index.write_entries(curs, self.index_sql, [entry], {entry.run_id: position})


class Factory(PostgresFactory):
    """Builds the PostgreSQL store with the run recorder.

    Construction connects once, outside the pool: an unreachable server, a wrong
    password or a missing database fails at once with libpq's own message, where the
    pool would wait out its timeout and report only that it got no connection.
    """

    application_recorder_class = PostgresRunRecorder
    aggregate_recorder_class = PostgresSnapshotRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self._reservations: list[Reservations] = []
        if self.datastore.enable_db_functions:
            self.close()
            raise StoreError(DB_FUNCTIONS_REFUSED)
        self._pass_on_conninfo()
        self._check_connection()
        if self.datastore.pre_ping:
            _check_all_after_a_failed_check(self.datastore.pool)

    def application_recorder(self) -> PostgresRunRecorder:
        recorder = super().application_recorder()
        assert isinstance(recorder, PostgresRunRecorder)
        self._reservations.append(recorder.reservations)
        return recorder

    def close(self) -> None:
        for reservations in self._reservations:
            reservations.close()
        super().close()

    def _pass_on_conninfo(self) -> None:
        """Give every connection the URL's libpq parameters that eventsourcing has no setting for (sslmode ...)."""
        extra: dict[str, str] = json.loads(self.env.get(POSTGRES_CONNINFO) or "{}")
        if not extra:
            return
        pool = self.datastore.pool
        if callable(pool.kwargs):  # newer psycopg_pool: kwargs may be a function, called per connection
            given = pool.kwargs
            pool.kwargs = lambda: {**given(), **extra}
        else:
            pool.kwargs = {**(pool.kwargs or {}), **extra}

    def _check_connection(self) -> None:
        conninfo, settings = connection_args(self.datastore.pool)
        # libpq counts whole seconds and treats anything below 2 as 2.
        settings["connect_timeout"] = max(2, round(self.datastore.pool.timeout))
        try:
            psycopg.connect(conninfo, **settings).close()
        except psycopg.OperationalError as e:
            self.close()
            # eventsourcing's own type for it, carrying the server's message: the
            # journal turns it into StoreUnavailable / StoreError like any store fault.
            raise OperationalError(" ".join(str(e).split())) from e


def connection_args(pool: Any) -> tuple[str, dict[str, Any]]:
    """The conninfo and settings of the pool's connections, for one connection of our own (tuple rows)."""
    kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
    conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
    settings = {k: v for k, v in (kwargs or {}).items() if k != "row_factory"}
    if pool.get_password_func is not None:
        settings["password"] = pool.get_password_func()
    return conninfo, settings


def _check_all_after_a_failed_check(pool: Any) -> None:
    """When the pre-ping finds one pooled connection dead, test all the idle ones at once.

    A server restart or failover drops every pooled connection. psycopg_pool's
    pre-ping finds them one per request attempt and backs off between attempts
    (0, 1, 2, 4 s ...), so with four dead connections a request waits out the whole
    pool timeout and fails although the server is back. ``pool.check()`` discards
    every dead idle connection and starts replacing them, so the retried attempt
    gets a fresh one.
    """
    check: Callable[[Any], None] | None = getattr(pool, "_check", None)
    if check is None:
        return
    pool_ref = weakref.ref(pool)  # the pool holds this function: no reference cycle

    def check_then_all(conn: Any) -> None:
        try:
            check(conn)
        except Exception:
            live = pool_ref()
            if live is not None:
                live.check()
            raise

    pool._check = check_then_all
