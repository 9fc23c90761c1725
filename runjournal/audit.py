"""Export, import and anchors: the audit trail outside the store.

An export line holds one event exactly as stored (position, run id, version,
topic, type, timestamp, actor, data, chain), so an export imported into an
empty store verifies there. Anchors are the head chain of every run and of
the whole log at one moment; kept elsewhere, they reveal a truncated tail,
which no chain can (a removed last event leaves no broken link).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import resolve_topic

from .decoding import EventDecoder, typed_fields
from .domain import InvalidInput, chain
from .journal import Journal

EXPORT_FIELDS = ("position", "run_id", "version", "topic", "type", "timestamp", "actor", "data", "chain")


def export_events(journal: Journal, *, run_id: str | None = None, since: int = 0) -> Iterator[dict[str, Any]]:
    """Every stored event after position ``since`` (of one run, or all), as export records."""
    decoder = EventDecoder(journal._store.mapper)  # noqa: SLF001 - the audit layer reads the store as stored
    for page in journal.raw_pages(since):
        for row in page:
            if run_id is not None and row[1] != run_id:
                continue
            fields = decoder.fields(row[4], exact=True)
            fields.pop("_iso", None)
            cls = resolve_topic(row[3])
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


def anchors(journal: Journal) -> dict[str, Any]:
    """The head of every run and of the whole log, to keep outside the store."""
    report = journal.verify()
    return {"events": report.events_checked, "log_head": report.log_head, "runs": report.heads,
            "versions": report.versions}


def check_anchors(journal: Journal, anchor: dict[str, Any]) -> list[str]:
    """Problems found comparing the store with anchors taken earlier (empty: consistent)."""
    report = journal.verify(at_versions=anchor.get("versions", {}), log_head_at=int(anchor.get("events", 0)))
    problems = [f"run {p.run_id} version {p.version}: {p.problem}" for p in report.problems]
    for run_id, head in anchor.get("runs", {}).items():
        version = anchor.get("versions", {}).get(run_id)
        seen = report.anchored.get(run_id)
        if seen is None:
            problems.append(f"run {run_id}: missing or truncated before version {version} (anchored)")
        elif seen != head:
            problems.append(f"run {run_id} version {version}: head differs from the anchor")
    if report.events_checked < int(anchor.get("events", 0)):
        problems.append(f"log truncated: {report.events_checked} events, the anchor saw {anchor['events']}")
    elif report.log_head_at and report.log_head_at != anchor.get("log_head"):
        problems.append("log head differs from the anchor: events were removed, added or reordered before it")
    return problems


def import_events(journal: Journal, lines: Iterable[str], *, batch: int = 1000) -> int:
    """Load an export into an empty store; every line is checked before anything is written."""
    if journal.max_position() != 0:
        raise InvalidInput("store", "import needs an empty store (this one already holds events)")
    mapper = journal._store.mapper  # noqa: SLF001
    stored = [mapper.to_stored_event(_event(record, n)) for n, record in _records(lines)]
    for i in range(0, len(stored), batch):
        journal._store.recorder.insert_events(stored[i : i + batch])  # noqa: SLF001
    journal.rebuild_index()
    return len(stored)


def _records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"line {n}", f"not valid JSON: {e.msg} (column {e.colno})") from None
        missing = [f for f in EXPORT_FIELDS if f not in record] if isinstance(record, dict) else list(EXPORT_FIELDS)
        if missing:
            raise InvalidInput(f"line {n}", f"not an exported event (missing {', '.join(missing)})")
        yield n, record


def _event(record: dict[str, Any], n: int) -> Any:
    try:
        cls = resolve_topic(record["topic"])
        data = dict(record["data"])
        for name in typed_fields(cls):
            if name in data and isinstance(data[name], str):
                data[name] = datetime.fromisoformat(data[name])
        fields = {**data, "actor": record["actor"], "timestamp": datetime.fromisoformat(record["timestamp"]),
                  "chain": record["chain"],
                  "originator_id": UUID(record["run_id"]), "originator_version": int(record["version"])}
    except Exception as e:  # noqa: BLE001 - any malformed record is reported with its line
        raise InvalidInput(f"line {n}", f"cannot be read as an event ({type(e).__name__}: {e})") from None
    event = object.__new__(cls)
    object.__setattr__(event, "__dict__", fields)
    return event


def digest_file(text: str) -> str:
    """sha256 of an export, to note beside it."""
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["anchors", "check_anchors", "chain", "digest_file", "export_events", "import_events"]
