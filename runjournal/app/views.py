"""The journal's followed views: the projection runner, its background follower and the view queries.

A component of ``Journal``: it reads the log through the ``read_pages`` it is given and
writes only the views database, never the store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Mapper

from ..adapters.storage import permissions
from ..adapters.storage.urls import redacted, sqlite_path
from ..domain import InvalidInput, RunNotFound
from ..projections import (
    ProjectedEvent,
    Projection,
    ProjectionError,
    ProjectionRunner,
    RefusedRun,
    builtin_projections,
    open_views,
)
from . import queries, run_query
from .decoding import EventDecoder, RawEvent

ReadPages = Callable[[int, int], Iterator[list[RawEvent]]]  # (after position, page size) -> pages


class FollowedViews:
    """Followed projections over one store's log: caught up on demand, or kept up by a follower thread."""

    def __init__(
        self, *, mapper: Mapper[Any], read_pages: ReadPages, views_path: str, appended: threading.Event,
        page_size: int,
    ) -> None:
        self._mapper = mapper
        self._read_pages = read_pages
        self.views_path = views_path
        self._appended = appended  # set by every local save: wakes the follower
        self.page_size = page_size  # events per page (and per views transaction) in catch-up
        self._runner: ProjectionRunner | None = None
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()
        self._views_lock = threading.RLock()  # the follower and the caller share one views connection
        self.follow_error: ProjectionError | None = None

    def close(self) -> None:
        """Stop following and close the views database."""
        self.stop_following()
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    @property
    def runner(self) -> ProjectionRunner:
        """The projection runner (created on first use, with the built-in views)."""
        if self._runner is None:
            if self.views_path != ":memory:":  # private like the store: it holds the views of its runs
                mode = permissions.file_mode()
                permissions.private_folder(Path(self.views_path).parent, mode)
                permissions.private_file(Path(self.views_path), mode)
            # The store's cipher (None without RUNJOURNAL_CIPHER_KEY) seals the views' payload columns too.
            runner = ProjectionRunner(open_views(self.views_path), self._projected_pages, cipher=self._mapper.cipher)
            for projection in builtin_projections():
                runner.add(projection)
            self._runner = runner
        return self._runner

    def _projected_pages(self, start: int) -> Iterator[list[ProjectedEvent]]:
        decoder = EventDecoder(self._mapper)
        for page in self._read_pages(start, self.page_size):
            yield decoder.decode_page(page)

    def add_projection(self, projection: Projection) -> None:
        """Register a followed projection; a new or changed version is built from the start."""
        with self._views_lock:
            self.runner.add(projection)

    def catch_up(self) -> int:
        """Bring every followed view up to the end of the log; returns the events processed."""
        with self._views_lock:
            return self.runner.catch_up()

    def rebuild(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild one followed view from the start of the log; returns the events processed."""
        with self._views_lock:
            if name not in self.runner.projections or name.startswith("_"):
                known = ", ".join(sorted(n for n in self.runner.projections if not n.startswith("_")))
                raise InvalidInput("name", f"no projection named {name!r}; known: {known}")
            return self.runner.rebuild(name, progress=progress)

    def follow(self, *, interval: float = 0.25) -> None:
        """Keep the followed views caught up in a background thread: woken by local appends, else polling."""
        if self._follower is not None:
            return
        self._stop_following.clear()

        def loop() -> None:
            while not self._stop_following.is_set():
                self._appended.wait(interval)
                self._appended.clear()
                if not self._stop_following.is_set():
                    try:
                        self.catch_up()
                        self.follow_error = None
                    except ProjectionError as e:  # the others were applied; retry it on the next wake
                        self.follow_error = e

        self._follower = threading.Thread(target=loop, name="runjournal-follower", daemon=True)
        self._follower.start()

    def stop_following(self) -> None:
        """Stop the background catch-up thread, if any."""
        if self._follower is not None:
            self._stop_following.set()
            self._appended.set()
            self._follower.join()
            self._follower = None

    def _caught_up(self) -> ProjectionRunner:
        """The runner, its views caught up; a failure of an added (not built-in) projection is not raised here."""
        runner = self.runner
        try:
            runner.catch_up()
        except ProjectionError as e:
            builtin = {p.name for p in builtin_projections()}
            if any(f.name in builtin for f in e.failures):
                raise  # the view asked for may be stale: say so
        return runner

    def _view(self, view: str, model: type[Any], sql: str, params: list[Any] | None = None) -> list[Any]:
        """Rows of one built-in view, caught up first; its sealed columns are decrypted."""
        with self._views_lock:
            runner = self._caught_up()
            sealed = getattr(runner.projections[view], "sealed", ())
            return queries.select(runner.db, model, sql, params, cipher=runner.cipher, sealed=sealed)

    def refused_runs(self) -> list[RefusedRun]:
        """Runs the views stopped following at a stored event whose topic is not runjournal's (log order)."""
        with self._views_lock:
            return self._caught_up().refused_runs()

    def runs(self, *, state: str | None = None, agent_id: str | None = None, thread_id: str | None = None) -> list[queries.RunRow]:
        """Runs from the ``runs`` view, oldest first, filtered by any of state, agent and thread."""
        clause, params = queries.where(state=state, agent_id=agent_id, thread_id=thread_id)
        return self._view("runs", queries.RunRow, f"SELECT * FROM runs{clause} ORDER BY created_at, run_id", params)

    def find_runs(self, query: run_query.RunQuery, now: datetime) -> tuple[list[queries.RunRow], int]:
        """(one page of the runs ``query`` finds, oldest first; how many it finds in all)."""
        with self._views_lock:
            runner = self._caught_up()
            sealed = getattr(runner.projections["runs"], "sealed", ())
            in_sql = not (runner.cipher is not None and runner.cipher.enabled and "error" in sealed)
            clause, params = run_query.conditions(query, now, error_in_sql=in_sql)
            order = " ORDER BY created_at, run_id"
            if not in_sql and query.error is not None:  # sealed errors: matched once decrypted
                every = queries.select(runner.db, queries.RunRow, f"SELECT * FROM runs{clause}{order}", params,
                                       cipher=runner.cipher, sealed=sealed)
                found = [r for r in every if run_query.error_matches(query, r.error)]
                return found[query.offset: query.offset + query.limit], len(found)
            total = int(runner.db.conn.execute(*run_query.count_sql(query, clause, params)).fetchone()[0])
            rows = queries.select(runner.db, queries.RunRow, run_query.page_sql(query, clause, total),
                                  [*params, query.limit, query.offset], cipher=runner.cipher, sealed=sealed)
            return rows, total

    def run_row(self, run_id: str) -> queries.RunRow | None:
        """One run's row of the ``runs`` view, if it has one."""
        rows = self._view("runs", queries.RunRow, "SELECT * FROM runs WHERE run_id = ?", [run_id])
        return rows[0] if rows else None

    def children(self, run_ids: Sequence[str]) -> list[queries.RunRow]:
        """Runs whose parent is one of ``run_ids`` (retries and forks), oldest first (indexed)."""
        if not run_ids:
            return []
        marks = ", ".join("?" for _ in run_ids)
        return self._view("runs", queries.RunRow,
                          f"SELECT * FROM runs WHERE parent_run_id IN ({marks}) ORDER BY created_at, run_id", list(run_ids))

    def threads(self, *, limit: int | None = None, offset: int = 0) -> list[queries.ThreadSummary]:
        """Thread summaries, most recently updated first (a page of them with ``limit`` / ``offset``)."""
        page = " LIMIT ? OFFSET ?" if limit is not None or offset else ""
        params = [-1 if limit is None else limit, offset] if page else []
        return self._view("threads", queries.ThreadSummary,
                          f"SELECT * FROM threads ORDER BY updated_at DESC, thread_id{page}", params)

    def count(self, view: str) -> int:
        """The rows of one built-in view, caught up first."""
        with self._views_lock:
            return int(self._caught_up().db.conn.execute(f'SELECT COUNT(*) FROM "{view}"').fetchone()[0])

    def thread(self, thread_id: str) -> queries.ThreadSummary:
        """One thread's summary; ``RunNotFound`` names the thread when it has no runs."""
        rows = self._view("threads", queries.ThreadSummary, "SELECT * FROM threads WHERE thread_id = ?", [thread_id])
        if not rows:
            raise RunNotFound(f"(thread {thread_id})")
        summary: queries.ThreadSummary = rows[0]
        return summary

    def messages(self, thread_id: str) -> list[queries.Message]:
        """A thread's messages in log order."""
        return self._view("messages", queries.Message, "SELECT * FROM messages WHERE thread_id = ? ORDER BY position", [thread_id])

    def approvals(self, *, status: str | None = None) -> list[queries.ApprovalRow]:
        """Approvals, oldest first, optionally by status (pending, approved, rejected, edited, withdrawn)."""
        clause, params = queries.where(status=status)
        return self._view("approvals", queries.ApprovalRow, f"SELECT * FROM approvals{clause} ORDER BY requested_at, approval_id", params)

    def pending_approvals(self) -> list[queries.ApprovalRow]:
        """Approvals waiting for a person."""
        return self.approvals(status="pending")

    def recovery_intents(self) -> list[queries.RecoveryIntent]:
        """What recovery must do for each non-terminal run."""
        return self._view("recovery_intents", queries.RecoveryIntent, "SELECT * FROM recovery_intents ORDER BY updated_at, run_id")


def default_views_path(url: str) -> str:
    """Where the followed views live: beside a SQLite store, in memory for memory://, else a local file."""
    if url.startswith("memory:"):
        return ":memory:"
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        return str(path.with_name(path.stem + ".views.db"))
    safe = "".join(c if c.isalnum() else "-" for c in redacted(url).split("://", 1)[-1]).strip("-")
    return str(Path(".runjournal") / f"{safe}.views.db")


def writable_or_memory(path: str) -> str:
    """``path`` if it can be written (or created), else ``:memory:``: a read-only store's views."""
    if path == ":memory:":
        return path
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    return path if os.access(target, os.W_OK) else ":memory:"
