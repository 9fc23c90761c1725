"""Stored topics name runjournal's own classes through a fixed table, never code.

eventsourcing turns a stored topic into a class with ``resolve_topic``, which
imports the module the topic names and walks its attributes. A topic read from
a store file or an export is then code chosen by whoever wrote that file: an
export naming ``tempfile:_TemporaryFileCloser`` deleted a file during an
import, and a topic of ``this`` printed a poem during ``verify``.

Here a topic is only a key in tables built, when this module is imported, from
our own classes. Anything else is refused with ``UnknownTopic`` before any
module is imported or any object is constructed. Three kinds of topics are
stored, each with its own table:

- an event's topic (the event log, exports): ``EVENT_TOPICS``, with the old
  names of renamed classes (``domain.events.OLD_TOPICS``) for upcasting;
- a snapshot's topic (the snapshot table): ``SNAPSHOT_TOPICS``;
- the aggregate's topic, stored inside a ``Created`` event (``originator_topic``)
  and inside a snapshot's state (``topic``), which eventsourcing resolves again
  when it rebuilds a run: ``AGGREGATE_TOPICS``.

``RegistryMapper`` is the store's mapper: eventsourcing's, with the topic looked
up in these tables (and the inner aggregate topic checked) instead of resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.domain import AggregateCreated, DomainEventProtocol
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    find_id_convertor,
)
from eventsourcing.utils import get_topic

from ...domain import StoreError, events
from ...domain.errors import TamperDetected
from ...domain.run import Run

EVENT_TOPICS: Mapping[str, type[Any]] = {
    **{getattr(cls, "TOPIC"): cls for cls in events.EVENT_CLASSES},  # each class sets its own
    **events.OLD_TOPICS,
}
AGGREGATE_TOPICS: Mapping[str, type[Any]] = {Run.TOPIC: Run}
SNAPSHOT_TOPICS: Mapping[str, type[Any]] = {get_topic(Run.Snapshot): Run.Snapshot}
# What the mapper may meet in a stored event or snapshot: events and snapshots (never the aggregate).
STORED_TOPICS: Mapping[str, type[Any]] = {**EVENT_TOPICS, **SNAPSHOT_TOPICS}
# Stored classes that carry the aggregate's topic in their state, and the field holding it.
_INNER_TOPIC_FIELD: Mapping[type[Any], str] = {
    **{cls: "originator_topic" for cls in STORED_TOPICS.values() if issubclass(cls, AggregateCreated)},
    **{cls: "topic" for cls in SNAPSHOT_TOPICS.values()},
}
_KINDS = {
    "event": "an event type",
    "snapshot": "a snapshot type",
    "stored": "an event or snapshot type",
    "aggregate": "the run aggregate",
}
_SHOWN = 80  # characters of a refused topic quoted in the message


class UnknownTopic(TamperDetected):
    """Raised when a stored topic is not one of runjournal's own; nothing it names was loaded.

    A ``TamperDetected``: a run holding such an event or snapshot is refused (workers
    quarantine it). ``topic`` is the topic as found (its ``repr`` when it is not text);
    ``kind`` is what it should have named: ``event``, ``snapshot``, ``stored`` (either)
    or ``aggregate``. ``run_id`` and ``version`` say where it was found when it was in
    a store; ``where`` describes any other place (a file and line, a field).
    """

    code = "unknown_topic"

    def __init__(
        self, topic: object, *, kind: str = "event", run_id: str = "", version: int | None = None, where: str = ""
    ) -> None:
        self.topic = topic if isinstance(topic, str) else repr(topic)
        self.kind = kind
        self.where = where
        shown = repr(topic) if len(repr(topic)) <= _SHOWN else repr(topic)[:_SHOWN] + "..."
        in_field = f" ({where})" if where and run_id else ""
        what = (f"stored topic {shown}{in_field} is not {_KINDS.get(kind, kind)} of runjournal: refused "
                "without loading anything it names (the store or file was edited, or written by other software)")
        if run_id:
            super().__init__(run_id, version, what)
        else:  # not in a run of a store: no run to name, nothing to quarantine
            self.run_id, self.version, self.what = "", version, what
            StoreError.__init__(self, f"{where}: {what}" if where else what)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description, with the refused topic and where it was found."""
        return {**super().to_dict(), "topic": self.topic, "kind": self.kind, "run_id": self.run_id,
                "version": self.version, "where": self.where}


def _lookup(table: Mapping[str, type[Any]], topic: object, kind: str, run_id: str, version: int | None,
            where: str) -> type[Any]:
    found = table.get(topic) if type(topic) is str else None
    if found is None:
        raise UnknownTopic(topic, kind=kind, run_id=run_id, version=version, where=where)
    return found


def resolve(topic: object, *, run_id: str = "", version: int | None = None, where: str = "") -> type[Any]:
    """The event class a stored event topic names; ``UnknownTopic`` for anything else."""
    return _lookup(EVENT_TOPICS, topic, "event", run_id, version, where)


def resolve_snapshot(topic: object, *, run_id: str = "", version: int | None = None, where: str = "") -> type[Any]:
    """The snapshot class a stored snapshot topic names; ``UnknownTopic`` for anything else."""
    return _lookup(SNAPSHOT_TOPICS, topic, "snapshot", run_id, version, where)


def resolve_aggregate(topic: object, *, run_id: str = "", version: int | None = None, where: str = "") -> type[Any]:
    """The aggregate class an inner topic (``originator_topic``, a snapshot's ``topic``) names."""
    return _lookup(AGGREGATE_TOPICS, topic, "aggregate", run_id, version, where)


def resolve_stored(topic: object, *, run_id: str = "", version: int | None = None, where: str = "") -> type[Any]:
    """The class of a stored event or snapshot; ``UnknownTopic`` for anything else."""
    return _lookup(STORED_TOPICS, topic, "stored", run_id, version, where)


def inner_field(cls: type[Any]) -> str | None:
    """The field of a stored class's state that names the aggregate (``None``: it names none)."""
    return _INNER_TOPIC_FIELD.get(cls)


def check_inner(cls: type[Any], state: Mapping[str, Any], *, run_id: str = "", version: int | None = None,
                where: str = "") -> None:
    """Refuse a ``Created`` event or a snapshot whose state names an aggregate other than ours."""
    field = _INNER_TOPIC_FIELD.get(cls)
    if field is not None:
        resolve_aggregate(state.get(field), run_id=run_id, version=version,
                          where=f"{where}, field {field}" if where else f"field {field}")


class RegistryMapper(Mapper[UUID]):
    """eventsourcing's mapper, resolving stored topics only through the registry above.

    ``to_domain_event`` is the library's, step for step (decrypt, decompress,
    decode, upcast, construct), except that the class comes from
    ``STORED_TOPICS`` and an inner aggregate topic is checked before any object
    is built.
    """

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        """The domain event (or snapshot) of a stored one; ``UnknownTopic`` if its topic is not ours."""
        run_id, version = str(stored_event.originator_id), stored_event.originator_version
        cls = resolve_stored(stored_event.topic, run_id=run_id, version=version)
        stored_state = stored_event.state
        try:
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            event_state: dict[str, Any] = self.transcoder.decode(stored_state)
        except Exception as e:
            msg = (
                f"Failed to deserialise state of stored event with topic '{stored_event.topic}', "
                f"originator_id '{stored_event.originator_id}' and "
                f"originator_version {stored_event.originator_version}: {e}"
            )
            raise MapperDeserialisationError(msg) from e
        if type(event_state) is not dict:
            raise MapperDeserialisationError(f"run {run_id} version {version}: stored state is not an object")
        check_inner(cls, event_state, run_id=run_id, version=version)
        # Classes are hashable; the library annotates its cached helper too narrowly.
        id_convertor = find_id_convertor(cls, type(stored_event.originator_id))  # type: ignore[arg-type]
        event_state["originator_id"] = id_convertor(stored_event.originator_id)
        event_state["originator_version"] = stored_event.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", event_state)
        return domain_event  # type: ignore[no-any-return]


__all__ = [
    "AGGREGATE_TOPICS",
    "EVENT_TOPICS",
    "SNAPSHOT_TOPICS",
    "STORED_TOPICS",
    "RegistryMapper",
    "UnknownTopic",
    "check_inner",
    "inner_field",
    "resolve",
    "resolve_aggregate",
    "resolve_snapshot",
    "resolve_stored",
]
