"""Claim reservations on PostgreSQL: session advisory locks on the runs a worker is about to claim.

Workers on one database read the same queue, best runs first, so without this they all
try the same top runs and all but one roll back (with four workers, 1.4 rolled-back
transactions per run). Before a worker loads and claims candidates it takes a
``pg_try_advisory_lock`` on each; a run another worker holds is passed over, so
concurrent workers claim disjoint runs. The locks live on a connection of their own
(autocommit: no transaction is held open), so they never wait on, or hold up, the
worker's saves, which conflict-check as always: a reservation only steers, it
guarantees nothing. Every reservation is released as soon as its claim is saved or
given up (so a claimed run that comes back to the queue, its lease expired, is open
to every worker), and with the session if the worker dies: the server is asked to
probe an idle connection after 10 s, so a machine that vanished loses its
reservations within about 25 s, sooner than a default 30 s lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

# The two-key form keeps these apart from the single-key schema lock. hashtext() may map two runs
# to one key: the second is then passed over while the first is being claimed. Harmless.
_CLASS = 0x52554E51  # "RUNQ"
# A function scan under a filter and a limit: rows are tried in the array's order (best first) and
# the scan stops at the limit, so no more locks are taken than there are runs wanted.
# The key hashes the store's schema with the run id: stores in other schemas of the same database
# (a copy, a test) never hold back each other's runs.
_RESERVE = "SELECT r FROM unnest(%s::text[]) AS r WHERE pg_try_advisory_lock(%s, hashtext(%s || r)) LIMIT %s"
_UNLOCK = "SELECT pg_advisory_unlock(%s, hashtext(%s || r)) FROM unnest(%s::text[]) AS r"
# Server-side keepalives: a dead peer's session (and its locks) ends in ~10 + 3 * 5 s.
_KEEPALIVES = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5", "SET tcp_keepalives_count = 3")


class Reservations:
    """The runs this store's claims hold reserved; one reserving connection, opened on first use."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], namespace: str = "") -> None:
        self._connect = connect
        self._namespace = f"{namespace}:"
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def reserve(self, candidates: Sequence[str], limit: int) -> list[str]:
        """The best ``limit`` candidates no other worker holds, now reserved; all of them if reserving fails."""
        with self._lock:
            mine = [r for r in candidates if r in self._held]
            wanted = limit - len(mine)
            free = [r for r in candidates if r not in self._held]
            try:
                got = set(self._execute(_RESERVE, (free, _CLASS, self._namespace, wanted))) if free and wanted > 0 else set()
                chosen = [r for r in candidates if r in self._held or r in got][:limit]
                extra = [r for r in got if r not in chosen]
                if extra:
                    self._unlock(extra)
            except psycopg.Error:
                # Reservations only steer: without them claims still conflict-check. The save that
                # follows meets the same fault, if it lasts, and reports it.
                self._drop()
                return list(candidates[:limit])
            self._held.update(chosen)
            return chosen

    def release(self) -> None:
        """Release every reservation (the claim they were for is saved, or given up)."""
        with self._lock:
            if not self._held:
                return
            held, self._held = sorted(self._held), set()
            try:
                self._unlock(held)
            except psycopg.Error:
                self._drop()  # a dropped session has released them already

    @property
    def held(self) -> frozenset[str]:
        """The run ids reserved now for the claim under way."""
        return frozenset(self._held)

    def close(self) -> None:
        """Close the reserving connection (its locks go with it)."""
        with self._lock:
            self._drop()

    def _execute(self, statement: str, params: Sequence[Any]) -> list[Any]:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            for setting in _KEEPALIVES:
                conn.execute(setting)
            self._conn = conn
        return [row[0] for row in self._conn.execute(statement, params).fetchall()]

    def _unlock(self, run_ids: Sequence[str]) -> None:
        """Unlock; a lock this session did not hold drops the session (whatever it held goes with it).

        That happens behind a transaction-pooling proxy, which may move the connection to
        another server session between statements: reservations need session pooling.
        """
        if not all(self._execute(_UNLOCK, (_CLASS, self._namespace, list(run_ids)))):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg.Error:
                pass
        self._held.clear()
