"""A running run's writes, each tried again while the store is unavailable, and never made twice.

A step, an approval request or a failure the store refuses (a full disk, a locked
file, a dropped connection) waits, backed off, for up to ``store_outage_seconds``
(see ``outage.py``); the agent waits with it. A save that raised may still have
been committed (a connection lost while the commit's answer was on its way, a
sync that failed after SQLite wrote the WAL frames), so before each new try the
log is read: when it already holds the write, its result is returned instead.
Only this claim appends those events (the lease fences every other worker), so
finding them in the log since the claim started the run says whether it landed
(the run's state would not: a decision or a cancel may have moved it on since).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from ..app.journal import Journal
from ..app.models import Claim, RecordedEvent, RunSnapshot
from .outage import through_outage

_STARTS = ("Started", "Resumed")  # the events with which a claim begins to run
_FAILURES = ("Failed", "ResumeFailed")  # what ``Journal.fail`` appends (a lease that ran out is not one)
T = TypeVar("T")


class RunWrites:
    """The journal commands of one execution that ride out a store outage."""

    def __init__(self, journal: Journal, store_outage_seconds: float) -> None:
        self.journal = journal
        self.store_outage_seconds = store_outage_seconds
        self.steps_saved = 0  # steps this execution has in the log

    async def record_steps(self, claim: Claim, steps: Sequence[tuple[str, Any]]) -> None:
        """``Journal.record_steps``, once."""
        await self._durably(claim, lambda: self.journal.record_steps(claim, steps),
                            landed=lambda: self._steps_landed(claim, len(steps)))
        self.steps_saved += len(steps)

    async def request_approval(self, claim: Claim, **request: Any) -> str:
        """``Journal.request_approval``, once: the approval's id."""
        def landed() -> str | None:
            asked = [e for e in self._since_start(claim) if e.type == "ApprovalRequested"]
            return str(asked[-1].data["approval_id"]) if asked else None

        return await self._durably(claim, lambda: self.journal.request_approval(claim, **request), landed=landed)

    async def fail(
        self, claim: Claim, *, error: str, stage: Literal["stream", "invoke"] | None, retries: int
    ) -> RunSnapshot:
        """``Journal.fail``, once: the run as the failure left it."""
        def landed() -> RunSnapshot | None:
            failed = any(e.type in _FAILURES for e in self._since_start(claim))
            return self.journal.get_run(claim.run_id) if failed else None

        return await self._durably(claim, lambda: self.journal.fail(claim, error=error, stage=stage, retries=retries),
                                   landed=landed)

    async def _durably(self, claim: Claim, write: Callable[[], T], *, landed: Callable[[], T | None]) -> T:
        """``write``, tried again while the store is unavailable; ``landed`` (read after a failed try)
        returns the write's result when that try was committed all the same, None when it was not."""
        tried = False

        async def attempt() -> T:
            nonlocal tried
            if tried and (found := landed()) is not None:
                return found
            tried = True
            return write()

        return await through_outage(attempt, seconds=self.store_outage_seconds,
                                    who={"worker_id": claim.worker_id, "run_id": claim.run_id},
                                    stopped=f"run {claim.run_id} left to its lease")

    def _since_start(self, claim: Claim) -> list[RecordedEvent]:
        """The run's events after the one with which ``claim`` began to run it."""
        events = self.journal.history(claim.run_id)
        for i in range(len(events) - 1, -1, -1):
            if events[i].type in _STARTS and events[i].data.get("epoch") == claim.epoch:
                return events[i + 1:]
        return []

    def _steps_landed(self, claim: Claim, count: int) -> RunSnapshot | None:
        logged = sum(e.type == "StepRecorded" for e in self._since_start(claim))
        return self.journal.get_run(claim.run_id) if logged >= self.steps_saved + count else None

