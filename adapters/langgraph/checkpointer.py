"""JournalCheckpointer: LangGraph checkpoints and writes kept in the journal's own store (SQLite or PostgreSQL).

Beside the event tables, in two tables of its own: ``runjournal_lg_checkpoints`` (one row
per checkpoint, its value and metadata as LangGraph's serializer made them, a
``(type, bytes)`` pair stored unchanged) and ``runjournal_lg_writes`` (a task's pending
writes). Every call is one transaction on a connection of its own with the store's
durability (SQLite: WAL, ``synchronous=FULL``; PostgreSQL: the store's database and
schema), so a checkpoint a graph was told is saved survives a crash of the worker. The
async methods run the same code in a thread: LangGraph's ``astream`` calls only those.

Writes follow LangGraph's rules: a task's ordinary writes are kept as first written (a
repeat is ignored), its special ones (error, interrupt, resume, scheduled) replace the
earlier; ``get_tuple`` returns them in ``writes_sort_key`` order.

Each saved checkpoint has a digest (``checkpoint_digest`` of its stored bytes): a run of
a ``langgraph`` agent records it in its log, so ``verify`` proves the checkpoints a run
was continued from are the ones it saved.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)

from .digest import checkpoint_digest

def schema(blob: str) -> tuple[str, ...]:
    """The tables, with ``blob`` as the bytes type (BLOB in SQLite, BYTEA in PostgreSQL)."""
    return (
        "CREATE TABLE IF NOT EXISTS runjournal_lg_checkpoints (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL,"
        " checkpoint_id TEXT NOT NULL, parent_checkpoint_id TEXT, run_id TEXT, checkpoint_type TEXT NOT NULL,"
        f" checkpoint {blob} NOT NULL, metadata_type TEXT NOT NULL, metadata {blob} NOT NULL,"
        " PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id))",
        "CREATE INDEX IF NOT EXISTS runjournal_lg_checkpoints_run ON runjournal_lg_checkpoints (run_id)",
        "CREATE TABLE IF NOT EXISTS runjournal_lg_writes (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL,"
        " checkpoint_id TEXT NOT NULL, task_id TEXT NOT NULL, idx INTEGER NOT NULL, channel TEXT NOT NULL,"
        f" value_type TEXT NOT NULL, value {blob} NOT NULL, task_path TEXT NOT NULL DEFAULT '',"
        " PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx))",
    )


CHECKPOINT_KEY = "thread_id, checkpoint_ns, checkpoint_id"
WRITE_KEY = "thread_id, checkpoint_ns, checkpoint_id, task_id, idx"
CHECKPOINT_COLUMNS = ("parent_checkpoint_id", "run_id", "checkpoint_type", "checkpoint", "metadata_type", "metadata")
WRITE_COLUMNS = ("channel", "value_type", "value", "task_path")


def _upsert(table: str, key: str, columns: Sequence[str], width: int, mark: str, *, replace: bool) -> str:
    """An insert that replaces the row with the same key, or keeps it (the ANSI ``ON CONFLICT`` both stores take)."""
    values = ", ".join(mark for _ in range(width))
    keep = " DO NOTHING" if not replace else " DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns)
    return f"INSERT INTO {table} VALUES ({values}) ON CONFLICT ({key}){keep}"


class JournalCheckpointer(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer whose checkpoints live in a runjournal SQLite store's file."""

    def __init__(self, path: str | None = None, *, serde: Any = None, connection: Any = None,
                 mark: str = "?", blob: str = "BLOB") -> None:
        """On the SQLite file at ``path``, or on an open DB-API ``connection`` (PostgreSQL: ``mark="%s"``)."""
        super().__init__(serde=serde)
        self.path = path
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, str, str], str] = {}  # of the checkpoints this process saved last
        if connection is None:
            assert path is not None
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
        self._db = connection
        self._mark = mark
        self._sql = {
            "put": _upsert("runjournal_lg_checkpoints", CHECKPOINT_KEY, CHECKPOINT_COLUMNS, 9, mark, replace=True),
            "write": _upsert("runjournal_lg_writes", WRITE_KEY, WRITE_COLUMNS, 9, mark, replace=False),
            "special": _upsert("runjournal_lg_writes", WRITE_KEY, WRITE_COLUMNS, 9, mark, replace=True),
        }
        with self._lock, self._transaction() as cursor:
            for statement in schema(blob):
                cursor.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One transaction on the checkpointer's connection: committed whole, or rolled back."""
        cursor = self._db.cursor()
        if isinstance(self._db, sqlite3.Connection):
            cursor.execute("BEGIN")
        try:
            yield cursor
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    def _q(self, sql: str) -> str:
        """A statement written with ``?`` in the connection's placeholder style."""
        return sql if self._mark == "?" else sql.replace("?", self._mark)

    @classmethod
    def of(cls, journal: Any) -> JournalCheckpointer:
        """The checkpointer of a journal on SQLite (its file)."""
        from ..storage.urls import redacted, sqlite_path, store_env

        url = str(journal.url)
        if url.startswith("sqlite:"):
            return cls(str(sqlite_path(url)))
        if url.startswith(("postgresql:", "postgres:")):
            import psycopg

            env = store_env(url)
            extra = json.loads(env.get("POSTGRES_CONNINFO", "{}"))
            connection = psycopg.connect(
                dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
                connect_timeout=env["POSTGRES_CONNECT_TIMEOUT"], **extra)
            if schema_name := env.get("POSTGRES_SCHEMA"):
                connection.execute(f'SET search_path TO "{schema_name}"')
                connection.commit()
            return cls(connection=connection, mark="%s", blob="BYTEA")
        raise ValueError(f"JournalCheckpointer keeps checkpoints in the journal's store; {redacted(url)} keeps "
                         "nothing (use a SQLite or PostgreSQL store)")

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._db.close()

    # -- writing ------------------------------------------------------------------------

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Save a checkpoint (its channel values with it); returns the config naming it."""
        c = config["configurable"]
        thread_id, ns = c["thread_id"], c.get("checkpoint_ns", "")
        meta = get_checkpoint_metadata(config, metadata)
        checkpoint_type, checkpoint_bytes = self.serde.dumps_typed(checkpoint)
        metadata_type, metadata_bytes = self.serde.dumps_typed(meta)
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._sql["put"], (thread_id, ns, checkpoint["id"], c.get("checkpoint_id"),
                                              meta.get("run_id"), checkpoint_type, checkpoint_bytes, metadata_type,
                                              metadata_bytes))
        digests = self._digests
        digests[(thread_id, ns, checkpoint["id"])] = checkpoint_digest(
            checkpoint_type, checkpoint_bytes, metadata_type, metadata_bytes)
        while len(digests) > 256:  # the adapter asks for the one just saved: a few suffice
            digests.pop(next(iter(digests)))
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Save a task's writes: ordinary ones as first written, special ones replacing the earlier."""
        c = config["configurable"]
        key = (c["thread_id"], c.get("checkpoint_ns", ""), c["checkpoint_id"])
        rows = []
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            value_type, value_bytes = self.serde.dumps_typed(value)
            rows.append((idx < 0, (*key, task_id, idx, channel, value_type, value_bytes, task_path)))
        with self._lock, self._transaction() as cursor:
            for special, row in rows:
                cursor.execute(self._sql["special" if special else "write"], row)

    def delete_thread(self, thread_id: str) -> None:
        """Forget every checkpoint and write of a thread."""
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._q("DELETE FROM runjournal_lg_checkpoints WHERE thread_id = ?"), (thread_id,))
            cursor.execute(self._q("DELETE FROM runjournal_lg_writes WHERE thread_id = ?"), (thread_id,))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Forget the checkpoints saved by the given LangGraph runs, and their writes."""
        ids = list(run_ids)
        if not ids:
            return
        marks = ", ".join("?" for _ in ids)
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._q(
                "DELETE FROM runjournal_lg_writes WHERE EXISTS (SELECT 1 FROM runjournal_lg_checkpoints c WHERE"
                " c.thread_id = runjournal_lg_writes.thread_id AND c.checkpoint_ns = runjournal_lg_writes.checkpoint_ns"
                " AND c.checkpoint_id = runjournal_lg_writes.checkpoint_id"
                f" AND c.run_id IN ({marks}))"), ids)
            cursor.execute(self._q(f"DELETE FROM runjournal_lg_checkpoints WHERE run_id IN ({marks})"), ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str, *, up_to: str | None = None) -> None:
        """Copy a thread's checkpoints and writes to another thread (``up_to``: only its chain to that checkpoint).

        With ``up_to`` the writes pending on that checkpoint are left out: the copy stands where
        the source stood when it was saved, and what the source did after it is done again.
        """
        keep = "" if up_to is None else " AND checkpoint_id <= ?"
        pending = "" if up_to is None else " AND checkpoint_id < ?"
        tail = () if up_to is None else (up_to,)
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._q("DELETE FROM runjournal_lg_checkpoints WHERE thread_id = ?"), (target_thread_id,))
            cursor.execute(self._q("DELETE FROM runjournal_lg_writes WHERE thread_id = ?"), (target_thread_id,))
            cursor.execute(self._q(
                "INSERT INTO runjournal_lg_checkpoints SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
                " run_id, checkpoint_type, checkpoint, metadata_type, metadata FROM runjournal_lg_checkpoints"
                f" WHERE thread_id = ?{keep}"), (target_thread_id, source_thread_id, *tail))
            cursor.execute(self._q(
                "INSERT INTO runjournal_lg_writes SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx, channel,"
                f" value_type, value, task_path FROM runjournal_lg_writes WHERE thread_id = ?{pending}"),
                (target_thread_id, source_thread_id, *tail))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each namespace's latest checkpoint of the threads (``"keep_latest"``), or none (``"delete"``)."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r} (known: keep_latest, delete)")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            latest = ("SELECT MAX(l.checkpoint_id) FROM runjournal_lg_checkpoints l WHERE l.thread_id = ?"
                      " AND l.checkpoint_ns = {t}.checkpoint_ns")
            with self._lock, self._transaction() as cursor:
                for table in ("runjournal_lg_writes", "runjournal_lg_checkpoints"):
                    cursor.execute(self._q(f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id <"
                                           f" ({latest.format(t=table)})"), (thread_id, thread_id))

    def digest(self, config: RunnableConfig) -> str | None:
        """The digest of the checkpoint the config names (None when it is not stored)."""
        c = config["configurable"]
        key = (c["thread_id"], c.get("checkpoint_ns", ""), c["checkpoint_id"])
        if (known := self._digests.get(key)) is not None:
            return known
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._q("SELECT checkpoint_type, checkpoint, metadata_type, metadata FROM"
                                   " runjournal_lg_checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
                                   " AND checkpoint_id = ?"), key)
            row = cursor.fetchone()
        return None if row is None else checkpoint_digest(row[0], bytes(row[1]), row[2], bytes(row[3]))

    # -- reading ------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint the config names, else the thread's latest in its namespace."""
        c = config["configurable"]
        thread_id, ns = c["thread_id"], c.get("checkpoint_ns", "")
        wanted = get_checkpoint_id(config)
        sql = ("SELECT * FROM runjournal_lg_checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
               + (" AND checkpoint_id = ?" if wanted else " ORDER BY checkpoint_id DESC LIMIT 1"))
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._q(sql), (thread_id, ns, wanted) if wanted else (thread_id, ns))
            row = cursor.fetchone()
            return self._tuple(cursor, row) if row is not None else None

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,  # noqa: A002
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of a thread (and namespace, and id) when the config says, matching ``filter``."""
        where, params = [], []
        if config is not None:
            c = config["configurable"]
            where.append("thread_id = ?")
            params.append(c["thread_id"])
            if c.get("checkpoint_ns") is not None:
                where.append("checkpoint_ns = ?")
                params.append(c["checkpoint_ns"])
            if checkpoint_id := get_checkpoint_id(config):
                where.append("checkpoint_id = ?")
                params.append(checkpoint_id)
        if before is not None and (before_id := get_checkpoint_id(before)):
            where.append("checkpoint_id < ?")
            params.append(before_id)
        sql = ("SELECT * FROM runjournal_lg_checkpoints" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY checkpoint_id DESC")
        with self._lock, self._transaction() as cursor:
            cursor.execute(self._q(sql), params)
            rows = cursor.fetchall()
            found: list[CheckpointTuple] = []
            for row in rows:
                if limit is not None and len(found) >= limit:
                    break
                metadata = self.serde.loads_typed((row[7], bytes(row[8])))
                if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                    continue
                found.append(self._tuple(cursor, row, metadata))
        yield from found

    def _tuple(self, cursor: Any, row: Sequence[Any], metadata: Any = None) -> CheckpointTuple:
        thread_id, ns, checkpoint_id, parent_id = row[0], row[1], row[2], row[3]
        cursor.execute(self._q(
            "SELECT task_id, idx, channel, value_type, value, task_path FROM runjournal_lg_writes"
            " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"), (thread_id, ns, checkpoint_id))
        writes = cursor.fetchall()
        writes.sort(key=lambda w: writes_sort_key(w[5], w[0], w[1]))
        return CheckpointTuple(
            config={"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}},
            checkpoint=self.serde.loads_typed((row[5], bytes(row[6]))),
            metadata=metadata if metadata is not None else self.serde.loads_typed((row[7], bytes(row[8]))),
            parent_config=({"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent_id}}
                           if parent_id else None),
            pending_writes=[(w[0], w[2], self.serde.loads_typed((w[3], bytes(w[4])))) for w in writes],
        )

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A version that sorts after ``current`` (LangGraph's own scheme: zero-padded counter, random tail)."""
        number = 0 if current is None else current if isinstance(current, int) else int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- async: the same, in a thread --------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,  # noqa: A002
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        for item in await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit))):
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def acopy_thread_up_to(self, source_thread_id: str, target_thread_id: str, checkpoint_id: str) -> None:
        """``copy_thread`` up to one checkpoint (what a fork goes on from), in a thread."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id, up_to=checkpoint_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)
