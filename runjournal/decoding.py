"""Turn stored notifications into ``ProjectedEvent``s without building domain-event objects.

Projections need an event's fields, not an event object: decoding the stored
state straight into a dict (decrypted, decompressed and upcast exactly as the
mapper would) saves the object construction and the copy of its ``__dict__``.
"""

from __future__ import annotations

import json

import orjson
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import resolve_topic

from .adapters.storage import codec
from .projections import ProjectedEvent

_NOT_DATA = ("timestamp", "chain", "actor", "originator_topic")
RawEvent = tuple[int, str, int, str, bytes]


class EventDecoder:
    """Decodes notifications into projected events, caching topic lookups."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self._mapper = mapper
        self._classes: dict[str, tuple[type, tuple[str, ...]]] = {}

    def fields(self, state: bytes, *, exact: bool = False) -> dict[str, Any]:
        """The stored fields of an event, before upcasting; user data exactly as stored.

        ``exact`` parses with the standard library, which keeps integers beyond
        64 bits (stores older than the payload rule may hold some) at a speed cost.
        """
        if self._mapper.cipher:
            state = self._mapper.cipher.decrypt(state)
        if self._mapper.compressor:
            state = self._mapper.compressor.decompress(state)
        raw_fields: dict[str, Any] = json.loads(state) if exact else orjson.loads(state)
        iso = raw_fields.get("timestamp")
        fields = codec.decode_fields(raw_fields)
        if type(iso) is dict:  # keep the stored text too: every view wants it as text
            fields["_iso"] = iso.get("_data_", "")
        return fields

    def _class(self, topic: str) -> tuple[type, tuple[str, ...]]:
        found = self._classes.get(topic)
        if found is None:
            cls = resolve_topic(topic)
            found = self._classes[topic] = (cls, typed_fields(cls))
        return found

    def decode(self, row: RawEvent) -> ProjectedEvent:
        """One stored event as a projected event."""
        position, run_id, version, topic, state = row
        cls, typed = self._class(topic)
        fields = self.fields(state)
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
