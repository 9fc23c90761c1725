"""PostgreSQL event store with the inline views in the same database.

Imported only for ``postgresql://`` URLs, so psycopg stays an optional extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from . import index
from .index import IndexEntry, LeaseRow, QueueRow

# Any constant will do: it serialises schema creation across processes, which
# otherwise race on CREATE TYPE / CREATE TABLE.
_SCHEMA_LOCK_KEY = 0x52554E4A  # "RUNJ"


class PostgresRunRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, also writing the claim queue and leases."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = self.datastore.schema
        self.index_sql = index.Statements(
            queue=f'"{schema}".{index.QUEUE_TABLE}',
            leases=f'"{schema}".{index.LEASES_TABLE}',
            placeholder="%s",
        )
        self.sql_create_statements.extend(SQL(s) for s in self.index_sql.create)  # type: ignore[arg-type]

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,))

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
            positions = index.first_positions((str(s.originator_id) for s in stored_events), ids)
            index.write_entries(curs, self.index_sql, index_entries, positions)
        return ids

    def _select(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)  # type: ignore[arg-type]
            return [tuple(r.values()) for r in curs.fetchall()]

    def claim_candidates(self, limit: int) -> list[str]:
        """Run ids of the best claimable runs, best first."""
        return [r[0] for r in self._select(self.index_sql.candidates, (limit,))]

    def queue_rows(self) -> list[QueueRow]:
        """Every claimable run, in claim order."""
        return [QueueRow(*r) for r in self._select(self.index_sql.queue_rows)]

    def lease_rows(self) -> list[LeaseRow]:
        """Every current lease."""
        return [LeaseRow(*r) for r in self._select(self.index_sql.lease_rows)]

    def expired_leases(self, now: float, limit: int) -> list[str]:
        """Run ids whose lease ran out at or before ``now``."""
        return [r[0] for r in self._select(self.index_sql.expired, (now, limit))]

    def replace_index(self, entries: Sequence[tuple[IndexEntry, int]]) -> None:
        """Replace both views (a rebuild from the log)."""
        with self.datastore.transaction(commit=True) as curs:
            for statement in self.index_sql.clear:
                curs.execute(statement)  # type: ignore[call-overload]
            for entry, position in entries:
                index.write_entries(curs, self.index_sql, [entry], {entry.run_id: position})


class Factory(PostgresFactory):
    """Builds the PostgreSQL store with the run recorder."""

    application_recorder_class = PostgresRunRecorder
