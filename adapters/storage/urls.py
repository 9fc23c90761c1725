"""Store URLs: one table from URL scheme to eventsourcing settings."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

from ...domain import StoreError
from . import permissions

DEFAULT_URL = "sqlite:///.runjournal/journal.db"
ACCEPTED = "memory://, sqlite:///relative/or/absolute/path.db, postgresql://user:password@host:5432/db"
_MODULE = "runjournal.adapters.storage"
MAPPER_KEY = "RUNJOURNAL_MAPPER_TOPIC"  # eventsourcing's MAPPER_TOPIC, for the application named runjournal
MAPPER_TOPIC = f"{_MODULE}.topics:RegistryMapper"


def _memory(_: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": f"{_MODULE}.memory:Factory"}


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL (three slashes: relative; four: absolute)."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path or path.startswith("?"):
        raise StoreError(f"store URL {url!r} names no file; use e.g. {DEFAULT_URL}")
    return Path(unquote(path.split("?", 1)[0]))


def _sqlite(url: str, *, create: bool = True, read_only: bool = False) -> dict[str, str]:
    path = sqlite_path(url)
    lock_wait = parse_qs(urlsplit(url).query).get("lock_wait", ["30"])[0]
    try:
        if float(lock_wait) < 0:
            raise ValueError
    except ValueError:
        raise StoreError(f"store URL {url!r}: lock_wait must be a number of seconds, e.g. ?lock_wait=30") from None
    check_sqlite_file(url, create=create and not read_only, writing=not read_only)
    if create and not read_only:
        mode = permissions.file_mode()
        try:
            permissions.private_folder(path.parent, mode)
        except OSError as e:
            raise StoreError(f"cannot create the folder {path.parent} of store {url!r}: {e.strerror}") from None
        try:
            permissions.private_file(path, mode)  # SQLite gives -wal and -shm the mode of this file
        except OSError as e:
            raise StoreError(f"cannot create store {url!r}: {e.strerror}") from None
    env = {
        "PERSISTENCE_MODULE": f"{_MODULE}.sqlite:Factory",
        "SQLITE_DBNAME": str(path),
        # Many workers share one file: wait for the write lock rather than fail, in
        # short waits (SQLite's busy timeout) retried with jitter up to LOCK_WAIT in all.
        "SQLITE_LOCK_TIMEOUT": str(max(1, min(5, round(float(lock_wait))))),
        "LOCK_WAIT": lock_wait,
    }
    if read_only:
        env.update(SQLITE_DBNAME=read_only_uri(path), CREATE_TABLE="no", READ_ONLY="y", STORE_URL=url, STORE_FILE=str(path))
    return env


def read_only_uri(path: Path) -> str:
    """A SQLite URI opening ``path`` read-only: nothing is written to the file, its schema or its WAL.

    ``mode=ro`` honours other processes' writes (a worker may be appending). SQLite needs the
    ``-shm`` file beside a WAL database for that; when the folder is not writable and no ``-wal``
    exists (so no process is writing), the file is opened ``immutable`` instead, which needs none.
    """
    absolute = path.absolute()
    wal = absolute.with_name(absolute.name + "-wal")
    writable_folder = os.access(absolute.parent, os.W_OK)
    flag = "mode=ro" if writable_folder or wal.exists() else "immutable=1"
    return f"file:{quote(str(absolute))}?{flag}"


_SQLITE_HEADER = b"SQLite format 3\x00"
NEW_STORE_HINT = "check the path, or start a new store with `runjournal init`, then `runjournal run \"hello\"`"


def check_sqlite_file(url: str, *, create: bool, writing: bool = False) -> None:
    """Refuse a ``sqlite:///`` store that is missing (unless ``create``), a folder, unreadable or not SQLite,
    and, when ``writing``, one whose file or folder cannot be written."""
    path = sqlite_path(url)
    try:
        exists = path.exists()
    except OSError as e:  # a folder on the way that may not be searched
        raise StoreError(f"cannot open store {url}: cannot reach {path}: {(e.strerror or str(e)).lower()}") from None
    if not exists:
        if not create:
            raise StoreError(f"store {url} does not exist (no file {path}): {NEW_STORE_HINT}")
        folder = _nearest_existing(path.parent)
        if folder.is_dir() and not os.access(folder, os.W_OK):
            raise StoreError(f"cannot create store {url}: folder {folder} is read-only; choose another path")
        return
    if path.is_dir():
        raise StoreError(f"cannot open store {url}: {path} is a folder, not a SQLite file; check the path")
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise StoreError(f"cannot open store {url}: cannot read {path}: {(e.strerror or str(e)).lower()}") from None
    if header and header != _SQLITE_HEADER:
        raise StoreError(f"cannot open store {url}: {path} is not a SQLite database; check the path")
    if writing:
        _check_writable(url, path)


READ_VERBS_HINT = "(the commands that only read, such as status, history and export, work on it)"


def _check_writable(url: str, path: Path) -> None:
    """A store this command writes to: the file, and its folder (SQLite keeps its -wal and -shm there)."""
    if not os.access(path, os.W_OK):
        raise StoreError(f"cannot write to store {url}: {path} is read-only {READ_VERBS_HINT}")
    folder = path.absolute().parent
    beside = [folder / f"{path.name}-wal", folder / f"{path.name}-shm"]
    if not os.access(folder, os.W_OK) and not all(p.exists() and os.access(p, os.W_OK) for p in beside):
        raise StoreError(f"cannot write to store {url}: its folder {folder} is read-only "
                         f"(SQLite writes {path.name}-wal and -shm beside it) {READ_VERBS_HINT}")


def _nearest_existing(folder: Path) -> Path:
    try:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    except OSError:  # a folder on the way that may not be searched: mkdir says why
        pass
    return folder


def require_store(url: str) -> None:
    """Refuse a store that does not exist yet, for commands that must not create one."""
    if url.split(":", 1)[0].lower() == "sqlite":
        check_sqlite_file(url, create=False, writing=True)


# Query parameters of a PostgreSQL URL that runjournal reads itself; libpq gets every other one.
_OWN_POSTGRES_PARAMETERS = frozenset({"schema"})
# The libpq parameters eventsourcing has no setting of its own for (sslmode, sslrootcert,
# application_name, target_session_attrs, options ...), as JSON: postgres.Factory passes them on.
POSTGRES_CONNINFO = "POSTGRES_CONNINFO_EXTRA"


def _postgres(url: str) -> dict[str, str]:
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError as e:
        raise StoreError(f"cannot open store {redacted(url)}: PostgreSQL support is not installed ({e}); "
                         "install it with: pip install 'runjournal[postgres]'") from None
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    if not parts.path.lstrip("/") or not (parts.hostname or "host" in query):
        raise StoreError(f"store URL {redacted(url)} needs a host and a database: {ACCEPTED}")
    libpq_query = urlencode([(k, v) for k, values in query.items() if k not in _OWN_POSTGRES_PARAMETERS
                             for v in values])
    try:  # libpq's own parser: every parameter it knows passes through, a wrong one is refused here
        params = {k: str(v) for k, v in conninfo_to_dict(urlunsplit(parts._replace(query=libpq_query))).items()}
    except psycopg.ProgrammingError as e:
        raise StoreError(f"store URL {redacted(url)} is not a PostgreSQL URL libpq accepts: {str(e).strip()}") from None
    dbname, host = params.pop("dbname", ""), params.pop("host", "")
    if not host or not dbname:
        raise StoreError(f"store URL {redacted(url)} needs a host and a database: {ACCEPTED}")
    env = {
        "PERSISTENCE_MODULE": f"{_MODULE}.postgres:Factory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": params.pop("port", "5432"),
        "POSTGRES_USER": params.pop("user", "postgres"),
        "POSTGRES_PASSWORD": params.pop("password", ""),
        "POSTGRES_CONNECT_TIMEOUT": params.pop("connect_timeout", "5"),
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_PRE_PING": "y",  # a pooled connection the server dropped is replaced, not handed out
    }
    if params:
        env[POSTGRES_CONNINFO] = json.dumps(params, sort_keys=True)
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env


def redacted(url: str) -> str:
    """``url`` without its credentials (user and password, or a ``password=`` parameter), for messages and logs."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    if "@" in rest.split("/", 1)[0]:
        rest = "***@" + rest.split("@", 1)[1]
    if "password=" in rest:
        head, _, query = rest.partition("?")
        rest = head + "?" + "&".join("password=***" if q.startswith("password=") else q for q in query.split("&"))
    return f"{scheme}://{rest}"


SCHEMES: Mapping[str, Callable[[str], dict[str, str]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def resolve_url(
    url: str | None, environ: Mapping[str, str] | None = None, *, configured: Callable[[], str | None] | None = None
) -> str:
    """The URL to open: the one given, else $RUNJOURNAL_URL, else ``configured()`` (asked only then), else the default.

    The one rule of precedence; ``bootstrap.store_url`` passes the workspace's ``storage.url`` as ``configured``.
    """
    environ = os.environ if environ is None else environ
    return url or environ.get("RUNJOURNAL_URL") or (configured() if configured else None) or DEFAULT_URL


def store_env(
    url: str, environ: Mapping[str, str] | None = None, *, create: bool = True, read_only: bool = False
) -> dict[str, str]:
    """eventsourcing settings for a store URL, plus encryption and compression if asked for.

    ``create=False`` refuses a SQLite store that does not exist yet (and makes no folder);
    ``read_only=True`` implies it and opens the file read-only, without creating tables.
    """
    environ = os.environ if environ is None else environ
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    builder = SCHEMES.get(scheme)
    if builder is None:
        raise StoreError(f"unsupported store URL {url!r}; accepted: {ACCEPTED}")
    env = _sqlite(url, create=create, read_only=read_only) if builder is _sqlite else builder(url)
    # Stored topics resolve through runjournal's registry, never as code (see topics.py). Keyed
    # with the application's name, so only the journal's store reads it, not another eventsourcing
    # application given the same settings.
    env[MAPPER_KEY] = MAPPER_TOPIC
    key = environ.get("RUNJOURNAL_CIPHER_KEY")
    if key:
        env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
        env["CIPHER_KEY"] = key
    if environ.get("RUNJOURNAL_COMPRESS", "").lower() in ("1", "true", "yes", "zlib"):
        env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    return env
