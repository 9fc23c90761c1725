"""The one rule for JSON that users and agents hand the journal (inputs, outputs, steps, edits).

I-JSON (RFC 7493) with limits, checked once at the boundary so that every
value accepted survives every path byte for byte (the store, the hash chain,
export, import, the views, other languages' readers):

- objects with string keys, arrays, strings, finite numbers, true/false/null;
- integers within ±(2**53 - 1), the range every JSON reader keeps exact;
- no NaN or Infinity; strings of valid Unicode (no lone surrogates);
- nesting at most ``MAX_DEPTH`` deep;
- at most ``max_bytes`` of UTF-8 JSON per payload (``DEFAULT_MAX_BYTES``,
  configurable per journal; ``$RUNJOURNAL_MAX_PAYLOAD_BYTES``).

A value outside the rule is refused with ``InvalidInput`` naming the field and
the path inside it. Tuples are taken as arrays; nothing else is converted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import orjson

from ..domain import InvalidInput

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 128
DEFAULT_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PayloadRule:
    """The limits a journal applies to every payload."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = MAX_DEPTH


def max_bytes(given: int | None) -> int:
    """The payload limit: ``given``, else $RUNJOURNAL_MAX_PAYLOAD_BYTES, else 1 MiB; a bad value is refused."""
    raw_value = given if given is not None else os.environ.get("RUNJOURNAL_MAX_PAYLOAD_BYTES")
    if raw_value is None or raw_value == "":
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw_value)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise InvalidInput("max_payload_bytes", f"must be a positive number of bytes (got {raw_value!r})")
    return value


def checked(value: Any, *, field: str, rule: PayloadRule = PayloadRule()) -> Any:
    """``value`` as accepted JSON (tuples as lists), or ``InvalidInput`` naming what breaks the rule."""
    try:
        accepted = _walk(value, field, 0, rule.max_depth)
    except InvalidInput as e:  # the field stays the argument's name; the path inside goes in the message
        where = e.field if len(e.field) <= 80 else f"{e.field[:40]}...{e.field[-30:]}"
        raise InvalidInput(field, e.problem if e.field == field else f"{e.problem} (at {where})") from None
    size = len(orjson.dumps(accepted))
    if size > rule.max_bytes:
        raise InvalidInput(
            field,
            f"payload is {size:,} bytes of JSON, over the limit of {rule.max_bytes:,} "
            "(raise it with max_payload_bytes= or $RUNJOURNAL_MAX_PAYLOAD_BYTES, or store a reference)",
        )
    return accepted


def checked_text(value: str, *, field: str) -> str:
    """A string that encodes as UTF-8 (no lone surrogates), or ``InvalidInput``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInput(field, f"not valid Unicode: lone surrogate at character {e.start}") from None
    return value


def _walk(value: Any, path: str, depth: int, max_depth: int) -> Any:
    # Subclasses (str enums, int enums, ordered dicts) are taken as their JSON base type.
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    if isinstance(value, str):
        return checked_text(str.__str__(value), field=path)
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)
        raise InvalidInput(path, f"integer {value} is outside ±(2**53 - 1); send it as a string")
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        raise InvalidInput(path, f"{value} is not a JSON number (no NaN or Infinity)")
    if isinstance(value, (dict, list, tuple)):
        if depth >= max_depth:
            raise InvalidInput(path, f"nested deeper than {max_depth} levels")
        if isinstance(value, dict):
            return _walk_object(value, path, depth, max_depth)
        return [_walk(item, f"{path}[{i}]", depth + 1, max_depth) for i, item in enumerate(value)]
    kind = type(value).__name__
    raise InvalidInput(path, f"a {kind} is not JSON (use objects, arrays, strings, numbers, booleans, null)")


def _walk_object(value: dict[Any, Any], path: str, depth: int, max_depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidInput(path, f"object key {key!r} is not a string")
        key = checked_text(str.__str__(key), field=f"{path} (a key)")
        out[key] = _walk(item, f"{path}.{key}", depth + 1, max_depth)
    return out
