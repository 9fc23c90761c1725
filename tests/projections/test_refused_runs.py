"""A run with an event whose stored topic is not runjournal's is refused by the views as a whole, from that event on.

Skipping only the refused event would hand its run's later events to views that never saw
the state they come from, and every view would stop there: one forged row would stop
`status`, `threads` and every worker's startup.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from runjournal.projections import (
    REFUSED,
    ProjectedEvent,
    Projection,
    ProjectionRunner,
    RefusedRun,
    builtin_projections,
    open_views,
)
from sqlite_utils import Database


class Seen(Projection):
    """Every (position, run) it is handed."""

    name = "seen"

    def setup(self, db: Database) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY, run_id TEXT, type TEXT)")

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        db.execute("INSERT INTO seen VALUES (?, ?, ?)", [event.position, event.run_id, event.type])


def _event(position: int, run_id: str, version: int, type_: str, **data: object) -> ProjectedEvent:
    extra = {"refused": f"topic of {run_id} {version} is not ours"} if type_ == REFUSED else {}
    return ProjectedEvent(position, run_id, version, type_, datetime(2026, 1, 1, tzinfo=UTC), "test", dict(data),
                          extra=extra)


def _created(position: int, run_id: str) -> ProjectedEvent:
    return _event(position, run_id, 1, "Created", thread_id=f"t-{run_id}", agent_id="echo",
                  input={"message": run_id}, priority=0, idempotency_key=None, request={"message": run_id},
                  created_by="alice", retry_of=None)


LOG = [
    _created(1, "good"),
    _created(2, "forged"),
    _event(3, "good", 2, "Queued", priority=0),
    _event(4, "forged", 2, REFUSED),  # the views cannot know what this was...
    _event(5, "forged", 3, "Dequeued", worker_id="w", epoch=1),  # ...so this one cannot apply
    _event(6, "good", 3, "Dequeued", worker_id="w", epoch=1),
    _event(7, "forged", 4, "Started", worker_id="w", epoch=1),
]
LATER = [_event(8, "forged", 5, "Completed", output={"text": "forged"}), _event(9, "good", 4, "Started", worker_id="w", epoch=1)]


def _runner(path: str, log: list[ProjectedEvent], page: int = 3) -> ProjectionRunner:
    def pages(start: int) -> Iterator[list[ProjectedEvent]]:
        after = [e for e in log if e.position > start]
        for i in range(0, len(after), page):
            yield after[i : i + page]

    runner = ProjectionRunner(open_views(path), pages)
    for projection in (*builtin_projections(), Seen()):
        runner.add(projection)
    return runner


def test_the_views_follow_every_run_but_the_refused_one_past_its_refused_event(tmp_path) -> None:
    runner = _runner(str(tmp_path / "views.db"), LOG)
    try:
        assert runner.catch_up() == len(LOG)  # no ProjectionError: the built-in views go on
        seen = runner.db.execute("SELECT position, run_id FROM seen ORDER BY position").fetchall()
        assert seen == [(1, "good"), (2, "forged"), (3, "good"), (6, "good")]
        states = dict(runner.db.execute("SELECT run_id, state FROM runs").fetchall())
        assert states == {"good": "claimed", "forged": "created"}  # as followed up to the refused event
        (refused,) = runner.refused_runs()
        assert refused == RefusedRun("forged", 4, 2, "topic of forged 2 is not ours")
        assert set(runner.positions().values()) == {7}
    finally:
        runner.close()


def test_a_refusal_is_kept_in_the_views_file_for_later_events_and_other_processes(tmp_path) -> None:
    path = str(tmp_path / "views.db")
    first = _runner(path, LOG)
    try:
        first.catch_up()
    finally:
        first.close()
    again = _runner(path, LOG + LATER)  # a new process: it reads only positions 8 and 9
    try:
        assert again.catch_up() == 2
        seen = [p for (p,) in again.db.execute("SELECT position FROM seen ORDER BY position").fetchall()]
        assert seen == [1, 2, 3, 6, 9]  # position 8 (the forged run's completion) is never followed
        states = dict(again.db.execute("SELECT run_id, state FROM runs").fetchall())
        assert states == {"good": "running", "forged": "created"}
        assert [r.run_id for r in again.refused_runs()] == ["forged"]
    finally:
        again.close()


def test_a_view_added_later_or_rebuilt_skips_the_refused_run_too(tmp_path) -> None:
    runner = _runner(str(tmp_path / "views.db"), LOG + LATER, page=100)
    try:
        runner.catch_up()
        runner.rebuild("seen")
        seen = [p for (p,) in runner.db.execute("SELECT position FROM seen ORDER BY position").fetchall()]
        assert seen == [1, 2, 3, 6, 9]
        assert len(runner.refused_runs()) == 1  # found again on the way, not twice
    finally:
        runner.close()


def test_forgetting_the_refusals_follows_a_repaired_run_and_finds_a_forged_one_again(tmp_path) -> None:
    path = str(tmp_path / "views.db")
    runner = _runner(path, LOG, page=100)
    try:
        runner.catch_up()
    finally:
        runner.close()
    repaired = [_event(4, "forged", 2, "Queued", priority=0) if e.position == 4 else e for e in LOG]
    for log, refused in ((repaired, []), (LOG, ["forged"])):
        runner = _runner(path, log, page=100)
        try:
            runner.forget_refused()
            for name in ("runs", "seen"):
                runner.rebuild(name)
            assert [r.run_id for r in runner.refused_runs()] == refused
            states = dict(runner.db.execute("SELECT run_id, state FROM runs").fetchall())
            assert states["forged"] == ("running" if not refused else "created")
        finally:
            runner.close()
