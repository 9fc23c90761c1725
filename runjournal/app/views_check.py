"""``verify --views``: the followed views are derived from the log, never evidence.

The views file (``threads``, ``approvals --all``, ...) is a cache anyone who can
write it can edit. This rebuilds every built-in view from the log in memory,
with the same projections and the same cipher as the followed ones, catches the
followed views up, and compares every row of every built-in table, column by
column (sealed columns decrypted on both sides: their nonces differ). Rows are
read in key order from both sides and merged, so memory stays bounded by the
rebuilt views, never by two copies of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..projections import (
    ProjectedEvent,
    Projection,
    ProjectionError,
    ProjectionRunner,
    builtin_projections,
    open_views,
)
from ..projections.sealing import ViewCipher
from .decoding import EventDecoder

if TYPE_CHECKING:
    from .journal import Journal

DIFFERENCES_LISTED = 100  # differing rows named one by one; the rest are counted
RUN_INDEX = "_run_index"  # the runner's own index of thread and agent per run: derived too
_SHOWN = 60  # characters of a value shown in a difference


@dataclass
class ViewsCheck:
    """What ``check_views`` compared and what differs (empty: the views file is what the log gives)."""

    rows_checked: int = 0
    differences: list[str] = field(default_factory=list)
    unlisted: int = 0  # differences found beyond DIFFERENCES_LISTED

    def add(self, line: str) -> None:
        if len(self.differences) < DIFFERENCES_LISTED:
            self.differences.append(line)
        else:
            self.unlisted += 1


def check_views(journal: Journal) -> ViewsCheck:
    """Compare every row of the built-in followed views with the same views rebuilt from the log."""
    result = ViewsCheck()
    followed = journal.runner
    try:
        journal.catch_up()
    except ProjectionError as e:
        result.add(f"views: the followed views cannot catch up with the log ({e})")
    except Exception as e:  # noqa: BLE001 - an event the views cannot read is a finding (verify names it)
        result.add(f"views: the followed views cannot read the log ({type(e).__name__}: {_one_line(e)})")
    try:
        derived = _rebuilt(journal)
    except Exception as e:  # noqa: BLE001 - as above: reported, never a crash of verify
        result.add(f"views: the views cannot be rebuilt from the log ({type(e).__name__}: {_one_line(e)})")
        return result
    try:
        for name, projection in derived.projections.items():
            if name not in followed.projections:
                continue
            for table in projection.tables or (projection.name,):
                _compare(result, table, projection, followed, derived)
    finally:
        derived.close()
    if result.unlisted:
        result.differences.append(f"views: {result.unlisted} more differing rows")
    return result


def _rebuilt(journal: Journal) -> ProjectionRunner:
    """The built-in views built from the log in memory, with the store's cipher."""
    decoder = EventDecoder(journal._store.mapper)

    def pages(start: int) -> Iterator[list[ProjectedEvent]]:
        for page in journal.raw_pages(start, page_size=journal.page_size):
            yield decoder.decode_page(page)

    runner = ProjectionRunner(open_views(":memory:"), pages, cipher=journal._store.mapper.cipher)
    for projection in builtin_projections():
        runner.add(projection)
    runner.catch_up()
    return runner


def _compare(result: ViewsCheck, table: str, projection: Projection, followed: ProjectionRunner,
             derived: ProjectionRunner) -> None:
    if table not in followed.db.table_names():
        result.add(f"views: table {table} is missing from the views file")
        return
    pk = str(getattr(projection, "pk", "") or "rowid")  # every built-in view has a key
    sealed = frozenset(getattr(projection, "sealed", ()))
    query = f'SELECT {"rowid, " if pk == "rowid" else ""}* FROM "{table}" ORDER BY "{pk}"'
    theirs = _rows(followed.db.conn.execute(query), followed.cipher, sealed)
    ours = _rows(derived.db.conn.execute(query), derived.cipher, sealed)
    mine, other = next(ours, None), next(theirs, None)
    while mine is not None or other is not None:
        result.rows_checked += 1
        if other is None or (mine is not None and _order(mine.get(pk)) < _order(other.get(pk))):
            assert mine is not None
            result.add(f"views: table {table}, {pk} {_show(mine.get(pk))}: the log gives this row, "
                       "the views file lacks it")
            mine = next(ours, None)
        elif mine is None or _order(other.get(pk)) < _order(mine.get(pk)):
            result.add(f"views: table {table}, {pk} {_show(other.get(pk))}: the views file holds this row, "
                       "the log gives no such row")
            other = next(theirs, None)
        else:
            for column in sorted(mine.keys() | other.keys()):
                if column not in other:
                    result.add(f"views: table {table}, {pk} {_show(mine.get(pk))}, column {column}: "
                               "missing from the views file")
                elif column not in mine:
                    result.add(f"views: table {table}, {pk} {_show(mine.get(pk))}, column {column}: "
                               "the views file has a column the view does not")
                elif not _same(mine[column], other[column]):
                    result.add(f"views: table {table}, {pk} {_show(mine.get(pk))}, column {column}: "
                               f"the views file has {_show(other[column])}, the log gives {_show(mine[column])}")
            mine, other = next(ours, None), next(theirs, None)


def _rows(cursor: Any, cipher: ViewCipher, sealed: frozenset[str]) -> Iterator[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        for column in sealed & row.keys():
            try:
                row[column] = cipher.unseal(row[column])
            except Exception:  # noqa: BLE001 - a value no key opens is a difference, not a crash
                row[column] = _Undecryptable()
        yield row


class _Undecryptable:
    """A sealed value the store's key does not open."""

    def __repr__(self) -> str:
        return "<a value the store's key cannot decrypt>"

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _order(value: Any) -> tuple[int, Any]:
    """SQLite's sort order across types: NULL, numbers, text, blobs."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


__all__ = ["ViewsCheck", "check_views"]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]
