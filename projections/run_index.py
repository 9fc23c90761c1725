"""The runner's own index: which thread and agent each run belongs to.

Only ``Created`` names a run's thread and agent; the runner fills
``event.thread_id`` and ``event.agent_id`` from this table for every other
event, so each view need not keep its own copy of that mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections import OrderedDict
from collections.abc import Sequence


from .base import ProjectedEvent
from .rows import Row, RowProjection

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database

_CACHE = 50_000


class RunIndex(RowProjection):
    name = "_run_index"
    version = 1
    pk = "run_id"
    columns = {"run_id": str, "thread_id": str, "agent_id": str}  # noqa: RUF012

    def __init__(self) -> None:
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def key(self, event: ProjectedEvent) -> str | None:
        return event.run_id if event.type == "Created" else None

    def creates(self, event: ProjectedEvent) -> bool:
        return event.type == "Created"

    def apply(self, row: Row | None, event: ProjectedEvent) -> Row:
        self._remember(event.run_id, event.data["thread_id"], event.data["agent_id"])
        return {"run_id": event.run_id, "thread_id": event.data["thread_id"], "agent_id": event.data["agent_id"]}

    def reset(self, db: Database) -> None:
        self._cache.clear()
        super().reset(db)

    def _remember(self, run_id: str, thread_id: str, agent_id: str) -> None:
        self._cache[run_id] = (thread_id, agent_id)
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)

    def enrich(self, events: Sequence[ProjectedEvent], db: Database) -> None:
        """Fill in each event's thread and agent."""
        missing = list({e.run_id for e in events if e.run_id not in self._cache})
        if missing:
            for run_id, row in self.load(db, missing).items():
                self._remember(run_id, row["thread_id"], row["agent_id"])
        for e in events:
            e.thread_id, e.agent_id = self._cache.get(e.run_id, ("", ""))
