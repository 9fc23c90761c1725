"""Run lives for the log builders: the domain commands a run goes through, saved phase by phase.

A life is the phases after submit's ``Created`` + ``Queued``. ``save_in_phases`` saves a
batch of submitted runs, then each phase of their lives in its own transaction, so a
run's events spread over the log as a real worker's would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from runjournal.domain import Run

from .common import Ticker

Phase = Callable[[Run, Ticker], None]


@dataclass(frozen=True)
class Steps:
    """The commands of one worker, each a phase (or part of one) of a run's life."""

    worker: str = "w1"
    lease: timedelta = timedelta(seconds=30)

    def claim(self, run: Run, t: Ticker) -> None:
        now = t()
        run.dequeue(worker_id=self.worker, lease_expires_at=now + self.lease, now=now)

    def claim_start(self, run: Run, t: Ticker) -> None:
        self.claim(run, t)
        run.start(worker_id=self.worker, epoch=run.epoch, now=t())

    def message(self, run: Run, t: Ticker) -> None:
        run.record_step(worker_id=self.worker, epoch=run.epoch, kind="message", content={"text": "working on it"},
                        now=t())

    def ask(self, run: Run, t: Ticker) -> None:
        run.request_approval(worker_id=self.worker, epoch=run.epoch, tool_name="deploy", tool_args={"env": "prod"},
                             tool_call_id=None, content=None, checkpoint_ref="ckpt-1", now=t())

    def approve(self, run: Run, t: Ticker) -> None:
        run.resolve_approval(approval_id=run.pending_approval["approval_id"], decision="approve", edits=None,
                             actor="alice", now=t())

    def resume(self, run: Run, t: Ticker) -> None:
        self.claim(run, t)
        run.resume(worker_id=self.worker, epoch=run.epoch, now=t())

    def complete(self, run: Run, t: Ticker) -> None:
        run.complete(worker_id=self.worker, epoch=run.epoch, output={"text": "done"}, now=t())

    def fail(self, run: Run, t: Ticker) -> None:
        run.fail(error="tool crashed", actor=f"worker:{self.worker}", now=t(), worker=(self.worker, run.epoch))

    def cancel(self, run: Run, t: Ticker) -> None:
        run.cancel(reason="not needed", actor="bob", now=t())


def both(*steps: Phase) -> Phase:
    """One phase made of several commands, saved together."""
    def run_all(run: Run, t: Ticker) -> None:
        for step in steps:
            step(run, t)
    return run_all


def save_in_phases(journal: Any, runs: Sequence[Run], lives: Sequence[Sequence[Phase]], t: Ticker) -> None:
    """Save the submitted ``runs``, then phase N of every life that has one, one transaction per phase."""
    journal._save(*runs)
    for phase in range(max((len(life) for life in lives), default=0)):
        moved = []
        for run, life in zip(runs, lives, strict=True):
            if phase < len(life):
                life[phase](run, t)
                moved.append(run)
        if moved:
            journal._save(*moved)
