"""Startup recovery: make every non-terminal run either runnable or finished.

Invariant: recovery reads the ``recovery_intents`` view (one row per live run),
never the whole log, and appends each transition at most once however many
processes run it at the same time: every step re-checks the run it loaded and
a lost race is a ``ConcurrencyConflict`` that simply means someone else did it.
Its transitions are group commits: the expired leases in one save, then the
failures and recovery attempts in one more; a lost race in a group has each run
saved on its own, so it costs no other run its transition.

Rules (DESIGN.md, Recovery):
- expired leases first: ``claimed`` -> ``queued`` (or back to ``resuming``);
  stale ``running`` -> replayed if the agent supports replay, else failed
  "stale running run cannot be replayed safely" (or "missing persisted run
  request for stale running run recovery" when it has no request to replay);
- ``queued`` with no persisted request (``submit`` refuses ``input=None``, so
  only stores from earlier releases hold one) -> failed
  "missing persisted run request for queued run recovery"; otherwise left for
  the workers, who run it from its persisted request;
- ``resuming`` -> ``RecoveryAttempted`` (then resumed with
  ``resume_kind=startup-recovery``) while attempts < max, else failed
  "recovery attempts exhausted"; a run whose last event already counted its
  retry (``RecoveryAttempted``, or ``ResumeFailed``: the agent failed a resume)
  is left for the workers;
- ``waiting_for_approval`` -> untouched: it waits for a person.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from ..app.journal import Journal
from ..domain import RunNotFound, RunState

MISSING_REQUEST = "missing persisted run request for queued run recovery"
EXHAUSTED = "recovery attempts exhausted"
# Events after which a resuming run already has its next retry counted.
RETRY_SCHEDULED = frozenset({"RecoveryAttempted", "ResumeFailed"})


class RecoveryReport(BaseModel):
    """What one recovery pass did, run by run."""

    expired: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    resumed: list[str] = Field(default_factory=list)
    left: int = 0


def recover(journal: Journal, config: Any, *, can_replay: Callable[[str], bool]) -> RecoveryReport:
    """One recovery pass (``config`` is the workspace's recovery section)."""
    report = RecoveryReport()
    if not config.enabled:
        return report
    grace = timedelta(seconds=config.stale_running_after_seconds)
    while expired := journal.expire_leases(can_replay=can_replay, running_grace=grace):
        report.expired.extend(expired)  # in batches: a pass leaves no expired lease behind
    for run_id in report.expired:  # a stale run that cannot be replayed was failed by its expiry
        run = journal.get_run(run_id)
        if run.state == RunState.FAILED and run.error:
            report.failed[run_id] = run.error
    # Every transition below is decided first and appended in ONE save (a group commit).
    failures: dict[str, str] = {}
    attempts: list[str] = []
    for intent in journal.recovery_intents():
        try:
            if intent.intent == "execute" and not intent.has_request:
                failures[intent.run_id] = MISSING_REQUEST
            elif intent.intent == "resume" and config.resume_resuming_runs_on_startup:
                _plan_resuming(journal, intent.run_id, config.max_recovery_attempts, failures, attempts, report)
            else:
                report.left += 1
        except RunNotFound:
            continue
    refused = journal.recover_many(failures=failures, attempts=attempts)
    for run_id, error in failures.items():
        if refused[run_id] is None:
            report.failed[run_id] = error
    report.resumed.extend(run_id for run_id in attempts if refused[run_id] is None)
    # A refusal (ConcurrencyConflict, InvalidTransition, RunNotFound) means another process recovered it first.
    return report


def _plan_resuming(
    journal: Journal, run_id: str, max_attempts: int, failures: dict[str, str], attempts: list[str],
    report: RecoveryReport,
) -> None:
    run = journal.get_run(run_id)
    if run.state != RunState.RESUMING or journal.history(run_id)[-1].type in RETRY_SCHEDULED:
        report.left += 1  # a retry is already counted and waits for a worker: nothing more to append
    elif run.recovery_attempts >= max_attempts:
        failures[run_id] = EXHAUSTED
    else:
        attempts.append(run_id)
