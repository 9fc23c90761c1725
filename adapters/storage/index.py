"""Inline views: the claim queue and the leases, written in the event store's own transaction.

The journal passes one ``IndexEntry`` per saved run as ``save(..., index=[...])``;
each backend's recorder writes them in the same transaction as the events, so
these views never lag the log and ``claim_next`` and ``expire_leases`` may act
on them. Rows exist only for non-terminal runs, so the tables stay as small as
the set of live runs however long the log grows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from ...domain import CLAIMABLE_STATES, LEASED_STATES, Run

QUEUE_TABLE = "runjournal_queue"
LEASES_TABLE = "runjournal_leases"


@dataclass(frozen=True)
class Statements:
    """The SQL of both views for one pair of (possibly schema-qualified) table names."""

    queue: str = QUEUE_TABLE
    leases: str = LEASES_TABLE
    placeholder: str = "?"

    def _sql(self, text: str) -> str:
        text = text.format(queue=self.queue, leases=self.leases)
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @cached_property
    def create(self) -> tuple[str, ...]:
        return tuple(
            self._sql(s)
            for s in (
                "CREATE TABLE IF NOT EXISTS {queue} (run_id TEXT PRIMARY KEY,"
                " priority INTEGER NOT NULL, position BIGINT NOT NULL, state TEXT NOT NULL,"
                " claimable INTEGER NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS {QUEUE_TABLE}_claim"
                " ON {queue} (claimable, priority DESC, position)",
                "CREATE TABLE IF NOT EXISTS {leases} (run_id TEXT PRIMARY KEY,"
                " worker_id TEXT NOT NULL, epoch INTEGER NOT NULL,"
                " expires_at DOUBLE PRECISION NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS {LEASES_TABLE}_expiry ON {{leases}} (expires_at)",
            )
        )

    @cached_property
    def upsert_queue(self) -> str:
        return self._sql(
            "INSERT INTO {queue} (run_id, priority, position, state, claimable)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
            " priority = excluded.priority, state = excluded.state,"
            " claimable = excluded.claimable"
        )

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
        return self._sql(
            "SELECT run_id FROM {queue} WHERE claimable = 1 ORDER BY priority DESC, position LIMIT ?"
        )

    @cached_property
    def queue_rows(self) -> str:
        return self._sql(
            "SELECT run_id, priority, position, state FROM {queue} WHERE claimable = 1"
            " ORDER BY priority DESC, position"
        )

    @cached_property
    def expired(self) -> str:
        return self._sql(
            "SELECT run_id FROM {leases} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
        )

    @cached_property
    def lease_rows(self) -> str:
        return self._sql("SELECT run_id, worker_id, epoch, expires_at FROM {leases} ORDER BY run_id")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the inline views should hold for one run after a save."""

    run_id: str
    state: str
    priority: int
    live: bool
    claimable: bool
    lease: tuple[str, int, float] | None

    @classmethod
    def of(cls, run: Run) -> IndexEntry:
        """The entry for a run's current state."""
        lease = None
        if run.state in LEASED_STATES and run.lease_expires_at is not None:
            lease = (str(run.worker_id), run.epoch, run.lease_expires_at.timestamp())
        return cls(
            run_id=run.run_id,
            state=str(run.state),
            priority=run.priority,
            live=not run.is_terminal,
            claimable=run.state in CLAIMABLE_STATES,
            lease=lease,
        )


    @classmethod
    def gone(cls, run_id: str) -> IndexEntry:
        """The entry that removes a run with no events (a row left by a store edited by hand)."""
        return cls(run_id=run_id, state="", priority=0, live=False, claimable=False, lease=None)


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


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def first_positions(run_ids: Iterable[str], notification_ids: Sequence[int] | None) -> dict[str, int]:
    """The log position of each run's first event in a batch."""
    positions: dict[str, int] = {}
    for run_id, position in zip(run_ids, notification_ids or (), strict=False):
        positions.setdefault(run_id, position)
    return positions


def write_entries(
    cursor: Cursor, statements: Statements, entries: Iterable[IndexEntry], positions: Mapping[str, int]
) -> None:
    """Apply entries inside the caller's transaction."""
    for e in entries:
        if not e.live:
            cursor.execute(statements.delete_queue, (e.run_id,))
            cursor.execute(statements.delete_lease, (e.run_id,))
            continue
        row = (e.run_id, e.priority, positions.get(e.run_id, 0), e.state, int(e.claimable))
        cursor.execute(statements.upsert_queue, row)
        if e.lease is None:
            cursor.execute(statements.delete_lease, (e.run_id,))
        else:
            cursor.execute(statements.upsert_lease, (e.run_id, *e.lease))


class InlineViews(Protocol):
    """What the journal reads from, and rebuilds, the inline views through."""

    def claim_candidates(self, limit: int) -> list[str]: ...

    def queue_rows(self) -> list[QueueRow]: ...

    def lease_rows(self) -> list[LeaseRow]: ...

    def expired_leases(self, now: float, limit: int) -> list[str]: ...

    def replace_index(self, entries: Sequence[tuple[IndexEntry, int]]) -> None: ...
