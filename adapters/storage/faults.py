"""Store faults: which errors may pass, what to call them, and the one bounded retry for writes.

A store fails in a handful of ways a person can act on: another process
holds the write lock, the disk is full, the disk reports an I/O error, the
file or folder is read-only, the database server went away. ``cause`` names
them in those words; everything else is reported as it came.

Only a busy store is retried here (a lock or a serialization failure leaves
nothing written, so writing the same batch again is safe); the retry waits
with jittered exponential backoff and gives up after ``lock_wait`` seconds.
A full or failing disk is not retried at this level: the worker loop backs
off instead, where a person can also be told.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError, PersistenceError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

T = TypeVar("T")

LOCKED = "locked by another process"
DISK_FULL = "disk full"
IO_ERROR = "I/O error"
READ_ONLY = "read-only"
CONNECTION = "connection to the database server failed"
DEFAULT_LOCK_WAIT = 30.0

# Phrases of SQLite's and PostgreSQL's messages, lower case, mapped to a cause.
_PHRASES: tuple[tuple[str, str], ...] = (
    ("database is locked", LOCKED),
    ("database table is locked", LOCKED),
    ("database schema is locked", LOCKED),
    ("lock timeout", LOCKED),
    ("could not obtain lock", LOCKED),
    ("could not serialize access", LOCKED),
    ("deadlock detected", LOCKED),
    ("disk is full", DISK_FULL),
    ("no space left", DISK_FULL),
    ("disk i/o error", IO_ERROR),
    ("input/output error", IO_ERROR),
    ("readonly database", READ_ONLY),
    ("read-only", READ_ONLY),
    ("unable to open database file", "cannot open the database file"),
    ("server closed the connection", CONNECTION),
    ("connection refused", CONNECTION),
    ("terminating connection", CONNECTION),
    ("connection is closed", CONNECTION),
    ("the connection is lost", CONNECTION),
    ("couldn't get a connection", CONNECTION),
    ("connection failed", CONNECTION),
    ("could not connect", CONNECTION),
    ("consuming input failed", CONNECTION),
)
# Faults that will not pass by themselves (a wrong URL, user, password or database): never
# reported as "unavailable, retry later", so a worker stops at once instead of backing off.
_PERMANENT = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "invalid dsn",
)
_ERRNOS = {errno.ENOSPC: DISK_FULL, errno.EIO: IO_ERROR, errno.EROFS: READ_ONLY, errno.EACCES: READ_ONLY}


def cause(error: BaseException) -> str | None:
    """The cause of a store fault that may pass, in a few words; None when ``error`` is not one, or will not pass."""
    if isinstance(error, IntegrityError):
        return None
    if isinstance(error, OSError) and error.errno in _ERRNOS:
        return _ERRNOS[error.errno]
    if not isinstance(error, (PersistenceError, sqlite3.Error, OSError)) and not _is_psycopg(error):
        return None
    text = " ".join(str(e) for e in causes(error)).lower()
    if any(phrase in text for phrase in _PERMANENT):
        return None
    for phrase, named in _PHRASES:
        if phrase in text:
            return named
    return "the store failed"


def detail(error: BaseException) -> str:
    """The driver's own message, on one line."""
    return " ".join(str(error).split())[:300]


def is_busy(error: BaseException) -> bool:
    """True for a fault that left nothing written and passes by itself: a lock, a serialization failure."""
    return cause(error) == LOCKED


def retry_busy(operation: Callable[[], T], *, lock_wait: float = DEFAULT_LOCK_WAIT) -> T:
    """Run ``operation``, again after a jittered pause while the store is busy, for ``lock_wait`` s at most."""
    retrying = Retrying(
        retry=retry_if_exception(is_busy),
        wait=wait_random_exponential(multiplier=0.02, max=1.0),
        stop=stop_after_delay(lock_wait),
        reraise=True,
    )
    return retrying(operation)


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and what caused it, nearest first."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_psycopg(error: Any) -> bool:
    return type(error).__module__.startswith(("psycopg", "psycopg_pool"))
