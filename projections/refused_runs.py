"""The runner's record of refused runs: runs the views stopped following, and where.

An event whose stored topic is not runjournal's reaches the runner as a
``REFUSED`` event (the decoder resolves nothing it names). Skipping that one
event is not enough: the run's next events would then arrive in a state the
views never saw, and every view would stop at them. So the run is refused as a
whole from that position on: no projection sees it or any later event of that
run. The record is a table of the views file, written in the same transaction
as the positions, so a refusal survives restarts and is shared by every process
that follows the same file. ``verify`` and the loader report the run itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Sequence
from dataclasses import dataclass


from .base import REFUSED, ProjectedEvent, Projection

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database


@dataclass(frozen=True)
class RefusedRun:
    """A run the views stopped following at ``position`` (its ``version``), and why."""

    run_id: str
    position: int
    version: int
    reason: str


class RefusedRuns(Projection):
    name = "_refused_runs"
    version = 1

    def __init__(self) -> None:
        self._since: dict[str, int] = {}  # run -> the position its refusal starts at

    def setup(self, db: Database) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS {self.name} "
                   "(run_id TEXT PRIMARY KEY, position INTEGER, version INTEGER, reason TEXT)")
        self.refresh(db)

    def reset(self, db: Database) -> None:
        self._since.clear()
        super().reset(db)

    def refresh(self, db: Database) -> None:
        """Reload what is recorded (another process following the same file may have added to it)."""
        self._since = dict(db.execute(f"SELECT run_id, position FROM {self.name}").fetchall())

    def handle_page(self, events: Sequence[ProjectedEvent], db: Database) -> None:
        for e in events:
            if e.type == REFUSED and e.run_id not in self._since:
                db.execute(f"INSERT OR IGNORE INTO {self.name} (run_id, position, version, reason) VALUES (?, ?, ?, ?)",
                           [e.run_id, e.position, e.version, str(e.extra.get("refused", ""))[:500]])
                self._since[e.run_id] = e.position

    def followed(self, events: list[ProjectedEvent]) -> list[ProjectedEvent]:
        """``events`` without those of refused runs at or after their refusal."""
        since = self._since
        if not since:
            return events
        return [e for e in events if e.run_id not in since or e.position < since[e.run_id]]

    def all(self, db: Database) -> list[RefusedRun]:
        """Every refused run, in log order."""
        rows = db.execute(f"SELECT run_id, position, version, reason FROM {self.name} ORDER BY position").fetchall()
        return [RefusedRun(*row) for row in rows]
