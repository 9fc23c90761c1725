"""The hash chain that makes a run's history tamper-evident.

Each event's ``chain`` is ``sha256(previous chain + canonical JSON of the event)``
where the JSON holds the event's type, run id, version, timestamp, class version
and every data field. The first event of a run chains from ``GENESIS``. Editing,
dropping or reordering a stored event changes some link; a truncated tail is
caught by comparing heads with an exported anchor or a checkpoint.

The chain is versioned, so stores written before a change of format keep
verifying. An event records the format its link was computed with in its data
field ``chain_format``; an event without that field uses format 1:

- format 1: ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
  (Python's own rules: the store's oldest events);
- format 2 (``CURRENT_FORMAT``, every new event): RFC 8785, the JSON
  Canonicalization Scheme, which any language can reproduce byte for byte.

``link`` reads the format from the data it is given, so a verifier passes the
stored fields exactly as it always did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import rfc8785

GENESIS = "0" * 64
# The data field that names the chain format of an event (absent: format 1).
FORMAT_FIELD = "chain_format"
LEGACY_FORMAT = 1
JCS_FORMAT = 2
CURRENT_FORMAT = JCS_FORMAT
FORMATS = (LEGACY_FORMAT, JCS_FORMAT)
# Fields of a stored event hashed on their own rather than as data.
NON_DATA_FIELDS = frozenset({"chain", "timestamp", "class_version"})


class UnknownChainFormat(ValueError):
    """A stored event names a chain format this version does not know."""


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types, converting what format 1's ``default`` converts."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _plain(_default(value))


def canonical_json(value: Any) -> str:
    """Format 1: JSON with sorted keys and no spaces (equal values give equal text)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def jcs(value: Any) -> bytes:
    """Format 2: the RFC 8785 canonical form of a value, as UTF-8 bytes."""
    if _same_as_sorted_json(value):
        # Without floats, with safe integers and keys below U+D800, RFC 8785 and sorted
        # compact JSON write the same bytes (the same escapes and key order): orjson writes them in C.
        try:
            return orjson.dumps(value, default=_default, option=_SORTED)
        except orjson.JSONEncodeError:  # what orjson refuses (a lone surrogate): fail as format 1 does
            return canonical_json(value).encode("utf-8")
    return rfc8785.dumps(_plain(value))


_SAFE_INTEGER = 2**53 - 1
_CONVERTED = (datetime, UUID)
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME  # datetimes through _default, as format 1
_LISTS = (list, tuple, set, frozenset)


def _same_as_sorted_json(value: Any) -> bool:
    """True when sorted compact JSON of ``value`` is its RFC 8785 text (tested against rfc8785)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                return False
        elif kind is dict:
            for key, inner in item.items():
                if type(key) is not str or (not key.isascii() and max(key) >= "\ud800"):
                    return False
                if type(inner) is not str:
                    pending.append(inner)
        elif kind in _LISTS:
            pending.extend(item)
        elif not isinstance(item, _CONVERTED):  # floats and anything else: RFC 8785's own rules
            return False
    return True


def format_of(data: Mapping[str, Any]) -> int:
    """The chain format an event's data names (1 when it names none)."""
    found = data.get(FORMAT_FIELD, LEGACY_FORMAT)
    if type(found) is not int or found not in FORMATS:
        raise UnknownChainFormat(f"unknown chain format {found!r}")
    return found


def body(
    *,
    event_type: str,
    run_id: str,
    version: int,
    timestamp: datetime,
    class_version: int,
    data: Mapping[str, Any],
) -> bytes:
    """The canonical bytes of one event that its link hashes, in the format its data names."""
    value = {
        "type": event_type,
        "run_id": run_id,
        "version": version,
        "timestamp": timestamp.isoformat(),
        "class_version": class_version,
        "data": {k: v for k, v in data.items() if k not in NON_DATA_FIELDS},
    }
    if format_of(data) == LEGACY_FORMAT:
        return canonical_json(value).encode("utf-8")
    return jcs(value)


def link(
    previous: str,
    *,
    event_type: str,
    run_id: str,
    version: int,
    timestamp: datetime,
    class_version: int,
    data: Mapping[str, Any],
) -> str:
    """The chain value of one event, given the chain of the one before it.

    The canonical form is chosen by ``data[FORMAT_FIELD]`` (see the module doc).
    """
    text = body(
        event_type=event_type, run_id=run_id, version=version, timestamp=timestamp,
        class_version=class_version, data=data,
    )
    return hashlib.sha256(previous.encode("utf-8") + text).hexdigest()


def digest(value: Any) -> str:
    """sha256 of a value's format-1 canonical JSON (used for tool arguments; unchanged)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
