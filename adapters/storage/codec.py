"""The stored form of an event's state: JSON in which no key of user data is ever interpreted.

eventsourcing's JSON transcoder turns ANY object shaped ``{"_type_": X,
"_data_": Y}`` back into a registered type on read, wherever it sits. Inputs,
outputs, tool arguments and tool results come from users, agents and web
pages, so that shape may be data: decoded by the stock transcoder it would
change type (and break the hash chain) or, with an unknown ``X``, make the run
unreadable for ever.

This codec writes the same envelope, but only for the few fields of OUR OWN
that hold typed values (``TYPED_FIELDS``, at the top level of an event and of
a snapshot's state), and on read converts envelopes only there. Everything
else is returned exactly as stored. Old stores read the same way: their user
data was stored as it was given, so it now comes back as it was given.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder

# The only fields of ours whose values are not plain JSON (event timestamps,
# lease expiries; a snapshot's creation and modification times).
_TYPED_KEYS = ("timestamp", "lease_expires_at", "_created_on", "_modified_on")
TYPED_FIELDS = frozenset(_TYPED_KEYS)
SNAPSHOT_STATE = "state"  # a snapshot's aggregate state: typed fields at its top level too
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


class UntypedValue(TypeError):
    """Raised when a value that is not plain JSON sits where only user data may be."""


def _envelope(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"_type_": "datetime_iso", "_data_": value.isoformat()}
    return value


def _unwrap(value: Any) -> Any:
    if type(value) is dict and len(value) == 2:
        kind, data = value.get("_type_"), value.get("_data_")
        if kind == "datetime_iso" and isinstance(data, str):
            return datetime.fromisoformat(data)
    return value


def _refuse(value: Any) -> Any:
    raise UntypedValue(f"{type(value).__name__} is not JSON and is not one of runjournal's typed fields")


def _typed(fields: dict[str, Any], convert: Any, *, copy: bool = True) -> dict[str, Any]:
    # Four lookups: ``TYPED_FIELDS.intersection(fields)`` walks every key of the event instead.
    out = dict(fields) if copy else fields
    for key in _TYPED_KEYS:
        if key in out:
            out[key] = convert(out[key])
    state = out.get(SNAPSHOT_STATE)
    if type(state) is dict:
        out[SNAPSHOT_STATE] = _typed(state, convert, copy=copy)
    return out


def encode(fields: dict[str, Any]) -> bytes:
    """An event's (or snapshot's) state as stored bytes."""
    return orjson.dumps(_typed(fields, _envelope), default=_refuse, option=_OPTIONS)


def decode(data: bytes) -> dict[str, Any]:
    """Stored bytes back to the state that was encoded, user data untouched.

    Parsed with the standard library, which keeps integers of any size exact
    (orjson turns those beyond 64 bits into floats): a store written before the
    payload rule existed may hold some, and its chains were hashed over them.
    """
    fields: dict[str, Any] = json.loads(data)
    return _typed(fields, _unwrap, copy=False)  # a dict just parsed: no one else holds it


def decode_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Parsed stored JSON back to the state that was encoded (for readers that parse it themselves).

    Converts ``fields`` in place and returns it: pass the dict just parsed, not one kept elsewhere.
    """
    return _typed(fields, _unwrap, copy=False)


class RunTranscoder(Transcoder):
    """The store's transcoder: see the module docstring."""

    def encode(self, obj: Any) -> bytes:
        """Encode an event's state."""
        return encode(obj)

    def decode(self, data: bytes) -> Any:
        """Decode an event's state."""
        return decode(data)
