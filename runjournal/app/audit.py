"""Export and import: the audit trail outside the store.

An export line holds one event exactly as stored (position, run id, version,
topic, type, timestamp, actor, data, chain), so an export imported into an
empty store verifies there. Anchors (the heads to keep beside an export) are
in ``anchors``.

Over 400 lines for now: import (its proof pass and its write pass) moves to a
module of its own in the reshaping step that splits the journal.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Self, Union
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ..adapters.storage import faults, topics
from ..domain import InvalidInput, InvalidTransition, RunState, chain, transitions
from .decoding import EventDecoder, typed_fields
from .journal import Journal

EXPORT_FIELDS = ("position", "run_id", "version", "topic", "type", "timestamp", "actor", "data", "chain")


def export_events(journal: Journal, *, run_id: str | None = None, since: int = 0) -> Iterator[dict[str, Any]]:
    """Every stored event after position ``since`` (of one run, or all), as export records."""
    decoder = EventDecoder(journal._store.mapper, strict=True)
    for page in journal.raw_pages(since):
        for row in page:
            if run_id is not None and row[1] != run_id:
                continue
            cls = topics.resolve(row[3], run_id=str(row[1]), version=row[2], where=f"position {row[0]}")
            fields = decoder.fields(row[4], exact=True)
            fields.pop("_iso", None)
            yield {
                "position": row[0],
                "run_id": row[1],
                "version": row[2],
                "topic": row[3],
                "type": cls.__name__,
                "timestamp": fields.pop("timestamp").isoformat(),
                "actor": fields.pop("actor"),
                "chain": fields.pop("chain"),
                "class_version": fields.pop("class_version", 1),
                "data": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()},
            }


class ImportRefused(InvalidInput):
    """Raised when a line of an import file is refused; nothing was written.

    The message reads ``FILE:LINE: PROBLEM`` (``file`` and ``line`` are attributes too).
    """

    def __init__(self, file: str, line: int, problem: str) -> None:
        self.file = file
        self.line = line
        super().__init__(f"{file}:{line}" if line else file, problem)


@dataclass(frozen=True)
class ImportProof:
    """What a proven import file holds: its events, runs and the digest of its lines as read."""

    events: int
    runs: int
    digest: str


MAX_LINE_CHARS = 64 * 1024 * 1024  # one exported event; payloads are capped far below (payload.py)
_NOT_DATA = frozenset({"timestamp", "actor", "chain", "class_version", "originator_id", "originator_version"})
_OPTIONAL_DATA = frozenset({chain.FORMAT_FIELD})  # stored beside the declared fields by newer events
_BASE_FIELDS = frozenset({"originator_id", "originator_id_type", "originator_version", "timestamp", "actor", "chain"})
Source = Union[str, "os.PathLike[str]", IO[str], Iterable[str]]  # noqa: UP007 - a runtime alias


def import_events(journal: Journal, source: Source, *, batch: int = 1000, name: str | None = None) -> int:
    """Load an export into an empty store: the whole file is proven first, then written in one transaction.

    ``source`` is a path, an open text file or any iterable of lines. The file is
    read line by line, twice (memory stays bounded: per run, only its last version,
    chain head and state are kept): first to prove every line (JSON, topic, chain,
    version order, the transition table, duplicates), then to write. A refused file
    raises ``ImportRefused`` (``FILE:LINE: problem``) and leaves the store as it was;
    a file that changes between the two readings is refused and nothing is written.
    Returns the number of events imported.
    """
    if journal.max_position() != 0:
        raise InvalidInput("store", "import needs an empty store (this one already holds events)")
    with _Lines(source, name) as lines:
        proof = prove_import(lines.read(), name=lines.name)
        if proof.events:
            _write_all(journal, lambda: _stored_batches(journal, lines, proof, batch))
    if proof.events:
        journal.rebuild_index()
    return proof.events


def _digested(lines: Iterable[str], digest: Any) -> Iterator[tuple[int, str]]:
    """(line number, line) of every non-blank line; every line, blank ones too, goes into ``digest``."""
    for n, line in enumerate(lines, start=1):
        digest.update(line.rstrip("\r\n").encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
        if line.strip():
            yield n, line


def prove_import(lines: Iterable[str], *, name: str = "<input>") -> ImportProof:
    """Check every line of an export without writing anything; ``ImportRefused`` names the first bad line.

    Each run is replayed as it goes: versions 1, 2, 3, ... without a gap or a repeat,
    ``Created`` first, every event allowed by the transition table in the state the
    run is in, every chain link recomputed from the line. Positions must increase
    (a repeated or reordered line is refused). Only per-run state is kept.
    """
    runs: dict[str, tuple[int, str, str, int]] = {}  # run -> (version, chain, state, line)
    digest = hashlib.sha256()
    last_position, last_position_line, events = 0, 0, 0
    for n, line in _digested(lines, digest):
        try:
            event = _parse(line)
            position = event.position
            if position <= last_position:
                raise _Refusal(f"position {position} is not after position {last_position} (line "
                               f"{last_position_line}): a repeated or reordered line")
            runs[event.run_id] = _replay(event, runs.get(event.run_id), n)
            last_position, last_position_line = position, n
        except _Refusal as e:
            raise ImportRefused(name, n, str(e)) from None
        events += 1
    return ImportProof(events=events, runs=len(runs), digest=digest.hexdigest())


class _Refusal(Exception):
    """A problem with one line (the caller adds the file and line)."""


@dataclass(frozen=True, slots=True)
class _Line:
    position: int
    run_id: str
    uuid: UUID
    version: int
    topic: str
    cls: type[Any]
    timestamp: datetime
    class_version: int
    fields: dict[str, Any]  # the stored state: data (typed fields as datetimes), actor, timestamp, chain


def _parse(line: str) -> _Line:
    """One line as an event, every field checked, nothing it names loaded; ``_Refusal`` otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise _Refusal(f"not valid JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:
        raise _Refusal("not valid JSON: nested too deeply") from None
    missing = [f for f in EXPORT_FIELDS if f not in record] if type(record) is dict else list(EXPORT_FIELDS)
    if missing:
        raise _Refusal(f"not an exported event (missing {', '.join(missing)})")
    cls = topics.EVENT_TOPICS.get(record["topic"]) if type(record["topic"]) is str else None
    if cls is None:
        raise _Refusal(f"topic {_shown(record['topic'])} is not an event type of runjournal: refused "
                       "without loading anything it names")
    if record["type"] != cls.__name__:
        raise _Refusal(f"type {_shown(record['type'])} does not match its topic {record['topic']} ({cls.__name__})")
    position = _whole(record, "position", 1)
    version = _whole(record, "version", 1)
    class_version = _whole(record, "class_version", 1, default=1)
    current = getattr(cls, "class_version", 1)
    if class_version > current:
        raise _Refusal(f"class_version {class_version} of {cls.__name__} is newer than this runjournal "
                       f"reads ({current}): import it with the release that exported it")
    run_id = record["run_id"]
    try:
        uuid = UUID(run_id) if type(run_id) is str else None
    except ValueError:
        uuid = None
    if uuid is None or str(uuid) != run_id:
        raise _Refusal(f"run_id {_shown(run_id)} is not a run id")
    for key in ("actor", "chain", "timestamp"):
        if type(record[key]) is not str:
            raise _Refusal(f"{key} must be text (got {type(record[key]).__name__})")
    timestamp = _datetime(record["timestamp"], "timestamp")
    fields = _fields(record, cls, class_version, timestamp)
    return _Line(position, run_id, uuid, version, record["topic"], cls, timestamp, class_version, fields)


def _fields(record: dict[str, Any], cls: type[Any], class_version: int, timestamp: datetime) -> dict[str, Any]:
    """The stored state of a line's event: its data checked against its class, typed fields parsed."""
    data = record["data"]
    if type(data) is not dict:
        raise _Refusal(f"data must be an object (got {type(data).__name__})")
    reserved = sorted(_NOT_DATA.intersection(data))
    if reserved:
        raise _Refusal(f"data holds {', '.join(reserved)}, which an event stores outside its data")
    if class_version == getattr(cls, "class_version", 1):
        expected, keys = _data_fields(cls), set(data) - _OPTIONAL_DATA
        if keys != expected:
            gaps = [f"missing {', '.join(sorted(expected - keys))}" if expected - keys else "",
                    f"unexpected {', '.join(sorted(keys - expected))}" if keys - expected else ""]
            raise _Refusal(f"data of {cls.__name__} does not hold its fields ({'; '.join(g for g in gaps if g)})")
    inner = topics.inner_field(cls)
    if inner is not None and (type(data.get(inner)) is not str or data[inner] not in topics.AGGREGATE_TOPICS):
        raise _Refusal(f"data.{inner} {_shown(data.get(inner))} is not the run aggregate of runjournal: "
                       "refused without loading anything it names")
    fields = dict(data)
    for key in typed_fields(cls):
        if type(fields.get(key)) is str:
            fields[key] = _datetime(fields[key], f"data.{key}")
    fields.update(actor=record["actor"], timestamp=timestamp, chain=record["chain"])
    return fields


def _replay(event: _Line, run: tuple[int, str, str, int] | None, n: int) -> tuple[int, str, str, int]:
    """The run's (version, chain, state, line) after ``event``; ``_Refusal`` if it cannot follow."""
    name = event.cls.__name__
    if run is None:
        if event.version != 1 or name != "Created":
            raise _Refusal(f"run {event.run_id} starts at version {event.version} ({name}): an import "
                           "needs every run from its first event (Created, version 1); was it exported "
                           "with --since?")
        previous, state = chain.GENESIS, str(RunState.CREATED)
    else:
        last, previous, state, line = run
        if event.version <= last:
            raise _Refusal(f"run {event.run_id} version {event.version} again: a duplicate (the run "
                           f"reached version {last} on line {line})")
        if event.version != last + 1:
            raise _Refusal(f"run {event.run_id} jumps from version {last} (line {line}) to "
                           f"{event.version}: events are missing")
        try:
            state = str(transitions.check(event.run_id, state, name, event.fields.get("to_state")))
        except InvalidTransition as e:
            raise _Refusal(f"{e} (the transition table refuses it)") from None
        except ValueError:
            raise _Refusal(f"to_state {_shown(event.fields.get('to_state'))} is not a run state") from None
    try:
        expected = chain.link(previous, event_type=name, run_id=event.run_id, version=event.version,
                              timestamp=event.timestamp, class_version=event.class_version, data=event.fields)
    except Exception as e:  # noqa: BLE001 - an unknown chain format, a value the canonical form refuses
        raise _Refusal(f"run {event.run_id} version {event.version}: its chain link cannot be computed "
                       f"({type(e).__name__}: {_clip(str(e))})") from None
    if expected != event.fields["chain"]:
        raise _Refusal(f"run {event.run_id} version {event.version}: chain mismatch (the line was edited, "
                       "or an earlier line of this run was removed or changed)")
    return event.version, expected, state, n


def _whole(record: dict[str, Any], key: str, least: int, *, default: int | None = None) -> int:
    value = record.get(key, default)
    if type(value) is not int or value < least:
        raise _Refusal(f"{key} must be a whole number >= {least} (got {_shown(value)})")
    return value


def _datetime(text: str, key: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Refusal(f"{key} {_shown(text)} is not an ISO date-time") from None
    if value.tzinfo is None:
        raise _Refusal(f"{key} {_shown(text)} has no time zone")
    return value


def _shown(value: object) -> str:
    return _clip(repr(value))


def _clip(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "..."


_FIELDS: dict[type[Any], frozenset[str]] = {}


def _data_fields(cls: type[Any]) -> frozenset[str]:
    """The data fields an event of ``cls`` (at its current class version) stores."""
    found = _FIELDS.get(cls)
    if found is None:
        hints: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            hints.update(inspect.get_annotations(klass))
        found = _FIELDS[cls] = frozenset(hints) - _BASE_FIELDS
    return found


def _stored_batches(journal: Journal, lines: _Lines, proof: ImportProof, size: int) -> Iterator[list[StoredEvent]]:
    """The proven file read again, as stored events in batches; refused if it is not the file proven."""
    mapper = journal._store.mapper
    digest = hashlib.sha256()
    batch: list[StoredEvent] = []
    count = 0
    for n, line in _digested(lines.read(), digest):
        try:
            event = _parse(line)
        except _Refusal as e:
            raise ImportRefused(lines.name, n, f"{e} (the file changed while it was imported)") from None
        state = dict(event.fields)
        if event.class_version > 1:
            state["class_version"] = event.class_version
        stored = mapper.transcoder.encode(state)
        if mapper.compressor:
            stored = mapper.compressor.compress(stored)
        if mapper.cipher:
            stored = mapper.cipher.encrypt(stored)
        batch.append(StoredEvent(originator_id=event.uuid, originator_version=event.version,
                                 topic=event.topic, state=stored))
        count += 1
        if len(batch) >= size:
            yield batch
            batch = []
    if count != proof.events or digest.hexdigest() != proof.digest:
        raise ImportRefused(lines.name, 0, "the file changed while it was imported: nothing was written")
    if batch:
        yield batch


def _write_all(journal: Journal, batches: Callable[[], Iterator[list[StoredEvent]]]) -> None:
    """Append every batch in ONE transaction of the store (all or nothing), into a store still empty."""
    recorder: Any = journal._store.recorder
    refuse = getattr(recorder, "_refuse_if_read_only", None)
    if refuse is not None:
        refuse()
    not_empty = InvalidInput("store", "import needs an empty store (another writer added events meanwhile)")
    if isinstance(recorder, SQLiteApplicationRecorder):

        def attempt() -> None:
            with recorder.datastore.transaction(commit=True) as c:
                c.execute(f"SELECT 1 FROM {recorder.events_table_name} LIMIT 1")
                if c.fetchone():
                    raise not_empty
                for batch in batches():
                    recorder._insert_events(c, batch)

        with journal._faults():
            faults.retry_busy(attempt, lock_wait=getattr(recorder, "lock_wait", faults.DEFAULT_LOCK_WAIT))
    elif hasattr(recorder, "_lock_table") and hasattr(recorder, "_insert_stored_events"):  # PostgreSQL
        from psycopg.sql import SQL, Identifier

        with journal._faults(), recorder.datastore.transaction(commit=True) as curs:
            recorder._lock_table(curs)
            curs.execute(SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)))
            if curs.fetchone():
                raise not_empty
            for batch in batches():
                recorder._insert_stored_events(curs, batch)
    else:  # in memory: nothing durable to be left half written
        for batch in batches():
            recorder.insert_events(batch)


class _Lines:
    """An import source that can be read twice, line by line: a path, a seekable file, else a spool."""

    def __init__(self, source: Source, name: str | None) -> None:
        self._path: str | None = None
        self._file: IO[str] | None = None
        self._spool: IO[str] | None = None
        self._items: Iterable[str] | None = None
        if isinstance(source, (str, os.PathLike)):
            self._path = os.fspath(source)
            self.name = name or self._path
        elif _seekable(source):
            self._file = source  # type: ignore[assignment]
            self._start = self._file.tell()  # type: ignore[union-attr]
            given = getattr(source, "name", None)
            self.name = name or (given if isinstance(given, str) else "<input>")
        else:
            self._items = source
            self.name = name or "<input>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self._spool is not None:
            self._spool.close()

    def read(self) -> Iterator[str]:
        """The lines, from the start, each at most ``MAX_LINE_CHARS`` long."""
        if self._path is not None:
            with open(self._path, encoding="utf-8") as f:
                yield from _bounded(f, self.name)
        elif self._file is not None:
            self._file.seek(self._start)
            yield from _bounded(self._file, self.name)
        elif self._spool is not None:
            self._spool.seek(0)
            yield from _bounded(self._spool, self.name)
        else:  # first reading of a one-shot iterable: keep a copy on disk for the second
            assert self._items is not None
            self._spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n")  # noqa: SIM115
            items, self._items = self._items, None
            for item in items:
                line = item if item.endswith("\n") else item + "\n"
                self._spool.write(line)
                yield line


def _seekable(source: object) -> bool:
    try:
        return bool(source.seekable()) and callable(getattr(source, "readline", None))  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _bounded(f: IO[str], name: str) -> Iterator[str]:
    """The lines of ``f``, refusing one longer than ``MAX_LINE_CHARS`` before it is all in memory."""
    n = 0
    while line := f.readline(MAX_LINE_CHARS + 1):
        n += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise ImportRefused(name, n, f"longer than {MAX_LINE_CHARS} characters: not an exported event")
        yield line


def digest_file(text: str) -> str:
    """sha256 of an export, to note beside it."""
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = [
    "ImportProof",
    "ImportRefused",
    "chain",
    "digest_file",
    "export_events",
    "import_events",
    "prove_import",
]
