"""Claim reservations on PostgreSQL: session advisory locks on the runs a worker is about to claim.

Workers on one database read the same queue, best runs first, so without this they all
try the same top runs and all but one roll back (with four workers, 1.4 rolled-back
transactions per run). Before a worker loads and claims candidates it takes a
``pg_try_advisory_lock`` on each; a run another worker holds is passed over, so
concurrent workers claim disjoint runs. The locks live on a connection of their own
(autocommit: no transaction is held open), so they never wait on, or hold up, the
worker's saves, which conflict-check as always: a reservation only steers, it
guarantees nothing. A reservation that did not become a claim is released as soon as
the claim is saved or given up; one that did, with the worker's next claim; all of
them with the session if the worker dies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

import psycopg

# The two-key form keeps these apart from the single-key schema lock. hashtext() may map two runs
# to one key: the second is then passed over until the first's claim is saved. Harmless.
_CLASS = 0x52554E51  # "RUNQ"
# A function scan under a filter and a limit: rows are tried in the array's order (best first) and
# the scan stops at the limit, so no more locks are taken than there are runs wanted.
_RESERVE = ("SELECT r FROM unnest(%s::text[]) AS r WHERE pg_try_advisory_lock(%s, hashtext(r)) LIMIT %s")
_UNLOCK = "SELECT pg_advisory_unlock(%s, hashtext(r)) FROM unnest(%s::text[]) AS r"


class Reservations:
    """The runs this store's claims hold reserved; one reserving connection, opened on first use.

    A claim costs one round trip: the reservations of runs claimed last time are released
    in the same pipeline as this claim's (a claimed run is no longer a candidate, so its
    lock may wait until then); a reservation that did not become a claim is released at once.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()
        self._claimed: set[str] = set()  # held for runs already claimed: released with the next reservation
        self._lock = threading.Lock()

    def reserve(self, candidates: Sequence[str], limit: int) -> list[str]:
        """The best ``limit`` candidates no other worker holds, now reserved; all of them if reserving fails."""
        with self._lock:
            mine = [r for r in candidates if r in self._held]
            wanted = limit - len(mine)
            free = [r for r in candidates if r not in self._held]
            try:
                got = set(self._reserve(free, wanted)) if free and wanted > 0 else set()
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

    def release(self, claimed: Collection[str] = ()) -> None:
        """Done with this claim: reservations of ``claimed`` runs go with the next one, the others now."""
        with self._lock:
            unclaimed = sorted(self._held.difference(claimed))
            self._claimed.update(self._held.intersection(claimed))
            self._held.clear()
            if unclaimed:
                try:
                    self._unlock(unclaimed)
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

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._claimed.clear()  # a new session holds nothing
        return self._conn

    def _reserve(self, free: Sequence[str], wanted: int) -> list[str]:
        conn = self._connection()
        claimed, self._claimed = sorted(self._claimed), set()
        with conn.pipeline():
            if claimed:
                conn.execute(_UNLOCK, (_CLASS, claimed))
            cursor = conn.execute(_RESERVE, (free, _CLASS, wanted))
        return [row[0] for row in cursor.fetchall()]

    def _unlock(self, run_ids: Sequence[str]) -> None:
        self._connection().execute(_UNLOCK, (_CLASS, list(run_ids)))

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg.Error:
                pass
        self._held.clear()
        self._claimed.clear()
