"""Compare the inline queue and leases with what the log gives.

The inline queue and leases live in the store beside the events and decide
what workers claim and what recovery expires. A queue row deleted by hand
strands a queued run; one edited to ``claimable`` offers a run that is not
waiting. Claims reload and check every run they take, so a forged row cannot
make a worker act on a wrong state, but it can hide work. ``verify`` therefore
recomputes each row from the log: a run whose last event ends it must have no
row; every other run is loaded (its chain checked, as the loader does) and its
row must be what a save of it writes. Only live runs are loaded, so the cost
follows the number of runs in flight, not the size of the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..adapters.storage import topics
from ..adapters.storage.index import IndexEntry
from ..domain import TRANSITIONS, RunjournalError
from ..domain.transitions import TERMINAL_STATES
from .models import VerifyProblem

if TYPE_CHECKING:
    from .unit_of_work import UnitOfWork
    from .log_reading import LogReading

REPAIR = "run `runjournal projections rebuild` to rebuild the queue and leases from the log"

# Events after which a run is always over: its rows must be gone.
FINAL_EVENTS = frozenset(
    event for event, moves in TRANSITIONS.items() if moves and all(t <= TERMINAL_STATES for t in moves.values()))


def inline_problems(journal: UnitOfWork, reading: LogReading, broken: set[str]) -> list[VerifyProblem]:
    """Every queue or lease row that differs from the row the log gives (a run with a broken chain is skipped)."""
    views: Any = journal.inline_views
    if not hasattr(views, "queue_table"):
        return []
    queue = {row[0]: row[1:] for row in views.queue_table()}
    leases = {row.run_id: (row.worker_id, row.epoch, row.expires_at) for row in views.lease_rows()}
    live = {run_id for run_id, topic in reading.last_topic.items() if _may_be_live(topic)}
    problems = []
    for run_id in sorted((queue.keys() | leases.keys() | live) - broken):
        if run_id not in reading.runs:
            problems.append(VerifyProblem(run_id=run_id, version=None, problem=(
                f"the inline queue or leases hold a row for a run with no events in the log; {REPAIR}")))
            continue
        expected = _expected(journal, run_id, reading.first[run_id])
        if expected is None:
            continue  # not loadable: the chain or snapshot checks report why
        problem = _differs("queue", queue.get(run_id), expected[0]) or _differs("lease", leases.get(run_id), expected[1])
        if problem:
            problems.append(VerifyProblem(run_id=run_id, version=None, problem=problem))
    return problems


def _may_be_live(topic: str) -> bool:
    try:
        return topics.resolve(topic).__name__ not in FINAL_EVENTS
    except topics.UnknownTopic:
        return False  # reported by the chain check


def _expected(journal: UnitOfWork, run_id: str, first: int) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None] | None:
    """(queue row, lease row) a save of the run as loaded writes, or None if it cannot be loaded."""
    try:
        run = journal._load_checked(UUID(run_id), run_id)
    except (RunjournalError, ValueError):
        return None
    entry = IndexEntry.of(run)
    if not entry.live:
        return None, None
    return (entry.priority, first, entry.state, entry.claimable), entry.lease


def _differs(table: str, stored: tuple[Any, ...] | None, expected: tuple[Any, ...] | None) -> str:
    if stored == expected:
        return ""
    if expected is None:
        return f"the inline {table} holds a row {_shown(stored)} the log gives no such row for; {REPAIR}"
    if stored is None:
        return f"the inline {table} has no row for this run, the log gives {_shown(expected)}; {REPAIR}"
    return f"the inline {table} row is {_shown(stored)}, the log gives {_shown(expected)}; {REPAIR}"


def _shown(row: tuple[Any, ...] | None) -> str:
    return "(" + ", ".join(repr(v) for v in row or ()) + ")"
