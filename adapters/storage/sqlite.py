"""SQLite event store with the inline views in the same database file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import unquote

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory

from ...domain import StoreError
from . import faults, index
from .index import IndexEntry
from .sql_views import SqlInlineViews

# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGED = (11, 26)
_CHECK_LINES = 20  # messages asked of PRAGMA quick_check / integrity_check


class SQLiteRunRecorder(SqlInlineViews, SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder, also writing the claim queue and leases."""

    index_sql = index.Statements()
    lock_wait = faults.DEFAULT_LOCK_WAIT  # seconds a write waits, in all, for another writer's lock

    read_only = False  # opened read-only (``mode=ro``): every write is refused before it reaches SQLite
    store_url = ""  # the store's URL and file as given, for messages
    store_file = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The loader reads exactly the rows the log lists (positions from 1): a row stored at a
        # rowid <= 0 is in no notification, so verify, export and the views never see it; the
        # loader must not apply it either. (``+rowid`` keeps the planner on the primary key index.)
        self.select_events_statement = f"SELECT * FROM {self.events_table_name} WHERE +rowid > 0 AND originator_id=? "

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Append in one transaction; while another process holds the lock, retry (bounded)."""
        self._refuse_if_read_only()
        write = super().insert_events
        return faults.retry_busy(lambda: write(stored_events, **kwargs), lock_wait=self.lock_wait)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.index_sql.create]

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        c.execute(f"SELECT name FROM pragma_table_info('{index.QUEUE_TABLE}')")
        columns = {row[0] for row in c.fetchall()}
        if "agent_id" not in columns:  # a store from before the column
            c.execute(self.index_sql.add_agent_column)
        if "deadline" not in columns:  # a store from before approvals had deadlines
            c.execute(self.index_sql.add_deadline_column)
        c.execute(self.index_sql.deadline_index)

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        index_entries: Sequence[IndexEntry] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if index_entries:
            positions = index.first_positions(index.run_keys(stored_events), ids)
            index.write_entries(c, self.index_sql, index_entries, positions)
        return ids

    def _select(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return list(c.fetchall())

    def select_raw(self, start: int, limit: int) -> list[tuple[int, str, int, str, bytes]]:
        """Events after ``start`` as (position, run id, version, topic, state): no per-row objects."""
        with self._damage_is_fatal():
            rows = self._select(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name}"
                " WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (max(start, 0), limit),
            )
        return [(r[0], _dashed(r[1]), r[2], r[3], r[4]) for r in rows]

    def run_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids whose hex starts with ``prefix`` (ids are stored as hex: a range of the key)."""
        low, high = index.prefix_bounds(prefix)
        rows = self._select(
            f"SELECT DISTINCT originator_id FROM {self.events_table_name} WHERE originator_id BETWEEN ? AND ?"
            " ORDER BY originator_id LIMIT ?", (low, high, limit))
        return [_dashed(r[0]) for r in rows]

    def log_rows(self, last: int, limit: int) -> tuple[int, int, int, list[tuple[int, str, int]]]:
        """The events table beside a reading of the log up to position ``last``.

        (rows in all, rows after ``last``, rows at a position <= 0, up to ``limit`` of
        those as (position, run id, version)): what verify compares with what it read.
        """
        t = self.events_table_name
        with self._damage_is_fatal():
            total = self._select(f"SELECT COUNT(*) FROM {t}")[0][0]
            after = self._select(f"SELECT COUNT(*) FROM {t} WHERE rowid > ?", (last,))[0][0]
            outside = self._select(f"SELECT COUNT(*) FROM {t} WHERE rowid <= 0")[0][0]
            listed = self._select(
                f"SELECT rowid, originator_id, originator_version FROM {t} WHERE rowid <= 0 ORDER BY rowid LIMIT ?",
                (limit,),
            ) if outside else []
        return total, after, outside, [(r[0], _dashed(str(r[1])), r[2]) for r in listed]

    def stored_checkpoints(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        """The stored LangGraph checkpoints among (thread, checkpoint id) ``keys``, as (type, bytes, type, bytes)."""
        if not keys or not self._select("SELECT 1 FROM sqlite_master WHERE name = 'runjournal_lg_checkpoints'"):
            return {}
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        for thread_id, checkpoint_id in keys:
            rows = self._select("SELECT checkpoint_type, checkpoint, metadata_type, metadata FROM"
                                " runjournal_lg_checkpoints WHERE thread_id = ? AND checkpoint_ns = ''"
                                " AND checkpoint_id = ?", (thread_id, checkpoint_id))
            if rows:
                found[(thread_id, checkpoint_id)] = tuple(rows[0])
        return found

    def check_file(self, *, deep: bool = False) -> list[str]:
        """What SQLite's own check finds wrong with the file (empty: sound).

        ``PRAGMA quick_check`` reads every page and checks the b-trees; ``deep`` runs
        ``integrity_check``, which also checks that every index matches its table.
        """
        pragma = "integrity_check" if deep else "quick_check"
        try:
            rows = self._select(f"PRAGMA {pragma}({_CHECK_LINES})")
        except Exception as e:  # noqa: BLE001 - a file SQLite cannot even check is the finding
            return [faults.detail(e)]
        lines = [line for r in rows for line in str(r[0]).splitlines()]
        if lines == ["ok"]:
            return []
        found = [line for line in lines if line.strip() and not line.startswith("*** in database")]
        return found or lines

    @property
    def file_name(self) -> str:
        """The store's file, for messages."""
        return self.store_file or _file_of(self.datastore.pool.db_name)

    @contextmanager
    def _damage_is_fatal(self) -> Iterator[None]:
        """A damaged file is a clear ``StoreError``, never a traceback nor a "retry later"."""
        try:
            yield
        except StoreError:
            raise
        except Exception as e:
            damage = _damage(e)
            if damage is None:
                raise
            raise StoreError(f"store file {self.file_name} is damaged ({damage}): it cannot be read reliably; "
                             "restore it from a backup") from None

    def replace_index(self, entries: Sequence[tuple[IndexEntry, int]]) -> None:
        """Replace both views (a rebuild from the log)."""
        self._refuse_if_read_only()
        with self.datastore.transaction(commit=True) as c:
            for statement in self.index_sql.clear:
                c.execute(statement)
            for entry, position in entries:
                index.write_entries(c, self.index_sql, [entry], {entry.run_id: position})

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise StoreError(f"store file {self.store_file} is open read-only: "
                             "nothing was written (open it without read_only to write)")

    def check_log_exists(self) -> None:
        """Refuse a read-only SQLite file without runjournal's tables (another program's database)."""
        with self._damage_is_fatal():
            rows = self._select("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                                (self.events_table_name,))
        if not rows:
            raise StoreError(f"cannot open store {self.store_url}: {self.store_file} is a "
                             "SQLite database but not a runjournal store (it has no event log); check the path")


def _file_of(db_name: str) -> str:
    """The file of a SQLite database name or ``file:`` URI."""
    if db_name.startswith("file:"):
        return unquote(db_name[len("file:"):].split("?", 1)[0])
    return db_name


def _damage(error: BaseException) -> str | None:
    """SQLite's message when ``error`` (or its cause) says the file is damaged, else None."""
    for seen in faults.causes(error):
        if isinstance(seen, sqlite3.DatabaseError) and (getattr(seen, "sqlite_errorcode", 0) or 0) & 0xFF in _DAMAGED:
            return str(seen)
    return None


def _dashed(hex_id: str) -> str:
    """A UUID's text form from its stored hex, without building a UUID."""
    if len(hex_id) != 32:
        return hex_id
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"


class Factory(SQLiteFactory):
    """Builds the SQLite store with the run recorder."""

    application_recorder_class = SQLiteRunRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.read_only = self.env.get("READ_ONLY") == "y"
        if self.read_only:
            # Leave the journal mode as it is: changing it would write (stores are in WAL already).
            self.datastore.pool.is_journal_mode_wal = True

    def application_recorder(self) -> Any:
        """The run recorder, with the lock wait of the store URL (read-only if opened so)."""
        recorder = cast(SQLiteRunRecorder, super().application_recorder())
        recorder.lock_wait = float(self.env.get("LOCK_WAIT") or faults.DEFAULT_LOCK_WAIT)
        if self.read_only:
            recorder.read_only = True
            recorder.store_url = self.env.get("STORE_URL") or self.datastore.pool.db_name
            recorder.store_file = self.env.get("STORE_FILE") or _file_of(self.datastore.pool.db_name)
            recorder.check_log_exists()
        return recorder
