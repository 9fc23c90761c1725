"""Batched row projections: read the touched rows once per page, fold in Python, write once.

sqlite-utils' per-row ``upsert`` introspects the table on every call; the
built-in views instead load the rows a page touches with one query, apply the
page's events to plain dicts and write them back with ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from .base import ProjectedEvent, Projection

Row = dict[str, Any]


def as_json(value: Any) -> str | None:
    """A JSON column value (None stays NULL)."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class RowProjection(Projection):
    """A view with one row per key; subclasses say which key an event touches and how."""

    pk: str = ""
    columns: dict[str, type] = {}  # noqa: RUF012 - a class-level schema
    indexes: tuple[tuple[str, ...], ...] = ()

    def setup(self, db: Database) -> None:
        table = db[self.name]
        table.create(self.columns, pk=self.pk, if_not_exists=True)  # type: ignore[union-attr]
        for columns in self.indexes:
            table.create_index(columns, if_not_exists=True)  # type: ignore[union-attr]

    def key(self, event: ProjectedEvent) -> Any:
        """The key of the row an event touches, or None."""
        return event.run_id

    def apply(self, row: Row | None, event: ProjectedEvent) -> Row | None:
        """The row after the event (None deletes it)."""
        raise NotImplementedError

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        self.handle_page([event], db)

    def handle_page(self, events: Sequence[ProjectedEvent], db: Database) -> None:
        keyed = [(self.key(e), e) for e in events]
        keys = list(dict.fromkeys(k for k, _ in keyed if k is not None))
        if not keys:
            return
        rows: dict[Any, Row | None] = dict(self.load(db, keys))
        for key, event in keyed:
            if key is not None:
                rows[key] = self.apply(rows.get(key), event)
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
        return found

    def store(self, db: Database, rows: dict[Any, Row | None]) -> None:
        """Write changed rows back and delete the ones that went away."""
        names = list(self.columns)
        upserts = [tuple(r.get(n) for n in names) for r in rows.values() if r is not None]
        deletes = [(k,) for k, r in rows.items() if r is None]
        if upserts:
            db.conn.executemany(
                f'INSERT OR REPLACE INTO "{self.name}" ({", ".join(names)}) VALUES ({",".join("?" * len(names))})',
                upserts,
            )
        if deletes:
            db.conn.executemany(f'DELETE FROM "{self.name}" WHERE "{self.pk}" = ?', deletes)
