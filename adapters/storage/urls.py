"""Store URLs: one table from URL scheme to eventsourcing settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ...domain import StoreError

DEFAULT_URL = "sqlite:///.runjournal/journal.db"
ACCEPTED = "memory://, sqlite:///relative/or/absolute/path.db, postgresql://user:password@host:5432/db"
_MODULE = "runjournal.adapters.storage"


def _memory(_: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": f"{_MODULE}.memory:Factory"}


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL (three slashes: relative; four: absolute)."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path or path.startswith("?"):
        raise StoreError(f"store URL {url!r} names no file; use e.g. {DEFAULT_URL}")
    return Path(unquote(path.split("?", 1)[0]))


def _sqlite(url: str) -> dict[str, str]:
    path = sqlite_path(url)
    lock_wait = parse_qs(urlsplit(url).query).get("lock_wait", ["30"])[0]
    try:
        if float(lock_wait) < 0:
            raise ValueError
    except ValueError:
        raise StoreError(f"store URL {url!r}: lock_wait must be a number of seconds, e.g. ?lock_wait=30") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the folder of store {url!r}: {e.strerror}") from None
    return {
        "PERSISTENCE_MODULE": f"{_MODULE}.sqlite:Factory",
        "SQLITE_DBNAME": str(path),
        # Many workers share one file: wait for the write lock rather than fail, in
        # short waits (SQLite's busy timeout) retried with jitter up to LOCK_WAIT in all.
        "SQLITE_LOCK_TIMEOUT": str(max(1, min(5, round(float(lock_wait))))),
        "LOCK_WAIT": lock_wait,
    }


def _postgres(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    dbname = parts.path.lstrip("/")
    if not parts.hostname or not dbname:
        raise StoreError(f"store URL {url!r} needs a host and a database: {ACCEPTED}")
    query = parse_qs(parts.query)
    env = {
        "PERSISTENCE_MODULE": f"{_MODULE}.postgres:Factory",
        "POSTGRES_DBNAME": unquote(dbname),
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", ["5"])[0],
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_PRE_PING": "y",  # a pooled connection the server dropped is replaced, not handed out
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env


SCHEMES: Mapping[str, Callable[[str], dict[str, str]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def resolve_url(url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The URL to open: the one given, else $RUNJOURNAL_URL, else the default file."""
    environ = os.environ if environ is None else environ
    return url or environ.get("RUNJOURNAL_URL") or DEFAULT_URL


def store_env(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """eventsourcing settings for a store URL, plus encryption and compression if asked for."""
    environ = os.environ if environ is None else environ
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    builder = SCHEMES.get(scheme)
    if builder is None:
        raise StoreError(f"unsupported store URL {url!r}; accepted: {ACCEPTED}")
    env = builder(url)
    key = environ.get("RUNJOURNAL_CIPHER_KEY")
    if key:
        env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
        env["CIPHER_KEY"] = key
    if environ.get("RUNJOURNAL_COMPRESS", "").lower() in ("1", "true", "yes", "zlib"):
        env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    return env
