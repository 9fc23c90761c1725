"""An independent model of a journal's runs, for the stateful test.

Written from DESIGN.md (the domain table, the fencing rule, Cancellation and
Recovery), not from the code: nothing here calls the ``Run`` aggregate or the
functions of ``domain/transitions.py``. Each command of the model says what the
journal must do with the same command: refuse it with a given error (and append
nothing), or accept it and append exactly the listed events, after which the
model holds the state every run must be in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runjournal import ApprovalNotFound, InvalidTransition, LeaseLost

LIVE = ("created", "queued", "claimed", "running", "waiting_for_approval", "resuming", "cancelling")
TERMINAL = ("completed", "failed", "cancelled")


def _to(target: str, *states: str) -> dict[str, frozenset[str]]:
    return {s: frozenset({target}) for s in states}


def _same(*states: str) -> dict[str, frozenset[str]]:
    return {s: frozenset({s}) for s in states}


# DESIGN.md's domain table, copied by hand: event -> {from state -> states it may lead to}.
TABLE: dict[str, dict[str, frozenset[str]]] = {
    "Queued": _to("queued", "created"),
    "Dequeued": _to("claimed", "queued", "resuming"),
    "Started": _to("running", "claimed"),
    "Resumed": _to("running", "claimed"),
    "LeaseRenewed": _same("claimed", "running", "cancelling"),
    "LeaseExpired": {
        "claimed": frozenset({"queued", "resuming"}),
        "running": frozenset({"queued", "failed"}),
    },
    "StepRecorded": _same("running"),
    "ApprovalRequested": _to("waiting_for_approval", "running"),
    "ApprovalResolved": _to("resuming", "waiting_for_approval"),
    "ApprovalExpired": {"waiting_for_approval": frozenset({"resuming", "failed"})},
    "RecoveryAttempted": _same("resuming", "queued"),
    "ResumeFailed": _to("resuming", "running"),
    "CancelRequested": _to("cancelling", "running", "claimed", "resuming"),
    "Cancelled": _to("cancelled", "created", "queued", "waiting_for_approval", "cancelling"),
    "Completed": _to("completed", "running"),
    "Failed": _to("failed", *LIVE),
}
EVENT_TYPES = frozenset({"Created", *TABLE})
CLAIMABLE = frozenset(TABLE["Dequeued"])  # a worker may claim a run in these states
LEASED = frozenset(TABLE["LeaseRenewed"])  # a worker holds the run's lease in these states

# Error messages DESIGN.md fixes.
STALE_RUNNING = "stale running run cannot be replayed safely"
MISSING_REQUEST = "missing persisted run request for queued run recovery"
STALE_WITHOUT_REQUEST = "missing persisted run request for stale running run recovery"
EXHAUSTED = "recovery attempts exhausted"


def legal(types: list[str]) -> bool:
    """True when a stored history is a walk of the table from ``Created``."""
    if not types or types[0] != "Created" or "Created" in types[1:]:
        return False
    states = {"created"}
    for event in types[1:]:
        states = {t for s in states for t in TABLE.get(event, {}).get(s, ())}
        if not states:
            return False
    return True


@dataclass(frozen=True)
class Outcome:
    """What the journal must do with a command: refuse it with ``error``, or append ``events``."""

    error: type[Exception] | None = None
    events: tuple[tuple[str, str], ...] = ()  # (run_id, event type), in order
    event: str | None = None  # the event an InvalidTransition must name
    run_id: str | None = None  # the run the error must name
    state: str | None = None  # the state an InvalidTransition must name
    holder: str | None = None  # the lease holder a LeaseLost must name

    @property
    def refused(self) -> bool:
        return self.error is not None


@dataclass
class ModelRun:
    """What the model knows of one run."""

    run_id: str
    order: int  # submission order: claims go by priority, then this
    priority: int
    input: Any
    parent_run_id: str | None = None
    state: str = "created"
    events: list[str] = field(default_factory=lambda: ["Created"])
    epoch: int = 0
    worker: str | None = None  # the last worker to claim it
    lease_expires_at: datetime | None = None
    approval: str | None = None  # the pending approval's id
    approvals: list[str] = field(default_factory=list)  # every approval id it was given
    deadline: datetime | None = None  # when the pending approval expires undecided
    on_expiry: str = "reject"  # what its expiry does: reject (resume) or fail
    resume: tuple[str, str | None] | None = None  # (resume_kind, decision) to resume with
    resumed: str | None = None  # the decision the running run was resumed with
    recovery_attempts: int = 0
    steps: int = 0
    output: Any = None
    error: str | None = None
    cancel_reason: str | None = None

    @property
    def version(self) -> int:
        return len(self.events)

    @property
    def holder(self) -> str | None:
        """The worker whose lease is current."""
        return self.worker if self.state in LEASED else None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


class Model:
    """The runs of one journal, as DESIGN.md says they must be."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.runs: dict[str, ModelRun] = {}
        self.by_key: dict[str, str] = {}  # idempotency key -> run id
        self.approval_run: dict[str, str] = {}  # approval id -> run id

    # -- helpers ----------------------------------------------------------

    def _emit(
        self, run: ModelRun, event: str, out: list[tuple[str, str]], target: str | None = None
    ) -> None:
        targets = TABLE[event].get(run.state, frozenset())
        assert targets, f"model bug: {event} in {run.state}"
        if target is None:
            assert len(targets) == 1, f"model bug: {event} in {run.state} needs a target"
            target = next(iter(targets))
        assert target in targets, f"model bug: {event} {run.state} -> {target}"
        run.state = target
        run.events.append(event)
        out.append((run.run_id, event))

    def _refuse_table(self, run: ModelRun, event: str) -> Outcome | None:
        if run.state not in TABLE[event]:
            return Outcome(InvalidTransition, event=event, run_id=run.run_id, state=run.state)
        return None

    def _refuse(self, run: ModelRun, event: str, worker: str, epoch: int) -> Outcome | None:
        """The table speaks first, then the fence."""
        refused = self._refuse_table(run, event)
        if refused is not None:
            return refused
        if run.holder != worker or run.epoch != epoch:
            return Outcome(LeaseLost, run_id=run.run_id, holder=run.holder)
        return None

    def _begin_event(self, run: ModelRun) -> str:
        return "Resumed" if run.resume is not None else "Started"

    def _begin(self, run: ModelRun, out: list[tuple[str, str]]) -> None:
        event = self._begin_event(run)
        run.resumed = run.resume[1] if run.resume is not None else None
        run.resume = None
        self._emit(run, event, out)

    # -- submitting -------------------------------------------------------

    def submit(
        self,
        run_id: str,
        *,
        input: Any,
        priority: int,
        refuse: str | None = None,
        key: str | None = None,
        parent_run_id: str | None = None,
    ) -> Outcome:
        """A new run (``queued``, or ``failed`` at once when refused by policy)."""
        if key is not None and key in self.by_key:
            assert run_id == self.by_key[key], (
                "a repeated idempotency key must return the first run"
            )
            return Outcome()
        run = ModelRun(
            run_id,
            order=len(self.runs),
            priority=priority,
            input=input,
            parent_run_id=parent_run_id,
        )
        self.runs[run_id] = run
        if key is not None:
            self.by_key[key] = run_id
        out = [(run_id, "Created")]
        if refuse is None:
            self._emit(run, "Queued", out)
        else:
            run.error = refuse
            self._emit(run, "Failed", out)
        return Outcome(events=tuple(out))

    # -- claiming -----------------------------------------------------------

    def queue(self) -> list[str]:
        """Claimable runs, best first: priority, then first come."""
        live = [r for r in self.runs.values() if r.state in CLAIMABLE]
        return [r.run_id for r in sorted(live, key=lambda r: (-r.priority, r.order))]

    def leases(self) -> dict[str, tuple[str | None, int, datetime]]:
        """Current leases: run -> (worker, epoch, expiry)."""
        return {
            r.run_id: (r.worker, r.epoch, r.lease_expires_at)
            for r in self.runs.values()
            if r.holder is not None and r.lease_expires_at is not None
        }

    def claim(
        self, worker: str, lease_seconds: float, *, count: int = 1, start: bool = False
    ) -> tuple[list[str], Outcome]:
        """Claim the best ``count`` claimable runs; returns their ids."""
        chosen = self.queue()[:count]
        out: list[tuple[str, str]] = []
        for run_id in chosen:
            run = self.runs[run_id]
            run.epoch += 1
            run.worker = worker
            run.lease_expires_at = self.now + timedelta(seconds=lease_seconds)
            self._emit(run, "Dequeued", out)
            if start:
                self._begin(run, out)
        return chosen, Outcome(events=tuple(out))

    # -- worker commands ------------------------------------------------------

    def start(self, run_id: str, worker: str, epoch: int) -> Outcome:
        run = self.runs[run_id]
        refused = self._refuse(run, self._begin_event(run), worker, epoch)
        if refused:
            return refused
        out: list[tuple[str, str]] = []
        self._begin(run, out)
        return Outcome(events=tuple(out))

    def heartbeat(self, run_id: str, worker: str, epoch: int, lease_seconds: float) -> Outcome:
        run = self.runs[run_id]
        refused = self._refuse(run, "LeaseRenewed", worker, epoch)
        if refused:
            return refused
        run.lease_expires_at = self.now + timedelta(seconds=lease_seconds)
        out: list[tuple[str, str]] = []
        self._emit(run, "LeaseRenewed", out)
        return Outcome(events=tuple(out))

    def record_step(self, run_id: str, worker: str, epoch: int) -> Outcome:
        run = self.runs[run_id]
        refused = self._refuse(run, "StepRecorded", worker, epoch)
        if refused:
            return refused
        run.steps += 1
        out: list[tuple[str, str]] = []
        self._emit(run, "StepRecorded", out)
        return Outcome(events=tuple(out))

    def request_approval(
        self, run_id: str, worker: str, epoch: int, expires_in: float | None = None, on_expiry: str = "reject",
    ) -> Outcome:
        """Accepted: the caller then tells the model the id with ``approval_given``."""
        run = self.runs[run_id]
        refused = self._refuse(run, "ApprovalRequested", worker, epoch)
        if refused:
            return refused
        run.lease_expires_at = None  # the slot is released while a person decides
        run.deadline = self.now + timedelta(seconds=expires_in) if expires_in is not None else None
        run.on_expiry = on_expiry
        out: list[tuple[str, str]] = []
        self._emit(run, "ApprovalRequested", out)
        return Outcome(events=tuple(out))

    def approval_given(self, run_id: str, approval_id: str) -> None:
        assert approval_id not in self.approval_run, f"approval id {approval_id} given twice"
        self.approval_run[approval_id] = run_id
        run = self.runs[run_id]
        run.approval = approval_id
        run.approvals.append(approval_id)

    def resolve_approval(self, approval_id: str, decision: str) -> Outcome:
        run_id = self.approval_run.get(approval_id)
        if run_id is None:
            return Outcome(ApprovalNotFound)
        run = self.runs[run_id]
        if run.approval != approval_id:  # resolved before, or the run moved on
            return Outcome(
                InvalidTransition, event="ApprovalResolved", run_id=run_id, state=run.state
            )
        run.approval = None
        run.resume = ("cross-restart", decision)
        out: list[tuple[str, str]] = []
        self._emit(run, "ApprovalResolved", out)
        return Outcome(events=tuple(out))

    def complete(self, run_id: str, worker: str, epoch: int, output: Any) -> Outcome:
        run = self.runs[run_id]
        refused = self._refuse(run, "Completed", worker, epoch)
        if refused:
            return refused
        run.output = output
        run.error = None  # a failed resume that a retry completed
        run.lease_expires_at = None
        out: list[tuple[str, str]] = []
        self._emit(run, "Completed", out)
        return Outcome(events=tuple(out))

    def complete_many(self, items: list[tuple[str, str, int, Any]]) -> list[Outcome]:
        """One outcome per item, each judged after the items before it (one save for all)."""
        return [
            self.complete(run_id, worker, epoch, output) for run_id, worker, epoch, output in items
        ]

    def fail(self, run_id: str, error: str, *, worker: tuple[str, int] | None = None) -> Outcome:
        """A worker's failure (fenced) or an operator's / recovery's (not fenced)."""
        run = self.runs[run_id]
        if worker is None:
            refused = self._refuse_table(run, "Failed")
        else:
            refused = self._refuse(run, "Failed", *worker)
        if refused:
            return refused
        out: list[tuple[str, str]] = []
        self._fail(run, error, out)
        return Outcome(events=tuple(out))

    def fail_agent(self, run_id: str, error: str, worker: tuple[str, int], retries: int) -> Outcome:
        """The agent failed: a resumed decision with retries left waits, ``resuming``, for a retry."""
        run = self.runs[run_id]
        if run.resumed is None or run.recovery_attempts >= retries or run.state != "running":
            return self.fail(run_id, error, worker=worker)
        refused = self._refuse(run, "ResumeFailed", *worker)
        if refused:
            return refused
        run.recovery_attempts += 1
        run.error = error
        run.lease_expires_at = None
        run.resume = ("startup-recovery", run.resumed)
        run.resumed = None
        out: list[tuple[str, str]] = []
        self._emit(run, "ResumeFailed", out)
        return Outcome(events=tuple(out))

    def _fail(
        self, run: ModelRun, error: str, out: list[tuple[str, str]], event: str = "Failed"
    ) -> None:
        run.error = error
        run.lease_expires_at = None
        run.approval = None
        self._emit(run, event, out, "failed")

    def finish_cancel(self, run_id: str, worker: str, epoch: int) -> Outcome:
        run = self.runs[run_id]
        refused = self._refuse(run, "Cancelled", worker, epoch)
        if refused:
            return refused
        out: list[tuple[str, str]] = []
        self._cancelled(run, run.cancel_reason, out)
        return Outcome(events=tuple(out))

    def _cancelled(self, run: ModelRun, reason: str | None, out: list[tuple[str, str]]) -> None:
        run.cancel_reason = reason
        run.lease_expires_at = None
        run.approval = None
        self._emit(run, "Cancelled", out)

    # -- operators --------------------------------------------------------------

    def cancel(self, run_id: str, reason: str | None) -> Outcome:
        """DESIGN.md, Cancellation: at once when no worker holds it, else ask the worker."""
        run = self.runs[run_id]
        out: list[tuple[str, str]] = []
        if run.terminal or run.state == "cancelling":
            return Outcome()  # returned as it is
        if run.state in ("claimed", "running"):
            run.cancel_reason = reason
            self._emit(run, "CancelRequested", out)
        elif run.state == "resuming":  # nobody holds it to stop it: requested and finished at once
            run.cancel_reason = reason
            self._emit(run, "CancelRequested", out)
            self._cancelled(run, reason, out)
        else:
            self._cancelled(run, reason, out)
        return Outcome(events=tuple(out))

    def attempt_recovery(self, run_id: str, resume_kind: str) -> Outcome:
        run = self.runs[run_id]
        refused = self._refuse_table(run, "RecoveryAttempted")
        if refused:
            return refused
        run.recovery_attempts += 1
        run.resume = (resume_kind, run.resume[1] if run.resume else None)
        out: list[tuple[str, str]] = []
        self._emit(run, "RecoveryAttempted", out)
        return Outcome(events=tuple(out))

    # -- time, leases, recovery ------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def expire_approvals(self) -> tuple[set[str], Outcome]:
        """Every pending approval whose deadline passed: rejected (the run resumes) or the run failed."""
        handled: set[str] = set()
        out: list[tuple[str, str]] = []
        for run in self.runs.values():
            if run.state != "waiting_for_approval" or run.approval is None or run.deadline is None:
                continue
            if run.deadline > self.now:
                continue
            handled.add(run.run_id)
            if run.on_expiry == "fail":
                error = f"approval {run.approval} expired undecided at {run.deadline.isoformat()}"
                self._fail(run, error, out, event="ApprovalExpired")
            else:
                run.approval = None
                run.resume = ("cross-restart", "reject")
                self._emit(run, "ApprovalExpired", out, "resuming")
        return handled, Outcome(events=tuple(out))

    def expire_leases(self, *, replay: bool, grace: float = 0) -> tuple[set[str], Outcome]:
        """Every lease that ran out (a running run's only after ``grace`` more): the Recovery rules."""
        handled: set[str] = set()
        out: list[tuple[str, str]] = []
        for run_id, (_, _, expires) in self.leases().items():
            run = self.runs[run_id]
            if expires > self.now:
                continue
            if run.state == "running" and expires + timedelta(seconds=grace) > self.now:
                continue
            handled.add(run_id)
            run.lease_expires_at = None
            if run.state == "claimed":
                decided = run.resume is not None and run.resume[1] is not None
                self._emit(run, "LeaseExpired", out, "resuming" if decided else "queued")
            elif run.state == "running":
                if replay and run.input is not None:
                    run.resume = ("startup-running-recovery", None)
                    self._emit(run, "LeaseExpired", out, "queued")
                else:
                    self._fail(run, STALE_RUNNING if not replay else STALE_WITHOUT_REQUEST, out, event="LeaseExpired")
            else:  # cancelling: its worker died before it finished the cancel
                self._cancelled(run, run.cancel_reason, out)
        return handled, Outcome(events=tuple(out))

    def recover(self, *, replay: bool, grace: float, max_attempts: int) -> Outcome:
        """One startup-recovery pass (DESIGN.md, Recovery)."""
        _, expired = self.expire_leases(replay=replay, grace=grace)
        out = list(expired.events)
        for run in self.runs.values():
            if run.state == "queued" and run.input is None:
                self._fail(run, MISSING_REQUEST, out)
            elif run.state == "resuming" and run.events[-1] not in ("RecoveryAttempted", "ResumeFailed"):
                if run.recovery_attempts >= max_attempts:
                    self._fail(run, EXHAUSTED, out)
                else:
                    out.extend(self.attempt_recovery(run.run_id, "startup-recovery").events)
        return Outcome(events=tuple(out))
