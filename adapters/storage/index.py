"""Inline views: the claim queue and the leases, written in the event store's own transaction.

The journal passes one ``IndexEntry`` per saved run as ``save(..., index=[...])``;
each backend's recorder writes them in the same transaction as the events, so
these views never lag the log and ``claim_next`` and ``expire_leases`` may act
on them. Rows exist only for non-terminal runs, so the tables stay as small as
the set of live runs however long the log grows.

The quarantine table is the exception: it is not derived from the log. A run
whose stored events fail their check on load (``TamperDetected``) gets a row
there, written by the worker that found it; claims and lease expiry skip it
until an operator releases it (``runjournal quarantine --release RUN``). A
rebuild of the index leaves it as it is.

Over 400 lines: the SQL of every inline table (one ``Statements``), the entry each save
writes and the protocol the recorders answer, kept together so the three backends
(``sqlite.py``, ``postgres.py``, ``memory.py``) read one definition of each table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ...domain import CLAIMABLE_STATES, LEASED_STATES, Run
from ...domain.run import id_text

QUEUE_TABLE = "runjournal_queue"
LEASES_TABLE = "runjournal_leases"
QUARANTINE_TABLE = "runjournal_quarantine"


@dataclass(frozen=True)
class Statements:
    """The SQL of both views for one pair of (possibly schema-qualified) table names."""

    queue: str = QUEUE_TABLE
    leases: str = LEASES_TABLE
    placeholder: str = "?"
    quarantine: str = ""  # default: beside the queue table (same schema qualifier)

    def __post_init__(self) -> None:
        if not self.quarantine:
            prefix = self.queue[: -len(QUEUE_TABLE)] if self.queue.endswith(QUEUE_TABLE) else ""
            object.__setattr__(self, "quarantine", prefix + QUARANTINE_TABLE)

    def _sql(self, text: str) -> str:
        text = text.format(queue=self.queue, leases=self.leases, quarantine=self.quarantine)
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @cached_property
    def create(self) -> tuple[str, ...]:
        return tuple(
            self._sql(s)
            for s in (
                "CREATE TABLE IF NOT EXISTS {queue} (run_id TEXT PRIMARY KEY,"
                " priority INTEGER NOT NULL, position BIGINT NOT NULL, state TEXT NOT NULL,"
                " claimable INTEGER NOT NULL, agent_id TEXT, deadline DOUBLE PRECISION)",
                f"CREATE INDEX IF NOT EXISTS {QUEUE_TABLE}_claim"
                " ON {queue} (claimable, priority DESC, position)",
                "CREATE TABLE IF NOT EXISTS {leases} (run_id TEXT PRIMARY KEY,"
                " worker_id TEXT NOT NULL, epoch INTEGER NOT NULL,"
                " expires_at DOUBLE PRECISION NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS {LEASES_TABLE}_expiry ON {{leases}} (expires_at)",
                "CREATE TABLE IF NOT EXISTS {quarantine} (run_id TEXT PRIMARY KEY, version INTEGER,"
                " what TEXT NOT NULL, quarantined_at DOUBLE PRECISION NOT NULL, quarantined_by TEXT NOT NULL)",
            )
        )

    @cached_property
    def add_agent_column(self) -> str:
        """Stores created before a queue row named its run's agent get the column (NULL until labelled)."""
        return self._sql("ALTER TABLE {queue} ADD COLUMN agent_id TEXT")

    @cached_property
    def add_deadline_column(self) -> str:
        """Stores created before approvals had deadlines get the column (NULL: no deadline)."""
        return self._sql("ALTER TABLE {queue} ADD COLUMN deadline DOUBLE PRECISION")

    @cached_property
    def deadline_index(self) -> str:
        """Made after ``add_deadline_column``: an older store has the column only once that has run."""
        return self._sql(f"CREATE INDEX IF NOT EXISTS {QUEUE_TABLE}_deadline ON {{queue}} (deadline)")

    @cached_property
    def upsert_queue(self) -> str:
        return self._sql(
            "INSERT INTO {queue} (run_id, priority, position, state, claimable, agent_id, deadline)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
            " priority = excluded.priority, state = excluded.state,"
            " claimable = excluded.claimable, agent_id = excluded.agent_id, deadline = excluded.deadline"
        )

    @cached_property
    def due(self) -> str:
        return self._sql(
            "SELECT q.run_id FROM {queue} AS q WHERE q.deadline <= ? AND NOT EXISTS"
            " (SELECT 1 FROM {quarantine} AS x WHERE x.run_id = q.run_id) ORDER BY q.deadline LIMIT ?"
        )

    @cached_property
    def unlabelled(self) -> str:
        return self._sql("SELECT run_id FROM {queue} WHERE agent_id IS NULL ORDER BY run_id")

    @cached_property
    def label(self) -> str:
        # A run's agent never changes, so a label from any copy of the run is the right one.
        return self._sql("UPDATE {queue} SET agent_id = ? WHERE run_id = ? AND agent_id IS NULL")

    @cached_property
    def delete_queue(self) -> str:
        return self._sql("DELETE FROM {queue} WHERE run_id = ?")

    @cached_property
    def upsert_lease(self) -> str:
        return self._sql(
            "INSERT INTO {leases} (run_id, worker_id, epoch, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (run_id) DO UPDATE SET worker_id = excluded.worker_id,"
            " epoch = excluded.epoch, expires_at = excluded.expires_at"
        )

    @cached_property
    def delete_lease(self) -> str:
        return self._sql("DELETE FROM {leases} WHERE run_id = ?")

    @cached_property
    def clear(self) -> tuple[str, str]:
        return self._sql("DELETE FROM {queue}"), self._sql("DELETE FROM {leases}")

    @cached_property
    def candidates(self) -> str:
        return self._candidates("")

    def candidates_for(self, agents: int) -> str:
        """The candidates of ``agents`` agents (parameters: the agent ids, then the limit)."""
        return self._candidates(f" AND q.agent_id IN ({', '.join('?' * agents)})")

    def _candidates(self, agent_filter: str) -> str:
        return self._sql(
            "SELECT q.run_id FROM {queue} AS q WHERE q.claimable = 1" + agent_filter + " AND NOT EXISTS"
            " (SELECT 1 FROM {quarantine} AS x WHERE x.run_id = q.run_id)"
            " ORDER BY q.priority DESC, q.position LIMIT ?"
        )

    @cached_property
    def queue_rows(self) -> str:
        return self._sql(
            "SELECT run_id, priority, position, state FROM {queue} WHERE claimable = 1"
            " ORDER BY priority DESC, position"
        )

    @cached_property
    def all_queue_rows(self) -> str:
        return self._sql("SELECT run_id, priority, position, state, claimable FROM {queue} ORDER BY run_id")

    @cached_property
    def expired(self) -> str:
        return self._sql(
            "SELECT l.run_id FROM {leases} AS l WHERE l.expires_at <= ? AND NOT EXISTS"
            " (SELECT 1 FROM {quarantine} AS x WHERE x.run_id = l.run_id) ORDER BY l.expires_at LIMIT ?"
        )

    @cached_property
    def lease_rows(self) -> str:
        return self._sql("SELECT run_id, worker_id, epoch, expires_at FROM {leases} ORDER BY run_id")

    @cached_property
    def insert_quarantine(self) -> str:
        # The first finding stays: a run found again keeps the row that quarantined it.
        return self._sql(
            "INSERT INTO {quarantine} (run_id, version, what, quarantined_at, quarantined_by)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING"
        )

    @cached_property
    def delete_quarantine(self) -> str:
        return self._sql("DELETE FROM {quarantine} WHERE run_id = ?")

    @cached_property
    def quarantine_rows(self) -> str:
        return self._sql(
            "SELECT run_id, version, what, quarantined_at, quarantined_by FROM {quarantine}"
            " ORDER BY quarantined_at, run_id"
        )


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the inline views should hold for one run after a save."""

    run_id: str
    state: str
    priority: int
    live: bool
    claimable: bool
    lease: tuple[str, int, float] | None
    # A quarantine marker touches only the quarantine table, never the queue or the leases:
    # ``quarantine`` adds the row, ``release`` removes it.
    quarantine: QuarantineRow | None = None
    release: bool = False
    agent_id: str = ""  # the run's agent: workers claim only the runs of agents they have
    deadline: float | None = None  # when the run's pending approval expires undecided

    @classmethod
    def of(cls, run: Run) -> IndexEntry:
        """The entry for a run's current state."""
        lease = None
        if run.state in LEASED_STATES and run.lease_expires_at is not None:
            lease = (str(run.worker_id), run.epoch, run.lease_expires_at.timestamp())
        pending = run.pending_approval
        deadline = pending.get("deadline") if pending is not None else None
        return cls(
            run_id=run.run_id,
            state=str(run.state),
            priority=run.priority,
            live=not run.is_terminal,
            claimable=run.state in CLAIMABLE_STATES,
            lease=lease,
            agent_id=run.agent_id,
            deadline=datetime.fromisoformat(deadline).timestamp() if deadline is not None else None,
        )


    @classmethod
    def gone(cls, run_id: str) -> IndexEntry:
        """The entry that removes a run with no events (a row left by a store edited by hand)."""
        return cls(run_id=run_id, state="", priority=0, live=False, claimable=False, lease=None)

    @classmethod
    def quarantined(cls, row: QuarantineRow) -> IndexEntry:
        """The marker that quarantines a run (only for stores with a quarantine table)."""
        return cls(run_id=row.run_id, state="", priority=0, live=True, claimable=False, lease=None, quarantine=row)

    @classmethod
    def released(cls, run_id: str) -> IndexEntry:
        """The marker that releases a quarantined run (only for stores with a quarantine table)."""
        return cls(run_id=run_id, state="", priority=0, live=True, claimable=False, lease=None, release=True)

    @property
    def is_marker(self) -> bool:
        """True for a quarantine or release marker."""
        return self.quarantine is not None or self.release


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A claimable run in the inline queue."""

    run_id: str
    priority: int
    position: int
    state: str


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A current lease in the inline leases view."""

    run_id: str
    worker_id: str
    epoch: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """A run workers leave alone: its stored events failed their check on load."""

    run_id: str
    version: int | None
    what: str
    quarantined_at: float
    quarantined_by: str


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def run_keys(stored_events: Sequence[StoredEvent]) -> list[str]:
    """Each stored event's run id as text: a run's UUID is formatted once, not once per event."""
    return [id_text(s.originator_id) if isinstance(s.originator_id, UUID) else str(s.originator_id)
            for s in stored_events]


def first_positions(run_ids: Iterable[str], notification_ids: Sequence[int] | None) -> dict[str, int]:
    """The log position of each run's first event in a batch."""
    positions: dict[str, int] = {}
    for run_id, position in zip(run_ids, notification_ids or (), strict=False):
        positions.setdefault(run_id, position)
    return positions


def candidates_query(statements: Statements, limit: int, agents: Sequence[str] | None) -> tuple[str, tuple[Any, ...]]:
    """The candidates statement and its parameters, for every agent or for ``agents`` only."""
    if agents is None:
        return statements.candidates, (limit,)
    return statements.candidates_for(len(agents)), (*agents, limit)


def write_entries(
    cursor: Cursor, statements: Statements, entries: Iterable[IndexEntry], positions: Mapping[str, int]
) -> None:
    """Apply entries inside the caller's transaction."""
    for e in entries:
        if e.quarantine is not None:
            q = e.quarantine
            cursor.execute(statements.insert_quarantine,
                           (q.run_id, q.version, q.what, q.quarantined_at, q.quarantined_by))
            continue
        if e.release:
            cursor.execute(statements.delete_quarantine, (e.run_id,))
            continue
        if not e.live:
            cursor.execute(statements.delete_queue, (e.run_id,))
            cursor.execute(statements.delete_lease, (e.run_id,))
            continue
        row = (e.run_id, e.priority, positions.get(e.run_id, 0), e.state, int(e.claimable), e.agent_id or None,
               e.deadline)
        cursor.execute(statements.upsert_queue, row)
        if e.lease is None:
            cursor.execute(statements.delete_lease, (e.run_id,))
        else:
            cursor.execute(statements.upsert_lease, (e.run_id, *e.lease))


class InlineViews(Protocol):
    """What the journal reads from, and rebuilds, the inline views through."""

    def claim_candidates(self, limit: int, agents: Sequence[str] | None = None) -> list[str]:
        """The best claimable runs, best first; a store shared by processes reserves them until released."""
        ...

    def release_candidates(self) -> None:
        """Release what the last ``claim_candidates`` reserved (the journal does, once the claim is saved or given up)."""
        ...

    def unlabelled_rows(self) -> list[str]: ...

    def label_rows(self, labels: Sequence[tuple[str, str]]) -> None: ...

    def queue_rows(self) -> list[QueueRow]: ...

    def lease_rows(self) -> list[LeaseRow]: ...

    def queue_table(self) -> list[tuple[str, int, int, str, bool]]: ...

    def expired_leases(self, now: float, limit: int) -> list[str]: ...

    def due_approvals(self, now: float, limit: int) -> list[str]:
        """Run ids whose pending approval's deadline is at or before ``now``."""
        ...

    def replace_index(self, entries: Sequence[tuple[IndexEntry, int]]) -> None: ...

    def run_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids (dashed) whose hex digits start with ``prefix`` (lower-case hex, no dashes)."""
        ...

    def states_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of these live runs (one indexed lookup each; terminal runs have no row)."""
        ...


def persists_quarantine(recorder: Any) -> bool:
    """True when the recorder writes its index through ``write_entries`` into SQL tables.

    Other recorders (the in-process store) get no quarantine markers: the journal keeps
    their quarantine in memory, which is as long as such a store lives anyway.
    """
    return isinstance(getattr(recorder, "index_sql", None), Statements) and callable(getattr(recorder, "_select", None))


def write_markers(recorder: Any, entries: Sequence[IndexEntry]) -> None:
    """Write quarantine markers (and any other entries) in one transaction of their own.

    Not through a save of no events: PostgreSQL's recorder skips its index hook when
    there is no event to insert.
    """
    refuse = getattr(recorder, "_refuse_if_read_only", None)
    if callable(refuse):
        refuse()
    with recorder.datastore.transaction(commit=True) as c:
        write_entries(c, recorder.index_sql, entries, {})


def label_rows(recorder: Any, labels: Sequence[tuple[str, str]]) -> None:
    """Set the agent of queue rows written before rows named it, in one transaction."""
    with recorder.datastore.transaction(commit=True) as c:
        for run_id, agent_id in labels:
            c.execute(recorder.index_sql.label, (agent_id, run_id))


def select_quarantine(recorder: Any) -> list[QuarantineRow] | None:
    """Every quarantined run, oldest first; ``None`` when the recorder has no quarantine table.

    A store opened read-only that was written before the table existed has none: empty.
    """
    own = getattr(recorder, "quarantine_rows", None)
    if callable(own):
        return list(own())
    if not persists_quarantine(recorder):
        return None
    try:
        rows = recorder._select(recorder.index_sql.quarantine_rows)
    except Exception:
        if getattr(recorder, "read_only", False):
            return []
        raise
    return [QuarantineRow(*r) for r in rows]


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """The lowest and highest 32-digit hex ids starting with ``prefix`` (an index range, not a scan)."""
    pad = 32 - len(prefix)
    return prefix + "0" * pad, prefix + "f" * pad
