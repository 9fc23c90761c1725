"""The unit of work under the journal: load a run, command it, save it, and say what went wrong.

Every verb of the journal is load -> command -> save (``_execute``). Runs loaded are
kept in a bounded cache (least recently used out first); a save that loses a race
raises ``ConcurrencyConflict`` and drops the cached copy. This module holds the one
map from the library's and the drivers' errors to ours (``store_fault``,
``missing_driver``, ``UNDECODABLE``), and the dispatch of stored events to live
listeners, whose errors are logged and counted, never raised.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import OriginatorVersionError
from eventsourcing.persistence import (
    Notification,
    DatabaseError,
    IntegrityError,
    InterfaceError,
    MapperDeserialisationError,
    OperationalError,
    Transcoder,
)
from eventsourcing.utils import Environment, TopicError

from ..adapters.clock import Clock, SystemClock
from ..adapters.storage import faults
from ..adapters.storage.codec import RunTranscoder
from ..adapters.storage.index import IndexEntry, InlineViews
from ..adapters.storage.urls import redacted
from ..domain import ConcurrencyConflict, Run, RunjournalError, RunNotFound, StoreError, StoreUnavailable
from ..domain.errors import TamperDetected
from . import load_check, logs
from .decoding import RawEvent, raw
from .models import RecordedEvent

# What a stored event that cannot be read as one raises while decoding (never a store fault).
UNDECODABLE = (
    MapperDeserialisationError, OriginatorVersionError, TopicError, ValueError, KeyError, TypeError,
    AttributeError, ImportError,
)
_CACHE_SIZE = 4096
PAGE_SIZE = 1000  # notifications per page when the log is read


_SNAPSHOT_INTERVAL = 50  # events between a run's snapshots


class RunStore(Application[UUID]):
    """The eventsourcing application under the journal; configured only by its URL."""

    name = "runjournal"
    snapshotting_intervals = {Run: _SNAPSHOT_INTERVAL}  # noqa: RUF012 - read by eventsourcing as a class attribute

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Only what the journal passes: a stray RUNJOURNAL_* or PERSISTENCE_MODULE
        # in the shell must not redirect a store.
        return Environment(name, {"IS_SNAPSHOTTING_ENABLED": "y", **(env or {})})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snapshot_proofs = load_check.Proofs()
        self.checked_links = load_check.Links()
        self._saving = threading.local()

    def construct_transcoder(self) -> Transcoder:
        # Never the stock JSON transcoder: it interprets user data shaped like its envelopes.
        return RunTranscoder()

    def save(self, *runs: Any, **kwargs: Any) -> Any:
        """Put the pending events of ``runs`` in one transaction, then take the snapshots they are due.

        What ``Application.save`` does for us, without its per-object Protocol checks
        (only runs are saved here), its aggregate cache (off) or its no-op notify hooks.
        The runs saved are remembered meanwhile, so that a snapshot is taken from them.
        """
        events = [event for run in runs for event in run.collect_events()]
        recordings = self.events.put(events, **kwargs)
        self._saving.runs = {run.id: run for run in runs}
        try:
            for event in events:
                if event.originator_version % _SNAPSHOT_INTERVAL == 0:
                    self.take_snapshot(event.originator_id, version=event.originator_version)
        finally:
            self._saving.runs = {}
        return recordings

    def take_snapshot(self, aggregate_id: Any, version: int | None = None, projector_func: Any = None) -> None:
        """Snapshot a run from verified state only, never from an unproven earlier snapshot.

        The run just saved is ours when it is at that version; otherwise (several events
        saved at once across the interval) the run is loaded at that version, verified.
        """
        run = getattr(self._saving, "runs", {}).get(aggregate_id)
        if run is None or version is None or run.version != version:
            run = load_check.load_run(self, aggregate_id, version=version)
        if run is not None:
            load_check.write_snapshot(self, run)


def default_actor() -> str:
    """$RUNJOURNAL_ACTOR, else the OS user."""
    return os.environ.get("RUNJOURNAL_ACTOR") or _os_user()


@functools.lru_cache(maxsize=1)
def _os_user() -> str:
    """The OS user, asked once per process (a password-database lookup on every submit is not free)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class UnitOfWork:
    """Load, command, save: the one way a run changes, over a ``RunStore``."""

    def __init__(self, store: RunStore, *, url: str, clock: Clock | None = None) -> None:
        self._store = store
        self.url = url
        self.clock: Clock = clock or SystemClock()
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._listeners: list[Callable[[RecordedEvent], None]] = []
        self._appended = threading.Event()
        self._log = logs.logger("runjournal.journal")
        self.listener_errors = 0  # errors raised by subscribe() listeners: logged, counted, never fatal

    @property
    def inline_views(self) -> InlineViews:
        """The inline queue and leases views (read them through the journal's methods)."""
        recorder: Any = self._store.recorder
        return recorder  # type: ignore[no-any-return]

    # -- loading and saving -------------------------------------------------

    def _load(self, run_id: str, *, fresh: bool = False) -> Run:
        if not fresh and run_id in self._runs:
            self._runs.move_to_end(run_id)
            return self._runs[run_id]
        try:
            uuid = UUID(str(run_id))
        except ValueError:
            raise RunNotFound(run_id) from None
        run = self._load_checked(uuid, run_id)
        self._remember(run)
        return run

    def _load_checked(self, uuid: UUID, run_id: str, version: int | None = None) -> Run:
        """The run rebuilt from events whose every chain link checks (see load_check.py)."""
        try:
            with self._faults():
                run = load_check.load_run(self._store, uuid, version=version)
        except TamperDetected:
            self._runs.pop(run_id, None)
            raise
        except UNDECODABLE as e:  # a stored event that no longer decodes: say so, not "not found"
            raise StoreError(f"run {run_id}: a stored event cannot be decoded ({type(e).__name__}); "
                             "run `runjournal verify` to find it") from None
        if run is None:
            raise RunNotFound(run_id)
        return run

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Turn a failure of the store itself (not of our data) into ``StoreUnavailable``."""
        try:
            yield
        except IntegrityError:
            raise
        except (OperationalError, InterfaceError, DatabaseError, OSError, sqlite3.Error) as e:
            raise store_fault(self.url, e) from None

    def _remember(self, run: Run) -> None:
        self._runs[run.run_id] = run
        self._runs.move_to_end(run.run_id)
        while len(self._runs) > _CACHE_SIZE:
            self._runs.popitem(last=False)

    def _save(self, *runs: Run) -> None:
        entries = [IndexEntry.of(r) for r in runs]
        try:
            with self._faults():
                recordings = self._store.save(*runs, index_entries=entries)
        except BaseException as e:
            for r in runs:  # a failed save leaves them advanced with nothing pending: reload next time
                self._runs.pop(r.run_id, None)
            if isinstance(e, IntegrityError):
                raise ConcurrencyConflict(runs[0].run_id if len(runs) == 1 else "(batch)") from None
            raise
        for r in runs:
            self._remember(r)
        self._appended.set()
        if logs.is_enabled(self._log, logging.INFO):
            self._log_recordings(recordings)
        if self._listeners:
            self._notify([recorded(r.domain_event, r.notification.id) for r in recordings])

    def _log_recordings(self, recordings: Sequence[Any]) -> None:
        for recording in recordings:
            event = recording.domain_event
            run = self._runs.get(str(event.originator_id))
            self._log.info(
                "transition", type=type(event).__name__, run_id=str(event.originator_id),
                version=event.originator_version, thread_id=getattr(run, "thread_id", None),
                agent=getattr(run, "agent_id", None), state=getattr(run, "state", None),
                actor=getattr(event, "actor", None), position=recording.notification.id,
            )

    # -- reading the log, in pages ----------------------------------------------

    def notifications(self, start: int = 0, *, page_size: int = PAGE_SIZE) -> Iterator[list[Notification]]:
        """The log after position ``start``, in pages."""
        while True:
            with self._faults():
                page = list(self._store.recorder.select_notifications(start, page_size, inclusive_of_start=False))
            if not page:
                return
            yield page
            start = page[-1].id

    def max_position(self) -> int:
        """The position of the last event in the log (0 when empty)."""
        with self._faults():
            return self._store.recorder.max_notification_id() or 0

    def raw_pages(self, start: int = 0, *, page_size: int = PAGE_SIZE) -> Iterator[list[RawEvent]]:
        """The log after ``start`` as (position, run id, version, topic, state) tuples, in pages."""
        select_raw = getattr(self._store.recorder, "select_raw", None)
        if select_raw is None:  # stores without a raw reader: convert their notifications
            for notifications in self.notifications(start, page_size=page_size):
                yield [raw(n) for n in notifications]
            return
        while True:
            with self._faults():
                page = select_raw(start, page_size)
            if not page:
                return
            yield page
            start = page[-1][0]

    def subscribe(self, callback: Callable[[RecordedEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every event this journal stores (for UIs; never for state)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _notify(self, events: Sequence[RecordedEvent]) -> None:
        """Give stored events to live listeners; a listener's error is logged and counted, never raised."""
        for listener in list(self._listeners):
            for event in events:
                try:
                    listener(event)
                except Exception as e:  # noqa: BLE001 - a live listener (UI) must never undo a stored save
                    self.listener_errors += 1
                    self._log.error(
                        "listener failed", listener=_name_of(listener), event_type=event.type,
                        run_id=event.run_id, version=event.version, error=f"{type(e).__name__}: {e}",
                    )

    def _execute(self, run_id: str, command: Callable[[Run], Any]) -> tuple[Run, Any]:
        """Load, command, save; a conflict on a cached copy is retried once on a fresh one."""
        fresh = run_id not in self._runs
        while True:
            run = self._load(run_id, fresh=fresh)
            try:
                result = command(run)
            except Exception:
                self._runs.pop(run_id, None)  # the command may have left it half-advanced
                raise
            try:
                self._save(run)
            except ConcurrencyConflict:
                if fresh:
                    raise
                fresh = True
                continue
            return run, result

    def _execute_many(
        self, commands: Sequence[tuple[str, Callable[[Run], Any]]], *, fresh: bool = False,
    ) -> list[tuple[Run, Any] | RunjournalError]:
        """Load and command several runs, saved in ONE save; per run, (run, result) or the error refusing it.

        A run its command left unchanged is not saved. On a conflict each run is
        done on its own (``_execute``), so one run changed meanwhile fails no other.
        ``fresh`` loads every run from the store, not the cache. A store outage is raised.
        """
        done: list[tuple[Run, Any] | RunjournalError] = []
        changed: dict[str, Run] = {}
        for run_id, command in commands:
            try:
                run = self._load(run_id, fresh=fresh and run_id not in changed)
                result = command(run)
            except StoreUnavailable:
                for changed_id in changed:  # commanded but never saved: their cached copies are ahead of the log
                    self._runs.pop(changed_id, None)
                raise
            except RunjournalError as e:
                if run_id not in changed:
                    self._runs.pop(run_id, None)  # the command may have left it half-advanced
                done.append(e)
                continue
            done.append((run, result))
            if run.pending_events:
                changed[run_id] = run
        if changed:
            try:
                self._save(*changed.values())
            except ConcurrencyConflict:
                return [self._execute_or_refusal(run_id, command) for run_id, command in commands]
        return done

    def _execute_or_refusal(self, run_id: str, command: Callable[[Run], Any]) -> tuple[Run, Any] | RunjournalError:
        try:
            return self._execute(run_id, command)
        except StoreUnavailable:
            raise
        except RunjournalError as e:
            return e

    def _now(self) -> Any:
        return self.clock.now()


def recorded(event: Any, position: int | None = None) -> RecordedEvent:
    """A stored domain event as a ``RecordedEvent``."""
    skip = {"originator_id", "originator_version", "timestamp", "chain", "actor", "originator_topic"}
    return RecordedEvent(
        run_id=str(event.originator_id),
        version=event.originator_version,
        type=type(event).__name__,
        timestamp=event.timestamp,
        actor=event.actor,
        data={k: v for k, v in vars(event).items() if k not in skip},
        chain=event.chain,
        position=position,
    )


def _name_of(listener: Any) -> str:
    return str(getattr(listener, "__qualname__", None) or type(listener).__qualname__)


def store_fault(url: str, error: BaseException, *, opening: bool = False) -> StoreError:
    """One error naming the store and the cause, for any failure of the store itself."""
    cause = faults.cause(error)
    if cause is None and not opening:
        return StoreError(f"store {redacted(url)} refused: {faults.detail(error)}; check the store URL and its credentials")
    if cause is None or (opening and cause == "the store failed"):
        return StoreError(f"cannot open store {redacted(url)}: {faults.detail(error)}")
    return StoreUnavailable(redacted(url), cause, detail=faults.detail(error), opening=opening)


def missing_driver(url: str, error: BaseException) -> StoreError:
    """The store's driver is not installed (PostgreSQL without the ``postgres`` extra), in one line."""
    missing = next((e for e in faults.causes(error) if isinstance(e, ImportError)), None)
    if missing is not None and url.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        return StoreError(f"cannot open store {redacted(url)}: PostgreSQL support is not installed "
                          f"({missing}); install it with: pip install 'runjournal[postgres]'")
    return StoreError(f"cannot open store {redacted(url)}: {faults.detail(missing or error)}")
