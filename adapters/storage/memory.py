"""In-process store (eventsourcing POPO) with in-memory inline views, for tests and notebooks."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from . import index
from .index import IndexEntry, LeaseRow, QueueRow


class MemoryRunRecorder(POPOApplicationRecorder):
    """eventsourcing's POPO recorder, also keeping the claim queue and leases."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: dict[str, QueueRow] = {}
        self._leases: dict[str, LeaseRow] = {}
        # The claimable runs in claim order, (-priority, position, run id), kept sorted as rows
        # change: a claim reads the first few instead of sorting every queued run.
        self._order: list[tuple[int, int, str]] = []
        self._claimable: dict[str, tuple[int, int, str]] = {}
        self._agents: dict[str, str] = {}  # run id -> agent id, for claims of some agents only
        self._deadlines: dict[str, float] = {}  # run id -> when its pending approval expires

    def _insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        index_entries: Sequence[IndexEntry] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # eventsourcing's POPO insert, with each run id formatted once: it formats a UUID three
        # times per event (each costs about as much as the rest of the insert).
        keys = index.run_keys(stored_events)
        with self._database_lock:
            if len(set(zip(keys, (s.originator_version for s in stored_events), strict=True))) < len(keys):
                raise IntegrityError(f"Stored events are not unique: {stored_events}")
            for key, s in zip(keys, stored_events, strict=True):
                if s.originator_version in self._stored_events_index[key]:
                    raise IntegrityError(f"Stored event already recorded: {s}")
            ids = []
            for key, s in zip(keys, stored_events, strict=True):
                self._stored_events.append(s)
                self._stored_events_index[key][s.originator_version] = len(self._stored_events) - 1
                ids.append(len(self._stored_events))
            if index_entries:
                positions = index.first_positions(keys, ids)
                for entry in index_entries:
                    self._apply(entry, positions.get(entry.run_id, 0))
            return ids

    def _apply(self, e: IndexEntry, position: int) -> None:
        # Mirrors the SQL statements: a row per live run, its position kept from
        # its first save, so a requeued run keeps its place.
        if not e.live:
            self._queue.pop(e.run_id, None)
            self._unclaimable(e.run_id)
            self._leases.pop(e.run_id, None)
            self._agents.pop(e.run_id, None)
            self._deadlines.pop(e.run_id, None)
            return
        kept = self._queue.get(e.run_id)
        row = QueueRow(e.run_id, e.priority, kept.position if kept else position, e.state)
        self._queue[e.run_id] = row
        self._agents[e.run_id] = e.agent_id
        if e.claimable:
            self._claimable_as(e.run_id, (-row.priority, row.position, e.run_id))
        else:
            self._unclaimable(e.run_id)
        if e.lease is None:
            self._leases.pop(e.run_id, None)
        else:
            self._leases[e.run_id] = LeaseRow(e.run_id, *e.lease)
        if e.deadline is None:
            self._deadlines.pop(e.run_id, None)
        else:
            self._deadlines[e.run_id] = e.deadline

    def _claimable_as(self, run_id: str, key: tuple[int, int, str]) -> None:
        if self._claimable.get(run_id) == key:
            return
        self._unclaimable(run_id)
        self._claimable[run_id] = key
        bisect.insort(self._order, key)

    def _unclaimable(self, run_id: str) -> None:
        key = self._claimable.pop(run_id, None)
        if key is not None:
            del self._order[bisect.bisect_left(self._order, key)]

    def _claimable_rows(self) -> list[QueueRow]:
        return [self._queue[run_id] for _, _, run_id in self._order]

    def claim_candidates(self, limit: int, agents: Sequence[str] | None = None) -> list[str]:
        """Run ids of the best claimable runs (of ``agents`` only, when given), best first."""
        best: list[str] = []
        with self._database_lock:
            for _, _, run_id in self._order:
                if len(best) >= limit:
                    break
                if agents is None or self._agents.get(run_id) in agents:
                    best.append(run_id)
        return best

    def release_candidates(self) -> None:
        """Nothing reserved: one process, one lock."""

    def unlabelled_rows(self) -> list[str]:
        """Always empty: this store's rows are as new as the process."""
        return []

    def label_rows(self, labels: Sequence[tuple[str, str]]) -> None:
        """Nothing to label (see ``unlabelled_rows``)."""

    def queue_rows(self) -> list[QueueRow]:
        """Every claimable run, in claim order."""
        with self._database_lock:
            return self._claimable_rows()

    def lease_rows(self) -> list[LeaseRow]:
        """Every current lease."""
        with self._database_lock:
            return sorted(self._leases.values(), key=lambda r: r.run_id)

    def queue_table(self) -> list[tuple[str, int, int, str, bool]]:
        """Every row of the inline queue, claimable or not: (run, priority, position, state, claimable)."""
        with self._database_lock:
            return sorted((r.run_id, r.priority, r.position, r.state, r.run_id in self._claimable)
                          for r in self._queue.values())

    def expired_leases(self, now: float, limit: int) -> list[str]:
        """Run ids whose lease ran out at or before ``now``."""
        with self._database_lock:
            due = sorted((r for r in self._leases.values() if r.expires_at <= now), key=lambda r: r.expires_at)
        return [r.run_id for r in due[:limit]]

    def due_approvals(self, now: float, limit: int) -> list[str]:
        """Run ids whose pending approval's deadline is at or before ``now``, soonest first."""
        with self._database_lock:
            due = sorted((d, r) for r, d in self._deadlines.items() if d <= now)
        return [r for _, r in due[:limit]]

    def states_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of these live runs."""
        with self._database_lock:
            return {r: self._queue[r].state for r in run_ids if r in self._queue}

    def run_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids whose hex starts with ``prefix`` (a scan: an in-process store is small)."""
        with self._database_lock:
            keys = sorted(str(k) for k, versions in self._stored_events_index.items() if versions)
        return [k for k in keys if k.replace("-", "").startswith(prefix)][:limit]

    def log_rows(self, last: int, limit: int) -> tuple[int, int, int, list[tuple[int, str, int]]]:
        """(events in all, events after position ``last``, 0, []): positions here are list places, from 1."""
        with self._database_lock:
            total = len(self._stored_events)
        return total, max(0, total - last), 0, []

    def replace_index(self, entries: Sequence[tuple[IndexEntry, int]]) -> None:
        """Replace both views (a rebuild from the log)."""
        with self._database_lock:
            self._queue.clear()
            self._leases.clear()
            self._claimable.clear()
            self._order.clear()
            self._agents.clear()
            self._deadlines.clear()
            for entry, position in entries:
                self._apply(entry, position)


class Factory(POPOFactory):
    """Builds the in-process store with the run recorder."""

    def application_recorder(self) -> ApplicationRecorder:
        return MemoryRunRecorder()
