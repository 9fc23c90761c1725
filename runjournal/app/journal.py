"""The journal: runs on an append-only event log, as its public verbs.

Every verb is load -> command -> save through the unit of work it is built on
(``unit_of_work.py``: the cache, the save, the one map from library errors to ours).
A command the domain refuses raises before anything is saved.

The verbs are built up in layers, each one module and one concern, each on the one
before: ``unit_of_work.py`` (load, save, cache, errors) <- ``quarantine.py`` (runs whose
events fail their check) <- ``claims.py`` (claims, leases) <- ``commands.py`` (steps,
approvals, outcomes, cancel) <- ``submissions.py`` <- this facade, which adds opening,
reading, the followed views (the ``views`` component) and verify (``verification.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import InfrastructureFactoryError, PersistenceError

from ..adapters.storage.urls import redacted as _redact
from ..adapters.storage.urls import resolve_url, store_env
from ..domain import InvalidInput, RunNotFound, StoreError
from . import load_check
from .decoding import EventDecoder
from .models import RecordedEvent, RunSnapshot, validate
from .payload import PayloadRule, max_bytes
from .submissions import Submissions
from .unit_of_work import UNDECODABLE, RunStore, default_actor, missing_driver, recorded, store_fault
from .views import FollowedViews, default_views_path, writable_or_memory

if TYPE_CHECKING:  # annotations only; verification is imported by verify()
    from ..adapters.clock import Clock
    from ..adapters.storage.index import LeaseRow, QueueRow
    from ..projections import Projection, ProjectionError, ProjectionRunner, RefusedRun
    from .lineage import LineageNode
    from .models import VerifyReport
    from .queries import ApprovalRow, Message, RunPage, RunRow, ThreadSummary

CATCH_UP_PAGE_SIZE = 5000  # bigger pages fold more events into each row write; memory stays bounded
AMBIGUOUS_SHOWN = 5  # candidates named when a run id prefix matches several runs


class Journal(Submissions):
    """Runs on an append-only event log: submit, claim, drive, inspect, verify."""

    def __init__(
        self,
        store: RunStore,
        *,
        url: str,
        clock: Clock | None = None,
        views_path: str | None = None,
        payload_rule: PayloadRule | None = None,
    ) -> None:
        super().__init__(store, url=url, clock=clock)
        self.views = FollowedViews(
            mapper=store.mapper, read_pages=lambda start, size: self.raw_pages(start, page_size=size),
            views_path=views_path or default_views_path(url), appended=self._appended, page_size=CATCH_UP_PAGE_SIZE,
        )
        self.payload_rule = payload_rule or PayloadRule()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        views_path: str | None = None,
        max_payload_bytes: int | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> Journal:
        """Open (creating if needed) the store at ``url``, $RUNJOURNAL_URL or the default file.

        ``max_payload_bytes`` caps each input, output, step, tool argument set and
        edit (default $RUNJOURNAL_MAX_PAYLOAD_BYTES, else 1 MiB; see payload.py).
        ``create=False`` refuses a store that does not exist yet (a mistyped path) instead
        of creating an empty one. ``read_only=True`` implies it and opens a SQLite store
        read-only: no file, folder, table or WAL checkpoint is written, any save is refused,
        and the followed views live in memory when their file beside the store cannot be written.
        """
        url = resolve_url(url)
        rule = PayloadRule(max_bytes=max_bytes(max_payload_bytes))
        try:
            store = RunStore(env=store_env(url, create=create, read_only=read_only))
        except StoreError:
            raise
        except InfrastructureFactoryError as e:  # the persistence module did not import
            raise missing_driver(url, e) from None
        except (PersistenceError, OSError, sqlite3.Error) as e:
            raise store_fault(url, e, opening=True) from None
        if read_only and views_path is None:
            views_path = writable_or_memory(default_views_path(url))
        journal = cls(store, url=url, clock=clock, views_path=views_path, payload_rule=rule)
        journal._check_readable()
        if not read_only:
            journal._label_queue()
        return journal

    def _check_readable(self) -> None:
        """Decode the first stored event: a wrong or missing cipher key fails here, clearly."""
        try:
            first = next(self.raw_pages(0, page_size=1), [])
            if first:
                EventDecoder(self._store.mapper).decode(first[0])
        except StoreError:
            self._store.close()
            raise
        except UNDECODABLE as e:
            encrypted = "CIPHER_KEY" in self._store.env
            hint = ("the RUNJOURNAL_CIPHER_KEY is wrong" if encrypted
                    else "the store may be encrypted or compressed: set RUNJOURNAL_CIPHER_KEY and "
                    "RUNJOURNAL_COMPRESS as when it was written")
            self._store.close()
            raise StoreError(
                f"cannot read the events of store {_redact(self.url)}: {hint} ({type(e).__name__})"
            ) from None

    def close(self) -> None:
        """Stop following, release the store's and the views' connections."""
        self.views.close()
        self._store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- followed views (views.py) --------------------------------------------------

    @property
    def runner(self) -> ProjectionRunner:
        """The projection runner (created on first use, with the built-in views)."""
        return self.views.runner

    @property
    def views_path(self) -> str:
        """The views database file (``:memory:`` for an in-process store)."""
        return self.views.views_path

    @property
    def page_size(self) -> int:
        """Events per page (and per views transaction) in catch-up."""
        return self.views.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        self.views.page_size = value

    @property
    def follow_error(self) -> ProjectionError | None:
        """The error of the follower's last catch-up, if it failed (it retries on the next wake)."""
        return self.views.follow_error

    def add_projection(self, projection: Projection) -> None:
        """Register a followed projection; a new or changed version is built from the start."""
        self.views.add_projection(projection)

    def catch_up(self) -> int:
        """Bring every followed view up to the end of the log; returns the events processed."""
        return self.views.catch_up()

    def rebuild(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild one followed view from the start of the log; returns the events processed."""
        return self.views.rebuild(name, progress=progress)

    def follow(self, *, interval: float = 0.25) -> None:
        """Keep the followed views caught up in a background thread: woken by local appends, else polling."""
        self.views.follow(interval=interval)

    def stop_following(self) -> None:
        """Stop the background catch-up thread, if any."""
        self.views.stop_following()

    def refused_runs(self) -> list[RefusedRun]:
        """Runs the views stopped following at a stored event whose topic is not runjournal's (log order)."""
        return self.views.refused_runs()

    def runs(
        self, *, state: str | None = None, agent_id: str | None = None, thread_id: str | None = None
    ) -> list[RunRow]:
        """Runs from the ``runs`` view, oldest first, filtered by any of state, agent and thread."""
        return self.views.runs(state=state, agent_id=agent_id, thread_id=thread_id)

    def find_runs(
        self, *, state: str | None = None, agent_id: str | None = None, thread_id: str | None = None,
        tool: str | None = None, approved_by: str | None = None, decision: str | None = None, error: str | None = None,
        waiting_longer: timedelta | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int = 100, offset: int = 0,
    ) -> RunPage:
        """Runs by what happened in them, oldest first, one page: every filter given must hold.

        ``tool``: called that tool; ``approved_by``: an approval approved (or edited) by that
        actor; ``decision``: an approval decided so; ``error``: its error holds that text (case
        ignored); ``waiting_longer``: waiting for approval for longer; ``since`` / ``until``:
        created in ``[since, until)``. Indexed views answer (see run_query.py).
        """
        from .queries import RunPage
        from .run_query import RunQuery

        query = validate(RunQuery, state=state, agent_id=agent_id, thread_id=thread_id, tool=tool,
                         approved_by=approved_by, decision=decision, error=error, waiting_longer=waiting_longer,
                         since=since, until=until, limit=limit, offset=offset)
        rows, total = self.views.find_runs(query, self._now())
        return RunPage(runs=rows, total=total, limit=query.limit, offset=query.offset)

    def lineage(self, run_id: str) -> LineageNode:
        """The tree of retries and forks ``run_id`` belongs to, from its first ancestor down."""
        from .lineage import lineage_of

        self.get_run(run_id)  # an unknown run is RunNotFound, not an empty tree
        try:
            return lineage_of(run_id, row=self.views.run_row, children=self.views.children)
        except LookupError:
            raise RunNotFound(run_id) from None

    def threads(self, *, limit: int | None = None, offset: int = 0) -> list[ThreadSummary]:
        """Thread summaries, most recently updated first: all of them, or a page (``limit`` from ``offset``)."""
        if (limit is not None and limit < 1) or offset < 0:
            raise InvalidInput("limit" if limit is not None and limit < 1 else "offset",
                               f"a page needs limit >= 1 and offset >= 0 (got limit {limit}, offset {offset})")
        return self.views.threads(limit=limit, offset=offset)

    def thread_count(self) -> int:
        """How many threads the views know."""
        return self.views.count("threads")

    def thread(self, thread_id: str) -> ThreadSummary:
        """One thread's summary; ``RunNotFound`` names the thread when it has no runs."""
        return self.views.thread(thread_id)

    def messages(self, thread_id: str) -> list[Message]:
        """A thread's messages in log order."""
        return self.views.messages(thread_id)

    def approvals(self, *, status: str | None = None) -> list[ApprovalRow]:
        """Approvals, oldest first, optionally by status (pending, approved, rejected, edited, withdrawn)."""
        return self.views.approvals(status=status)

    def pending_approvals(self) -> list[ApprovalRow]:
        """Approvals waiting for a person."""
        return self.views.pending_approvals()

    # -- reading -----------------------------------------------------------------

    def resolve_run_id(self, text: str) -> str:
        """The full id of the one run whose id starts with ``text`` (dashes and case ignored).

        ``RunNotFound`` when none does; ``InvalidInput`` listing the candidates when several do.
        """
        digits = str(text).strip().lower().replace("-", "")
        if not digits or len(digits) > 32 or digits.strip("0123456789abcdef"):
            raise RunNotFound(text)
        if len(digits) == 32:
            return str(UUID(digits))
        with self._faults():
            found = self.inline_views.run_ids_starting(digits, AMBIGUOUS_SHOWN + 1)
        if not found:
            raise RunNotFound(text)
        if len(found) > 1:
            listed = ", ".join(found[:AMBIGUOUS_SHOWN]) + (", ..." if len(found) > AMBIGUOUS_SHOWN else "")
            raise InvalidInput("run id", f"{text} is the start of several runs ({listed}); give more of it")
        return found[0]

    def get_run(self, run_id: str, *, at_version: int | None = None) -> RunSnapshot:
        """The run now, or as it was after its ``at_version``-th event."""
        if at_version is None:
            return RunSnapshot.of(self._load(run_id, fresh=True))
        try:
            uuid = UUID(str(run_id))
        except ValueError:
            raise RunNotFound(run_id) from None
        # Only the events up to ``at_version`` are read (and checked): a run broken later still shows its past.
        past = self._load(run_id, fresh=True) if at_version < 1 else self._load_checked(uuid, run_id, version=at_version)
        if not 1 <= at_version <= past.version:
            raise InvalidInput("at_version", f"run {run_id} has versions 1..{past.version} (got {at_version})")
        return RunSnapshot.of(past)

    def fork(
        self, run_id: str, *, at_version: int, input: Any = None, edits: Any = None,  # noqa: A002
        actor: str | None = None, thread_id: str | None = None,
    ) -> RunSnapshot:
        """A new run from ``run_id`` as it was at ``at_version``, its input kept, replaced or edited.

        ``edits`` is a JSON merge patch (RFC 7386) of the parent's input. The new run is queued
        on a new thread unless ``thread_id``; its agent is served the parent's recorded tool
        and model outputs up to the fork (see forks.py) and runs live from there.
        """
        from .forks import fork_request

        parent = self.get_run(run_id, at_version=at_version)
        return self.submit(**fork_request(parent, at_version, input=input, edits=edits), actor=actor,
                           thread_id=thread_id)

    def history(self, run_id: str) -> list[RecordedEvent]:
        """Every event of a run, in order."""
        try:
            uuid = UUID(str(run_id))
        except ValueError:
            raise RunNotFound(run_id) from None
        try:
            with self._faults():
                events = load_check.checked_events(self._store, uuid)
        except UNDECODABLE as e:  # see _load
            raise StoreError(f"run {run_id}: a stored event cannot be decoded ({type(e).__name__}); "
                             "run `runjournal verify` to find it") from None
        if not events:
            raise RunNotFound(run_id)
        return [recorded(e) for e in events]

    def queue(self) -> list[QueueRow]:
        """Claimable runs in claim order: priority first, then log position."""
        with self._faults():
            rows = self.inline_views.queue_rows()
        held = self.quarantined_ids() if rows else set()
        return [r for r in rows if r.run_id not in held]

    def states_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of these live runs, from the inline queue (terminal runs are left out)."""
        with self._faults():
            return self.inline_views.states_of(list(run_ids))

    def leases(self) -> list[LeaseRow]:
        """Every current lease."""
        with self._faults():
            return self.inline_views.lease_rows()

    # -- audit ------------------------------------------------------------------------

    def verify(
        self,
        *,
        deep: bool = False,
        progress: Callable[[int], None] | None = None,
        at_versions: dict[str, int] | None = None,
        log_head_at: int = 0,
    ) -> VerifyReport:
        """Check the file, every chain, the rows beside the log, each run as loaded and each snapshot.

        ``deep`` runs SQLite's full ``integrity_check`` instead of ``quick_check``. See verification.py.
        """
        from .verification import verify_store

        return verify_store(self, deep=deep, progress=progress, at_versions=at_versions, log_head_at=log_head_at)

    # -- recovery ---------------------------------------------------------------------

    def recovery_intents(self) -> list[Any]:
        """What recovery must do for each non-terminal run, quarantined runs left out."""
        intents = self.views.recovery_intents()
        held = self.quarantined_ids() if intents else set()
        return [i for i in intents if i.run_id not in held]

__all__: Sequence[str] = ("Journal", "default_actor", "recorded")
