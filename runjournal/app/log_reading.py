"""What one pass over the log read, tallied so that rows beside the log can be checked against it.

Verify, export and the inline-views check each read the log once; a ``LogReading``
keeps per run its row count, a digest of its bytes, its first position and last topic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, NamedTuple


class LogReading:
    """What one pass over the log read: per run its rows and a digest of their bytes, and the last position."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[int, bytes]] = {}
        self.first: dict[str, int] = {}  # run -> the position of its first event
        self.last_topic: dict[str, str] = {}  # run -> the topic of its last event
        self.events = 0
        self.last = 0
        self.error: Exception | None = None  # the log could not be read to its end

    def add(self, run_id: str, position: int, state: bytes, topic: str = "") -> None:
        count, digest = self.runs.get(run_id, (0, b""))
        self.runs[run_id] = (count + 1, fold(digest, state))
        self.first.setdefault(run_id, position)
        self.last_topic[run_id] = topic
        self.events += 1
        self.last = max(self.last, position)

    def pages(self, pages: Iterator[list[Any]]) -> Iterator[list[Any]]:
        """The log's rows, as export and the views read them, until the store fails (the failure is kept)."""
        try:
            for page in pages:
                yield [StoredRow(*row) for row in page]
        except Exception as e:  # noqa: BLE001 - reported with what was read; raised by the store only
            self.error = e


class StoredRow(NamedTuple):
    """One row of the log as read (a raw page row), with a notification's attribute names."""

    id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


def fold(digest: bytes, state: bytes) -> bytes:
    """``digest`` extended by one row's bytes: the same rows in the same order give the same digest."""
    h = hashlib.blake2b(digest, digest_size=16)
    h.update(state)
    return h.digest()
