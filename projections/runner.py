"""The projection runner: pages of the log in, view rows and positions out, exactly once.

It reads the log in pages, up to ``TRANSACTION_EVENTS`` events at a time
(read before the views' write lock is taken), and applies them in one
transaction (``BEGIN IMMEDIATE``, so several processes may follow the same
views file): for each page it re-reads every projection's position, lets each
projection handle the events past its position and records the new positions;
then it commits. A kill at any instant leaves rows and
positions together: either the transaction's pages are in, or none is. A projection that
raises is rolled back to the event before the failing one, stops there, and is
reported; the others go on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eventsourcing.persistence import Cipher
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from ..domain.errors import RunjournalError
from .base import ProjectedEvent, Projection
from .refused_runs import RefusedRun, RefusedRuns
from .run_index import RunIndex
from .sealing import ViewCipher

if TYPE_CHECKING:
    from sqlite_utils import Database

ReadPages = Callable[[int], Iterator[list[ProjectedEvent]]]
TRACKING = "_projection_tracking"
# A catch-up far behind commits once per this many events, not once per page: with random keys
# (run and thread ids) each commit rewrites about one page of every keyed table per touched row,
# so on a large views file the pages written per event fall with the events per commit.
TRANSACTION_EVENTS = 50_000


@dataclass(frozen=True)
class ProjectionFailure:
    """Where a projection stopped and why."""

    name: str
    position: int
    event_type: str
    error: str


class ProjectionError(RunjournalError):
    """Raised by catch-up when a projection's handler raised; the others were applied."""

    code = "projection_error"

    def __init__(self, failures: Sequence[ProjectionFailure]) -> None:
        self.failures = list(failures)
        super().__init__(
            "; ".join(
                f"projection {f.name!r} stopped at position {f.position} ({f.event_type}): {f.error}"
                for f in self.failures
            )
        )


def open_views(path: str | Path) -> Database:
    """The views database (WAL; ``synchronous=NORMAL``: it is a cache the log can rebuild)."""
    from sqlite_utils import Database  # here, not at import: a verb that opens no views never pays for it

    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    _use_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    # 256 MiB at most (taken only as the file grows): a catch-up transaction's touched pages stay in
    # memory until its commit instead of spilling to the WAL and being written again.
    conn.execute("PRAGMA cache_size=-262144")
    return Database(conn)


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


@retry(retry=retry_if_exception(_locked), stop=stop_after_delay(30),
       wait=wait_exponential(multiplier=0.01, max=0.5), reraise=True)
def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the views file in WAL mode (the mode stays in the file).

    Processes that open the same views file at the same moment (a worker, a `status`)
    may race for the lock that recovers or converts the file, and SQLite answers
    "database is locked" at once, without waiting out the busy timeout: try again.
    """
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


class ProjectionRunner:
    """Keeps followed projections caught up with the log.

    ``cipher`` is the store's cipher when it has a key: every projection gets it
    (``projection.cipher``) to seal its payload columns, and a views file written
    with another key, or without one, is wiped first (see ``sealing``).
    """

    def __init__(self, db: Database, read_pages: ReadPages, *, cipher: Cipher | None = None) -> None:
        self.db = db
        self._read_pages = read_pages
        self.cipher = ViewCipher(cipher)
        self._index = RunIndex()
        self._refused = RefusedRuns()
        self._projections: dict[str, Projection] = {}
        self.failures: dict[str, ProjectionFailure] = {}
        self._transaction_events = TRANSACTION_EVENTS
        self.wiped = self._match_key()
        with self._transaction():
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {TRACKING} (name TEXT PRIMARY KEY, version INTEGER, position INTEGER)"
            )
        self.add(self._index)
        self.add(self._refused)

    @property
    def transaction_events(self) -> int:
        """The most events a catch-up reads ahead and commits at once (whole pages; at least one)."""
        return self._transaction_events

    @transaction_events.setter
    def transaction_events(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"transaction_events must be >= 1 (got {value})")
        self._transaction_events = value

    @property
    def projections(self) -> dict[str, Projection]:
        """Registered projections by name (the internal run index included)."""
        return dict(self._projections)

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db.conn)

    def _match_key(self) -> bool:
        """Wipe a views file that another key (or none) wrote; True if it was wiped.

        The views are a cache of the log: rebuilt from it, they come out the same.
        The file is vacuumed afterwards, so no page of the old rows is left in it.
        """
        with self._transaction():
            if self.cipher.matches(self.db):
                return False
            tables = [t for t in self.db.table_names() if not t.startswith("sqlite_")]
            for table in tables:
                self.db.execute(f'DROP TABLE IF EXISTS "{table}"')  # IF EXISTS: shadow tables go with theirs
            self.cipher.mark(self.db)
        if tables:
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(tables)

    def add(self, projection: Projection) -> None:
        """Register a projection; a new or changed ``version`` starts it from the beginning."""
        if not projection.name:
            raise ValueError(f"{type(projection).__name__} needs a name")
        if projection.name in self._projections:
            raise ValueError(f"a projection named {projection.name!r} is already added")
        projection.cipher = self.cipher
        with self._transaction():
            row = self.db.execute(f"SELECT version FROM {TRACKING} WHERE name = ?", [projection.name]).fetchone()
            if row is None or row[0] != projection.version:
                projection.reset(self.db)
                self._set_position(projection, 0)
            else:
                projection.setup(self.db)
        self._projections[projection.name] = projection

    def rebuild(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        """Drop a projection's rows and replay the whole log into it; returns events processed."""
        projection = self._projections.get(name)
        if projection is None:
            raise KeyError(f"no projection named {name!r}; known: {', '.join(sorted(self._projections))}")
        with self._transaction():
            projection.reset(self.db)
            self._set_position(projection, 0)
        self.failures.pop(name, None)
        return self.catch_up(progress=progress)

    def positions(self) -> dict[str, int]:
        """Each projection's position in the log."""
        rows = self.db.execute(f"SELECT name, position FROM {TRACKING}").fetchall()
        return {name: pos for name, pos in rows if name in self._projections}

    def catch_up(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Apply every event past each projection's position; returns the events read."""
        self.failures.clear()
        positions = self.positions()
        if not positions:
            return 0
        processed = 0
        pages = self._read_pages(min(positions.values()))
        while True:
            # Read (and decode) a transaction's pages before taking the views' write lock: a slow
            # store never holds up the other processes following this file.
            batch, read_error = _read_batch(pages, self.transaction_events)
            if batch:
                with self._transaction():
                    for page in batch:
                        self._apply(page, self.positions())  # in the transaction: another process may have moved them
                for page in batch:
                    processed += len(page)
                    if progress is not None:
                        progress(len(page))
            if read_error is not None:  # the pages read before it are committed
                raise read_error
            if not batch:
                break
        if self.failures:
            raise ProjectionError(list(self.failures.values()))
        return processed

    def forget_refused(self) -> None:
        """Clear the record of refused runs; the next catch-up finds again those still refused."""
        with self._transaction():
            self._refused.reset(self.db)
            self._set_position(self._refused, 0)

    def refused_runs(self) -> list[RefusedRun]:
        """Runs the views stopped following at an event whose topic is not runjournal's (see refused_runs.py)."""
        return self._refused.all(self.db)

    def _apply(self, page: list[ProjectedEvent], positions: dict[str, int]) -> None:
        enriched = False
        self._refused.refresh(self.db)
        for projection in self._projections.values():  # the run index and the refused runs come first
            if projection.name in self.failures:
                continue
            after = positions[projection.name]
            events = page if page[0].position > after else [e for e in page if e.position > after]
            if not events:
                continue
            if projection is not self._index and projection is not self._refused:
                if not enriched:
                    self._index.enrich(page, self.db)  # once per page: every view sees the same events
                    enriched = True
                followed = self._refused.followed(events)
                if not followed:  # every event here belongs to refused runs: pass over them
                    self._set_position(projection, events[-1].position)
                    continue
                last = self._handle(projection, followed)
                if last == followed[-1].position:  # all applied: the skipped tail is passed too
                    last = events[-1].position
            else:
                last = self._handle(projection, events)
            if last is not None:
                self._set_position(projection, last)

    def _handle(self, projection: Projection, events: list[ProjectedEvent]) -> int | None:
        """Apply events in a savepoint; on failure keep the good prefix. Returns the new position."""
        self.db.execute("SAVEPOINT projection")
        try:
            projection.handle_page(events, self.db)
        except Exception:  # noqa: BLE001 - find the failing event, keep what came before it
            self.db.execute("ROLLBACK TO projection")
            self.db.execute("RELEASE projection")
            return self._handle_one_by_one(projection, events)
        self.db.execute("RELEASE projection")
        return events[-1].position

    def _handle_one_by_one(self, projection: Projection, events: list[ProjectedEvent]) -> int | None:
        last = None
        for event in events:
            self.db.execute("SAVEPOINT one_event")
            try:
                projection.handle_page([event], self.db)
            except Exception as e:  # noqa: BLE001 - reported through ProjectionError
                self.db.execute("ROLLBACK TO one_event")
                self.db.execute("RELEASE one_event")
                self.failures[projection.name] = ProjectionFailure(
                    projection.name, event.position, event.type, f"{type(e).__name__}: {e}"
                )
                return last
            self.db.execute("RELEASE one_event")
            last = event.position
        return last

    def _set_position(self, projection: Projection, position: int) -> None:
        self.db.execute(
            f"INSERT INTO {TRACKING} (name, version, position) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET version = excluded.version, position = excluded.position",
            [projection.name, projection.version, position],
        )

    def close(self) -> None:
        """Close the views connection."""
        self.db.conn.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _read_batch(
    pages: Iterator[list[ProjectedEvent]], events: int,
) -> tuple[list[list[ProjectedEvent]], Exception | None]:
    """The next pages up to ``events`` events in all (at least one page), and the error reading one raised."""
    batch: list[list[ProjectedEvent]] = []
    count = 0
    try:
        while count < events:
            page = next(pages, None)
            if page is None:
                break
            batch.append(page)
            count += len(page)
    except Exception as e:  # noqa: BLE001 - raised by catch_up once the pages before it are committed
        return batch, e
    return batch, None


def chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    """Slices of at most ``size`` (SQLite limits bound parameters)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
