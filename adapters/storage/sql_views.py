"""The inline queue and leases views read with SQL: one reader for the SQLite and PostgreSQL recorders.

A recorder brings its ``index_sql`` (the statements, in its placeholder style) and its
``_select``; one that can be opened read-only refuses writes in ``_refuse_if_read_only``.
The in-process store keeps the same views in dictionaries (``memory.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import index
from .index import LeaseRow, QueueRow, Statements


class SqlInlineViews:
    """What ``index.InlineViews`` promises, over ``index_sql`` and ``_select``."""

    index_sql: Statements

    def _select(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one statement, as tuples (the recorder's own driver)."""
        raise NotImplementedError

    def _refuse_if_read_only(self) -> None:
        """Writes are allowed; a recorder opened read-only refuses them here."""

    def claim_candidates(self, limit: int, agents: Sequence[str] | None = None) -> list[str]:
        """Run ids of the best claimable runs (of ``agents`` only, when given), best first."""
        return [r[0] for r in self._select(*index.candidates_query(self.index_sql, limit, agents))]

    def release_candidates(self) -> None:
        """Done with the last candidates (a store that reserves them releases them here)."""

    def unlabelled_rows(self) -> list[str]:
        """Queue rows that do not name their run's agent yet (written before they did)."""
        return [r[0] for r in self._select(self.index_sql.unlabelled)]

    def label_rows(self, labels: Sequence[tuple[str, str]]) -> None:
        """Name the agent of each (run id, agent id) row still unlabelled, in one transaction."""
        self._refuse_if_read_only()
        index.label_rows(self, labels)

    def queue_rows(self) -> list[QueueRow]:
        """Every claimable run, in claim order."""
        return [QueueRow(*r) for r in self._select(self.index_sql.queue_rows)]

    def lease_rows(self) -> list[LeaseRow]:
        """Every current lease."""
        return [LeaseRow(*r) for r in self._select(self.index_sql.lease_rows)]

    def queue_table(self) -> list[tuple[str, int, int, str, bool]]:
        """Every row of the inline queue, claimable or not: (run, priority, position, state, claimable)."""
        return [(r[0], r[1], r[2], r[3], bool(r[4])) for r in self._select(self.index_sql.all_queue_rows)]

    def states_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of these live runs, from the inline queue (its primary key)."""
        if not run_ids:
            return {}
        marks = ", ".join(self.index_sql.placeholder for _ in run_ids)
        rows = self._select(f"SELECT run_id, state FROM {self.index_sql.queue} WHERE run_id IN ({marks})",
                            list(run_ids))
        return {str(r[0]): str(r[1]) for r in rows}

    def due_approvals(self, now: float, limit: int) -> list[str]:
        """Run ids whose pending approval's deadline is at or before ``now`` (an index range)."""
        return [r[0] for r in self._select(self.index_sql.due, (now, limit))]

    def expired_leases(self, now: float, limit: int) -> list[str]:
        """Run ids whose lease ran out at or before ``now``."""
        return [r[0] for r in self._select(self.index_sql.expired, (now, limit))]
