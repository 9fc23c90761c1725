"""A custom followed projection: runs started, completed and failed per agent, and their average duration.

Run it with ``python examples/custom_projection.py`` (or ``./dev python examples/custom_projection.py``).
It opens a journal on a temporary SQLite file, drives a few runs for two agents on a
manual clock (so every duration is exact), adds the ``RunsPerAgent`` projection,
catches it up with the log and prints its rows.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from runjournal.adapters.clock import ManualClock
from runjournal.projections import ProjectedEvent, Projection
from sqlite_utils import Database
from sqlite_utils.db import NotFoundError

from runjournal import Journal


class RunsPerAgent(Projection):
    """Per agent: runs started, completed, failed, and the average seconds from Started to Completed."""

    name = "runs_per_agent"
    version = 1
    tables = ("runs_per_agent", "runs_per_agent_started")  # both are dropped on a rebuild

    def setup(self, db: Database) -> None:
        """Create the per-agent table and the table of start times of unfinished runs."""
        db["runs_per_agent"].create(  # type: ignore[union-attr]
            {"agent_id": str, "started": int, "completed": int, "failed": int,
             "total_seconds": float, "avg_seconds": float},
            pk="agent_id",
            if_not_exists=True,
        )
        db["runs_per_agent_started"].create(  # type: ignore[union-attr]
            {"run_id": str, "agent_id": str, "started_at": str}, pk="run_id", if_not_exists=True
        )

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        """Apply one event; only Started, Completed, Failed and Cancelled matter here."""
        if event.type == "Started":
            self._started(event, db)
        elif event.type == "Completed":
            self._completed(event, db)
        elif event.type == "Failed":
            self._failed(event, db)
        elif event.type == "Cancelled":
            self._forget_start(event.run_id, db)

    def _started(self, event: ProjectedEvent, db: Database) -> None:
        """Count a run's first start and remember when it was."""
        if self._start_of(event.run_id, db) is not None:
            return  # started again after its lease expired: same run, keep the first start
        db["runs_per_agent_started"].insert(  # type: ignore[union-attr]
            {"run_id": event.run_id, "agent_id": event.agent_id, "started_at": event.timestamp.isoformat()}
        )
        row = self._row(event.agent_id, db)
        db["runs_per_agent"].upsert({**row, "started": row["started"] + 1}, pk="agent_id")  # type: ignore[union-attr]

    def _completed(self, event: ProjectedEvent, db: Database) -> None:
        """Count a completion and fold its duration into the agent's average."""
        started_at = self._start_of(event.run_id, db)
        seconds = 0.0 if started_at is None else (event.timestamp - started_at).total_seconds()
        row = self._row(event.agent_id, db)
        completed = row["completed"] + 1
        total = row["total_seconds"] + seconds
        db["runs_per_agent"].upsert(  # type: ignore[union-attr]
            {**row, "completed": completed, "total_seconds": total, "avg_seconds": total / completed},
            pk="agent_id",
        )
        self._forget_start(event.run_id, db)

    def _failed(self, event: ProjectedEvent, db: Database) -> None:
        """Count a failure (a run may fail before it ever started)."""
        row = self._row(event.agent_id, db)
        db["runs_per_agent"].upsert({**row, "failed": row["failed"] + 1}, pk="agent_id")  # type: ignore[union-attr]
        self._forget_start(event.run_id, db)

    @staticmethod
    def _row(agent_id: str, db: Database) -> dict[str, Any]:
        """The agent's current row, or a row of zeros."""
        try:
            return dict(db["runs_per_agent"].get(agent_id))  # type: ignore[union-attr]
        except NotFoundError:
            return {"agent_id": agent_id, "started": 0, "completed": 0, "failed": 0,
                    "total_seconds": 0.0, "avg_seconds": None}

    @staticmethod
    def _start_of(run_id: str, db: Database) -> datetime | None:
        """When a still-unfinished run started, if it did."""
        try:
            row = db["runs_per_agent_started"].get(run_id)  # type: ignore[union-attr]
        except NotFoundError:
            return None
        return datetime.fromisoformat(row["started_at"])

    @staticmethod
    def _forget_start(run_id: str, db: Database) -> None:
        """Drop a finished run's start time: the table holds only unfinished runs."""
        db.execute("DELETE FROM runs_per_agent_started WHERE run_id = ?", [run_id])


def drive_run(journal: Journal, clock: ManualClock, agent_id: str, seconds: float, *, fail: bool = False) -> str:
    """Submit, claim and start one run, let ``seconds`` pass, then complete (or fail) it."""
    run = journal.submit(agent_id=agent_id, input={"message": f"job for {agent_id}"}, actor="example")
    claim = journal.claim_next(worker_id="worker-1", lease_seconds=3600)
    assert claim is not None and claim.run_id == run.run_id
    journal.start(claim)
    clock.advance(seconds)
    if fail:
        journal.fail(claim, error="the agent gave up")
    else:
        journal.complete(claim, output={"text": "done"})
    clock.advance(1)  # a gap between runs, not part of any duration
    return run.run_id


def drive_runs(journal: Journal, clock: ManualClock) -> None:
    """Two agents: summarizer completes in 10 s and 20 s and fails once; translator completes in 30 s and 45 s."""
    drive_run(journal, clock, "summarizer", 10)
    drive_run(journal, clock, "translator", 30)
    drive_run(journal, clock, "summarizer", 20)
    drive_run(journal, clock, "summarizer", 5, fail=True)
    drive_run(journal, clock, "translator", 45)


def read_rows(journal: Journal) -> list[dict[str, Any]]:
    """The projection's rows, by agent."""
    table = journal.runner.db["runs_per_agent"]
    return [dict(row) for row in table.rows_where(order_by="agent_id")]  # type: ignore[union-attr]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a small fixed-width table."""
    shown = [[str(r["agent_id"]), str(r["started"]), str(r["completed"]), str(r["failed"]),
              "-" if r["avg_seconds"] is None else f"{r['avg_seconds']:.1f}"] for r in rows]
    header = ["agent", "started", "completed", "failed", "avg_seconds"]
    widths = [max(len(line[i]) for line in [header, *shown]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *shown]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main() -> list[dict[str, Any]]:
    """Drive the runs, add and catch up the projection, print its rows and return them."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        journal = Journal.open(f"sqlite:///{Path(tmp) / 'journal.db'}", clock=clock)
        try:
            drive_runs(journal, clock)
            journal.add_projection(RunsPerAgent())  # new: it will be built from the start of the log
            processed = journal.catch_up()
            rows = read_rows(journal)
            print(f"{processed} events projected into runs_per_agent (views file: {Path(journal.views_path).name})")
            print(format_rows(rows))
        finally:
            journal.close()
    return rows


if __name__ == "__main__":
    main()
