"""Followed projections: a failing one stops at its event, pages apply exactly once, versions rebuild.

Also ``Journal.subscribe``: callbacks see every newly stored event until unsubscribed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from runjournal.adapters.clock import ManualClock
from runjournal.projections import (
    ProjectedEvent,
    Projection,
    ProjectionError,
    ProjectionFailure,
    ProjectionRunner,
    open_views,
)
from sqlite_utils import Database

from runjournal import InvalidInput, Journal, RecordedEvent
from runjournal.app.queries import RunRow, select

BUILTIN = ("runs", "threads", "approvals", "recovery_intents", "messages", "run_facts")


class EventLog(Projection):
    """Records the position and type of every event it handles, one row each."""

    name = "event_log"
    version = 1

    def setup(self, db: Database) -> None:
        db[self.name].create({"position": int, "type": str, "run_id": str, "agent_id": str},  # type: ignore[union-attr]
                             pk="position", if_not_exists=True)

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        db[self.name].insert(  # type: ignore[union-attr]
            {"position": event.position, "type": event.type, "run_id": event.run_id, "agent_id": event.agent_id}
        )


class FailsOnCompleted(EventLog):
    """Like ``EventLog``, but raises on every ``Completed``."""

    name = "fails_on_completed"

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        if event.type == "Completed":
            raise ValueError(f"cannot handle the completion of {event.run_id}")
        super().handle(event, db)


class TypeCounts(Projection):
    """Counts events per type; version 2 counts only terminal events."""

    name = "type_counts"
    version = 1
    counted: tuple[str, ...] | None = None  # None: every type

    def setup(self, db: Database) -> None:
        db[self.name].create({"type": str, "n": int}, pk="type", if_not_exists=True)  # type: ignore[union-attr]

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        if self.counted is not None and event.type not in self.counted:
            return
        db.execute(
            f"INSERT INTO {self.name} (type, n) VALUES (?, 1) ON CONFLICT (type) DO UPDATE SET n = n + 1",
            [event.type],
        )


def rows(journal: Journal, table: str) -> list[dict]:
    return [dict(r) for r in journal.runner.db[table].rows]


def counts(journal: Journal) -> dict[str, int]:
    return {r["type"]: r["n"] for r in rows(journal, "type_counts")}


def finish_one(journal: Journal, agent_id: str) -> str:
    """Submit, claim, start and complete a run (5 events); returns its id."""
    run = journal.submit(agent_id=agent_id, input={"message": "hi"})
    claim = journal.claim_next(worker_id="w")
    assert claim is not None and claim.run_id == run.run_id
    journal.start(claim)
    journal.complete(claim, output={"text": "ok"})
    return run.run_id


@pytest.fixture
def sqlite_journal(sqlite_url: str, clock: ManualClock) -> Iterator[Journal]:
    """A journal on a temp SQLite file (views beside it)."""
    j = Journal.open(sqlite_url, clock=clock)
    yield j
    j.close()


# -- a failing projection -------------------------------------------------------------


def test_a_failing_projection_stops_before_its_event_and_the_others_catch_up(sqlite_journal: Journal) -> None:
    j = sqlite_journal
    j.add_projection(FailsOnCompleted())
    first = finish_one(j, "alpha")  # positions 1..5, Completed at 5
    failing_position = j.max_position()
    second = finish_one(j, "beta")  # 6..10
    j.submit(agent_id="gamma", input={})  # 11..12
    end = j.max_position()
    assert (failing_position, end) == (5, 12)

    with pytest.raises(ProjectionError) as raised:
        j.catch_up()

    failure = raised.value.failures[0]
    assert len(raised.value.failures) == 1
    assert (failure.name, failure.position, failure.event_type) == ("fails_on_completed", 5, "Completed")
    assert failure.error == f"ValueError: cannot handle the completion of {first}"
    assert isinstance(failure, ProjectionFailure)
    message = str(raised.value)
    assert "'fails_on_completed'" in message and "position 5" in message and "(Completed)" in message

    positions = j.runner.positions()
    assert positions["fails_on_completed"] == failing_position - 1  # just before the failing event
    logged = rows(j, "fails_on_completed")
    assert [r["position"] for r in logged] == [1, 2, 3, 4]  # every earlier event, none after
    assert [r["type"] for r in logged] == ["Created", "Queued", "Dequeued", "Started"]
    assert {r["agent_id"] for r in logged} == {"alpha"}  # events arrive enriched with their agent

    # Every built-in view (and the run index) read to the end of the log regardless.
    assert {name: positions[name] for name in (*BUILTIN, "_run_index")} == dict.fromkeys((*BUILTIN, "_run_index"), end)
    runs = select(j.runner.db, RunRow, "SELECT * FROM runs ORDER BY created_at, run_id")
    assert {r.run_id: r.state for r in runs if r.state == "completed"} == {first: "completed", second: "completed"}
    assert sorted(r.agent_id for r in runs) == ["alpha", "beta", "gamma"]


def test_a_failing_projection_fails_again_at_the_same_event_until_fixed(sqlite_journal: Journal) -> None:
    j = sqlite_journal
    j.add_projection(FailsOnCompleted())
    finish_one(j, "alpha")
    for _ in range(2):
        with pytest.raises(ProjectionError, match=r"'fails_on_completed' stopped at position 5 \(Completed\)"):
            j.catch_up()
        assert j.runner.positions()["fails_on_completed"] == 4
        assert len(rows(j, "fails_on_completed")) == 4


def test_the_failing_event_can_be_the_first_of_a_page(sqlite_journal: Journal) -> None:
    j = sqlite_journal
    j.add_projection(FailsOnCompleted())
    run = j.submit(agent_id="alpha", input={})
    claim = j.claim_next(worker_id="w")
    j.start(claim)
    assert j.catch_up() == 4
    j.complete(claim)  # position 5: the first event of the next page
    j.submit(agent_id="beta", input={})
    with pytest.raises(ProjectionError) as raised:
        j.catch_up()
    assert (raised.value.failures[0].position, raised.value.failures[0].event_type) == (5, "Completed")
    assert run.run_id in raised.value.failures[0].error
    assert j.runner.positions()["fails_on_completed"] == 4
    assert j.runner.positions()["runs"] == j.max_position() == 7
    assert [r["position"] for r in rows(j, "fails_on_completed")] == [1, 2, 3, 4]


def test_built_in_queries_still_answer_while_a_custom_projection_is_stuck(sqlite_journal: Journal) -> None:
    j = sqlite_journal
    j.add_projection(FailsOnCompleted())
    finish_one(j, "alpha")
    j.submit(agent_id="beta", input={})
    assert sorted(r.agent_id for r in j.runs()) == ["alpha", "beta"]


def test_following_keeps_the_built_in_views_current_while_a_custom_projection_is_stuck(
    sqlite_journal: Journal,
) -> None:
    j = sqlite_journal
    j.add_projection(FailsOnCompleted())
    j.follow(interval=0.02)
    finish_one(j, "alpha")
    time.sleep(0.2)
    j.submit(agent_id="beta", input={})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and j.runner.positions()["runs"] < j.max_position():
        time.sleep(0.02)
    j.stop_following()
    assert j.runner.positions()["runs"] == j.max_position()


# -- exactly once -----------------------------------------------------------------------


def test_catching_up_again_changes_nothing(sqlite_journal: Journal) -> None:
    j = sqlite_journal
    j.add_projection(TypeCounts())
    finish_one(j, "alpha")
    finish_one(j, "beta")
    assert j.catch_up() == 10
    before = (counts(j), j.runner.positions(), rows(j, "runs"))
    assert j.catch_up() == 0
    assert (counts(j), j.runner.positions(), rows(j, "runs")) == before
    assert counts(j) == {"Created": 2, "Queued": 2, "Dequeued": 2, "Started": 2, "Completed": 2}


def _event(position: int, run_id: str, version: int, type_: str, **data: object) -> ProjectedEvent:
    return ProjectedEvent(position, run_id, version, type_, datetime(2026, 1, 1, tzinfo=UTC), "test", dict(data))


def test_a_redelivered_page_is_applied_once(tmp_path) -> None:
    log = [
        _event(1, "r1", 1, "Created", thread_id="t1", agent_id="alpha", input=None, priority=0),
        _event(2, "r1", 2, "Queued", priority=0),
        _event(3, "r2", 1, "Created", thread_id="t2", agent_id="beta", input=None, priority=0),
        _event(4, "r1", 3, "Dequeued", worker_id="w", epoch=1),
        _event(5, "r2", 2, "Queued", priority=0),
    ]

    def every_page_twice(start: int) -> Iterator[list[ProjectedEvent]]:
        """At-least-once delivery: each page of two events comes twice, overlapping pages too."""
        rest = [e for e in log if e.position > start]
        for i in range(0, len(rest), 2):
            yield rest[i : i + 2]
            yield rest[max(0, i - 1) : i + 2]

    runner = ProjectionRunner(open_views(tmp_path / "views.db"), every_page_twice)
    try:
        runner.add(EventLog())
        runner.catch_up()
        logged = [dict(r) for r in runner.db["event_log"].rows_where(order_by="position")]
        assert [(r["position"], r["type"], r["agent_id"]) for r in logged] == [
            (1, "Created", "alpha"), (2, "Queued", "alpha"), (3, "Created", "beta"),
            (4, "Dequeued", "alpha"), (5, "Queued", "beta"),
        ]
        assert runner.positions() == {"_run_index": 5, "_refused_runs": 5, "event_log": 5}
        assert runner.catch_up() == 0
        assert runner.db["event_log"].count == 5
    finally:
        runner.close()


def _crash_on_second_page(tmp_path) -> tuple[ProjectionRunner, dict[str, bool]]:
    """A runner over a two-page log whose projection 'dies' (a BaseException) after writing page 2."""
    log = [_event(1, "r1", 1, "Created", thread_id="t", agent_id="a", input=None, priority=0),
           _event(2, "r1", 2, "Queued", priority=0)]
    crash = {"on": True}

    def pages(start: int) -> Iterator[list[ProjectedEvent]]:
        for e in log:
            if e.position > start:
                yield [e]

    class CrashesAfterWriting(EventLog):
        """Writes its row, then the 'process dies' (raises BaseException, past the runner's handlers)."""

        def handle_page(self, events: Sequence[ProjectedEvent], db: Database) -> None:
            super().handle_page(events, db)
            if crash["on"] and events[-1].position == 2:
                raise KeyboardInterrupt

    runner = ProjectionRunner(open_views(tmp_path / "views.db"), pages)
    runner.add(CrashesAfterWriting())
    return runner, crash


def test_a_page_that_raises_outside_any_handler_leaves_rows_and_position_together(tmp_path) -> None:
    runner, crash = _crash_on_second_page(tmp_path)
    runner.transaction_events = 1  # one page per transaction
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.catch_up()
        # The first page committed; the second rolled back whole: no row 2, position 1.
        assert [r["position"] for r in runner.db["event_log"].rows] == [1]
        assert runner.positions()["event_log"] == 1
        crash["on"] = False
        runner.catch_up()
        assert [r["position"] for r in runner.db["event_log"].rows] == [1, 2]
    finally:
        runner.close()


def test_the_pages_of_one_transaction_commit_together_or_not_at_all(tmp_path) -> None:
    runner, crash = _crash_on_second_page(tmp_path)
    assert runner.transaction_events >= 2  # both pages fit in one transaction
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.catch_up()
        assert [r["position"] for r in runner.db["event_log"].rows] == []
        assert runner.positions()["event_log"] == 0
        crash["on"] = False
        assert runner.catch_up() == 2
        assert [r["position"] for r in runner.db["event_log"].rows] == [1, 2]
    finally:
        runner.close()


def test_a_failed_read_keeps_the_pages_applied_before_it(tmp_path) -> None:
    log = [_event(1, "r1", 1, "Created", thread_id="t", agent_id="a", input=None, priority=0)]

    def pages(start: int) -> Iterator[list[ProjectedEvent]]:
        if start < 1:
            yield log
        raise ConnectionError("store went away")

    runner = ProjectionRunner(open_views(tmp_path / "views.db"), pages)
    try:
        runner.add(EventLog())
        with pytest.raises(ConnectionError, match="store went away"):
            runner.catch_up()
        assert [r["position"] for r in runner.db["event_log"].rows] == [1]
        assert runner.positions()["event_log"] == 1
    finally:
        runner.close()


# -- versions ---------------------------------------------------------------------------


def test_bumping_the_version_rebuilds_the_projection_from_zero(sqlite_url: str, clock: ManualClock) -> None:
    with Journal.open(sqlite_url, clock=clock) as j:
        j.add_projection(TypeCounts())
        finish_one(j, "alpha")
        j.submit(agent_id="beta", input={}, priority=-1)  # stays queued: later runs are claimed first
        assert j.catch_up() == 7
        assert counts(j)["Created"] == 2
        views_path = j.views_path

    # The same class, changed: now it counts only completions, and says so with version 2.
    changed = type("TypeCounts", (TypeCounts,), {"version": 2, "counted": ("Completed",)})
    with Journal.open(sqlite_url, clock=clock) as j:
        assert j.views_path == views_path  # the same views file
        j.add_projection(changed())
        assert j.runner.positions()["type_counts"] == 0
        assert counts(j) == {}  # its old rows were dropped
        assert j.catch_up() == 7  # the whole log read again, for it alone
        assert counts(j) == {"Completed": 1}
        assert j.runner.positions()["type_counts"] == j.max_position()

    # Re-added at the same version it just goes on from where it was.
    with Journal.open(sqlite_url, clock=clock) as j:
        j.add_projection(changed())
        assert j.runner.positions()["type_counts"] == 7
        finish_one(j, "gamma")
        assert j.catch_up() == 5
        assert counts(j) == {"Completed": 2}


def test_a_rebuild_replays_the_log_into_fresh_tables(sqlite_journal: Journal) -> None:
    j = sqlite_journal
    j.add_projection(TypeCounts())
    finish_one(j, "alpha")
    j.catch_up()
    before = counts(j)
    assert j.rebuild("type_counts") == j.max_position()
    assert counts(j) == before
    with pytest.raises(InvalidInput, match="no projection named 'nope'"):
        j.rebuild("nope")


def test_projections_need_a_unique_name(sqlite_journal: Journal) -> None:
    sqlite_journal.add_projection(TypeCounts())
    with pytest.raises(ValueError, match="already added"):
        sqlite_journal.add_projection(TypeCounts())
    with pytest.raises(ValueError, match="needs a name"):
        sqlite_journal.add_projection(Projection())


# -- subscribe ----------------------------------------------------------------------------


def test_subscribers_get_every_new_event_until_they_unsubscribe(journal: Journal) -> None:
    journal.submit(agent_id="before", input={}, priority=-1)  # stored before subscribing: not delivered
    seen: list[RecordedEvent] = []
    unsubscribe = journal.subscribe(seen.append)

    run_id = finish_one(journal, "alpha")
    other = journal.submit(agent_id="beta", input={})

    assert [(e.type, e.run_id, e.position) for e in seen] == [
        ("Created", run_id, 3), ("Queued", run_id, 4), ("Dequeued", run_id, 5),
        ("Started", run_id, 6), ("Completed", run_id, 7),
        ("Created", other.run_id, 8), ("Queued", other.run_id, 9),
    ]
    assert [e.type for e in seen[:5]] == [e.type for e in journal.history(run_id)]
    assert seen[0].data["agent_id"] == "alpha" and seen[4].data["output"] == {"text": "ok"}

    unsubscribe()
    journal.submit(agent_id="after", input={})
    assert len(seen) == 7
    assert journal.max_position() == 11


def test_a_catch_up_reads_the_log_without_holding_the_views_write_lock(tmp_path) -> None:
    """Another process following the same views file can write while this one waits on the store."""
    log = [_event(1, "r1", 1, "Created", thread_id="t", agent_id="a", input=None, priority=0),
           _event(2, "r1", 2, "Queued", priority=0)]
    views = tmp_path / "views.db"
    writable_while_reading: list[bool] = []

    def pages(start: int) -> Iterator[list[ProjectedEvent]]:
        for e in log:
            if e.position > start:
                other = sqlite3.connect(views, timeout=0, isolation_level=None)
                try:
                    other.execute("BEGIN IMMEDIATE")  # fails at once if the runner held the write lock
                    other.execute("ROLLBACK")
                    writable_while_reading.append(True)
                except sqlite3.OperationalError:
                    writable_while_reading.append(False)
                finally:
                    other.close()
                yield [e]

    runner = ProjectionRunner(open_views(views), pages)
    try:
        runner.add(EventLog())
        runner.transaction_events = 1  # a transaction per page: the second page is read after the first commit
        assert runner.catch_up() == 2
        assert writable_while_reading == [True, True]
        with pytest.raises(ValueError, match="transaction_events must be >= 1"):
            runner.transaction_events = 0
    finally:
        runner.close()
