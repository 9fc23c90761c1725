"""What a followed projection is: a name, a version, a schema and a handler.

    class RunsPerAgent(Projection):
        name = "runs_per_agent"
        version = 1
        def setup(self, db): db["runs_per_agent"].create({"agent_id": str, "n": int}, pk="agent_id", if_not_exists=True)
        def handle(self, event, db): ...

``db`` is a sqlite-utils ``Database`` over the views connection, already inside
the transaction that will also record the projection's position: whatever a
handler writes commits with its position or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any


from .sealing import PLAINTEXT, ViewCipher

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database


REFUSED = "UnknownTopic"  # the type of an event whose stored topic is not runjournal's (see refused_runs.py)


@dataclass(slots=True)
class ProjectedEvent:
    """One event of the log as projections see it."""

    position: int
    run_id: str
    version: int
    type: str
    timestamp: datetime
    actor: str
    data: dict[str, Any]
    thread_id: str = ""
    agent_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    iso: str = ""  # the timestamp as ISO text, computed once for every view
    # The run's state before and after this event, once a view has worked it out:
    # the runs, threads and recovery views all need it.
    state_from: str = ""
    state_to: str = ""

    def __post_init__(self) -> None:
        if not self.iso:
            self.iso = self.timestamp.isoformat()


class Projection:
    """Base class of followed projections; override ``setup`` and ``handle``."""

    name: str = ""
    version: int = 1
    tables: tuple[str, ...] = ()  # dropped on rebuild; defaults to (name,)
    # Set by the runner: the store's cipher when it has a key. ``self.cipher.seal(text)`` gives
    # what to store for a payload column, ``self.cipher.unseal(stored)`` the text back.
    cipher: ViewCipher = PLAINTEXT

    def setup(self, db: Database) -> None:
        """Create the projection's tables (idempotent)."""

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        """Apply one event."""

    def handle_page(self, events: Sequence[ProjectedEvent], db: Database) -> None:
        """Apply a page of events; built-ins override this to write in batches."""
        for event in events:
            self.handle(event, db)

    def reset(self, db: Database) -> None:
        """Drop the projection's tables and create them again (a rebuild from zero)."""
        for table in self.tables or (self.name,):
            db.execute(f'DROP TABLE IF EXISTS "{table}"')
        self.setup(db)
