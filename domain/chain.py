"""The hash chain that makes a run's history tamper-evident.

Each event's ``chain`` is ``sha256(previous chain + canonical JSON of the event)``
where the JSON holds the event's type, run id, version, timestamp and every data
field. The first event of a run chains from ``GENESIS``. Editing, dropping or
reordering a stored event changes some link; a truncated tail is caught by
comparing heads with an exported anchor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

GENESIS = "0" * 64
# Fields of a stored event hashed on their own rather than as data.
NON_DATA_FIELDS = frozenset({"chain", "timestamp", "class_version"})


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


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
    """The chain value of one event, given the chain of the one before it."""
    body = canonical_json(
        {
            "type": event_type,
            "run_id": run_id,
            "version": version,
            "timestamp": timestamp.isoformat(),
            "class_version": class_version,
            "data": {k: v for k, v in data.items() if k not in NON_DATA_FIELDS},
        }
    )
    return hashlib.sha256((previous + body).encode("utf-8")).hexdigest()


def digest(value: Any) -> str:
    """sha256 of a value's canonical JSON (used for tool arguments)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
