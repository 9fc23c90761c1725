"""Batched row projections: read the touched rows once per page, fold in Python, write once.

sqlite-utils' per-row ``upsert`` introspects the table on every call; the
built-in views instead load the rows a page touches with one query, apply the
page's events to plain dicts and write them back with ``executemany``.
"""

from __future__ import annotations

import json
from operator import itemgetter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any


from .base import ProjectedEvent, Projection

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database

Row = dict[str, Any]


def as_json(value: Any) -> str | None:
    """A JSON column value (None stays NULL)."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class RowProjection(Projection):
    """A view with one row per key; subclasses say which key an event touches and how."""

    pk: str = ""
    columns: dict[str, type] = {}  # noqa: RUF012 - a class-level schema
    indexes: tuple[tuple[str, ...], ...] = ()
    append_only: bool = False  # every event makes a new row: nothing to load first
    fixed: tuple[str, ...] = ()  # columns never changed after insert: left out of updates, so their indexes are untouched
    sealed: tuple[str, ...] = ()  # payload columns (text): encrypted in the views file when the store has a key

    def setup(self, db: Database) -> None:
        table = db[self.name]
        table.create(self.columns, pk=self.pk, if_not_exists=True)  # type: ignore[union-attr]
        for columns in self.indexes:
            table.create_index(columns, if_not_exists=True)  # type: ignore[union-attr]

    def key(self, event: ProjectedEvent) -> Any:
        """The key of the row an event touches, or None."""
        return event.run_id

    def creates(self, event: ProjectedEvent) -> bool:
        """True when the event starts its row afresh: no need to load it first."""
        return False

    def apply(self, row: Row | None, event: ProjectedEvent) -> Row | None:
        """The row after the event (None deletes it)."""
        raise NotImplementedError

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        self.handle_page([event], db)

    def handle_page(self, events: Sequence[ProjectedEvent], db: Database) -> None:
        key_of, creates = self.key, self.creates
        keyed = []
        to_load: dict[Any, None] = {}  # keys whose first event in the page needs the stored row
        seen: set[Any] = set()
        for event in events:
            key = key_of(event)
            if key is None:
                continue
            keyed.append((key, event))
            if key not in seen:
                seen.add(key)
                if not (self.append_only or creates(event)):
                    to_load[key] = None
        if not keyed:
            return
        rows: dict[Any, Row | None] = dict(self.load(db, list(to_load))) if to_load else {}
        apply, get = self.apply, rows.get
        for key, event in keyed:
            rows[key] = apply(get(key), event)
        self.store(db, rows)

    def load(self, db: Database, keys: Sequence[Any]) -> dict[Any, Row]:
        """The existing rows for ``keys``."""
        found: dict[Any, Row] = {}
        names = list(self.columns)
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            cursor = db.conn.execute(
                f'SELECT {", ".join(names)} FROM "{self.name}" WHERE "{self.pk}" IN ({",".join("?" * len(part))})',
                part,
            )
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                found[row[self.pk]] = row
        if self.sealed and self.cipher.enabled:
            unseal = self.cipher.unseal
            for row in found.values():
                for name in self.sealed:
                    row[name] = unseal(row[name])
        return found

    def store(self, db: Database, rows: dict[Any, Row | None]) -> None:
        """Write changed rows back and delete the ones that went away."""
        names = list(self.columns)
        values = itemgetter(*names)
        if self.sealed and self.cipher.enabled:
            seal = self.cipher.seal
            rows = {k: None if r is None else {**r, **{n: seal(r[n]) for n in self.sealed}} for k, r in rows.items()}
        upserts = [values(r) for r in rows.values() if r is not None]
        deletes = [(k,) for k, r in rows.items() if r is None]
        if upserts:
            # An upsert rewrites only the indexes whose columns changed; REPLACE would rewrite them all.
            updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != self.pk and n not in self.fixed)
            db.conn.executemany(
                f'INSERT INTO "{self.name}" ({", ".join(names)}) VALUES ({",".join("?" * len(names))})'
                f" ON CONFLICT ({self.pk}) DO UPDATE SET {updates}",
                upserts,
            )
        if deletes:
            db.conn.executemany(f'DELETE FROM "{self.name}" WHERE "{self.pk}" = ?', deletes)
