"""Turn stored notifications into ``ProjectedEvent``s without building domain-event objects.

Projections need an event's fields, not an event object: decoding the stored
state straight into a dict (decrypted, decompressed and upcast exactly as the
mapper would) saves the object construction and the copy of its ``__dict__``.
Topics resolve through runjournal's registry (``topics``), never as code, like
the mapper's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from eventsourcing.persistence import Mapper, Notification, StoredEvent

from ..adapters.storage import codec, topics
from ..domain import chain
from ..projections import REFUSED, ProjectedEvent

_NOT_DATA = ("timestamp", "chain", "actor", "originator_topic")
RawEvent = tuple[int, str, int, str, bytes]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def plain_state(mapper: Mapper[Any], state: bytes) -> bytes:
    """Stored bytes as the transcoder wrote them: decrypted, then decompressed, as the mapper does."""
    if mapper.cipher:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor:
        state = mapper.compressor.decompress(state)
    return state


def stored_fields(mapper: Mapper[Any], state: bytes) -> dict[str, Any]:
    """The stored field values of one event or snapshot, before any upcasting (integers kept exact)."""
    return codec.decode(plain_state(mapper, state))


class EventDecoder:
    """Decodes notifications into projected events, caching topic lookups.

    A stored event whose topic (or inner aggregate topic) is not one of ours is
    never resolved. ``strict`` decoders (export) raise ``UnknownTopic``; the
    others (the followed views) pass it on as an event of type ``REFUSED`` with
    no data: the runner refuses its run from there on (projections/refused_runs.py),
    since one forged row must not stop every view, and so every worker; ``verify``
    and the loader report and refuse it.
    """

    def __init__(self, mapper: Mapper[Any], *, strict: bool = False) -> None:
        self._mapper = mapper
        self._strict = strict
        self._classes: dict[str, tuple[type, tuple[str, ...], str | None]] = {}
        self.refused = 0  # events passed on as REFUSED

    def fields(self, state: bytes, *, exact: bool = False) -> dict[str, Any]:
        """The stored fields of an event, before upcasting; user data exactly as stored.

        ``exact`` parses with the standard library, which keeps integers beyond
        64 bits (stores older than the payload rule may hold some) at a speed cost.
        """
        state = plain_state(self._mapper, state)
        raw_fields: dict[str, Any] = json.loads(state) if exact else orjson.loads(state)
        iso = raw_fields.get("timestamp")
        fields = codec.decode_fields(raw_fields)
        if type(iso) is dict:  # keep the stored text too: every view wants it as text
            fields["_iso"] = iso.get("_data_", "")
        return fields

    def _class(self, row: RawEvent) -> tuple[type, tuple[str, ...], str | None]:
        topic = row[3]
        found = self._classes.get(topic) if type(topic) is str else None
        if found is None:
            cls = topics.resolve(topic, run_id=str(row[1]), version=row[2], where=f"position {row[0]}")
            found = self._classes[topic] = (cls, typed_fields(cls), topics.inner_field(cls))
        return found

    def decode(self, row: RawEvent) -> ProjectedEvent:
        """One stored event as a projected event (see the class doc for a topic that is not ours)."""
        try:
            return self._decode(row)
        except topics.UnknownTopic as e:
            if self._strict:
                raise
            return self._refused(row, e)

    def _refused(self, row: RawEvent, error: topics.UnknownTopic) -> ProjectedEvent:
        self.refused += 1
        position, run_id, version, _, state = row
        try:  # when and by whom, if the stored JSON says so (plain JSON: nothing is resolved)
            fields = self.fields(state)
            timestamp = fields["timestamp"] if isinstance(fields.get("timestamp"), datetime) else _EPOCH
            actor = fields["actor"] if isinstance(fields.get("actor"), str) else ""
        except Exception:  # noqa: BLE001 - the row is refused either way
            timestamp, actor = _EPOCH, ""
        return ProjectedEvent(position, run_id, version, REFUSED, timestamp, actor, {},
                              extra={"refused": str(error)})

    def _decode(self, row: RawEvent) -> ProjectedEvent:
        position, run_id, version, _topic, state = row
        cls, _typed, inner = self._class(row)
        fields = self.fields(state)
        if inner is not None:  # a Created event names the aggregate too
            topics.check_inner(cls, fields, run_id=str(run_id), version=version, where=f"position {position}")
        stored_version = fields.pop("class_version", 1)
        current = getattr(cls, "class_version", 1)
        while stored_version < current:
            getattr(cls, f"upcast_v{stored_version}_v{stored_version + 1}")(fields)
            stored_version += 1
        timestamp, actor, iso = fields["timestamp"], fields["actor"], fields.pop("_iso", "")
        for key in _NOT_DATA:
            fields.pop(key, None)
        return ProjectedEvent(position, run_id, version, cls.__name__, timestamp, actor, fields, iso=iso)

    def decode_page(self, page: Sequence[RawEvent]) -> list[ProjectedEvent]:
        """A page of stored events as projected events."""
        return [self.decode(row) for row in page]


def typed_fields(cls: type) -> tuple[str, ...]:
    """The fields of an event class stored as typed values (datetimes); empty means: look at all."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        hints.update(getattr(klass, "__annotations__", {}))
    if not hints:
        return ()
    return tuple(k for k, v in hints.items() if "datetime" in str(v))


def raw(n: Notification) -> RawEvent:
    """A notification as the tuple ``EventDecoder.decode`` takes."""
    return (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)


def decode_stored(mapper: Mapper[Any], n: StoredEvent) -> dict[str, Any]:
    """The stored field values of one event, before any upcasting."""
    return stored_fields(mapper, n.state)


def expected_link(previous: str, n: StoredEvent, fields: dict[str, Any]) -> str:
    """The chain value an untouched event would have."""
    event_class = topics.resolve(n.topic, run_id=str(n.originator_id), version=n.originator_version)
    return chain.link(
        previous,
        event_type=event_class.__name__,
        run_id=str(n.originator_id),
        version=n.originator_version,
        timestamp=fields["timestamp"],
        class_version=fields.get("class_version", 1),
        data=fields,
    )
