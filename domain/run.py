"""The ``Run`` aggregate: public commands that decide, events that record.

Every command checks the transition table first and then, for worker commands,
the lease fence, before it triggers anything: a refused command appends
nothing, and an event the table forbids is reported as ``InvalidTransition``
whoever asks (a stale claim on a completed run included). Time
always arrives as ``now``; the aggregate never reads a clock.

Over 400 lines: one command per event of the table, each with its checks, kept on
the aggregate they guard (the events and their folds are ``events.py`` already).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from . import chain, events
from .errors import InvalidInput, InvalidTransition, LeaseLost
from .transitions import GRACED_STATES, LEASED_STATES, TERMINAL_STATES, RunState, check, is_allowed

EXPIRY_OUTCOMES = ("reject", "fail")  # what an approval's deadline does when it passes undecided
EXPIRY_ACTOR = "system:approvals"

RESUME_KINDS = ("cross-restart", "startup-recovery", "startup-running-recovery")
STEP_KINDS = ("step", "tool_result", "message", "reasoning", "output")
DECISIONS = ("approve", "reject", "edit")
# What a run records as the agent asked for when routing chose it (a name no workspace may define).
AUTO_AGENT = "auto"
STALE_NOT_REPLAYABLE = "stale running run cannot be replayed safely"
STALE_WITHOUT_REQUEST = "missing persisted run request for stale running run recovery"


@lru_cache(maxsize=65_536)
def id_text(run_id: UUID) -> str:
    """A run id as text, formatted once: a run's id is read as text many times per command."""
    return str(run_id)


class Run(Aggregate):
    """One agent run, rebuilt from its events."""

    TOPIC = "runjournal.Run"
    INITIAL_VERSION = 1
    class_version = 4  # of the state a snapshot holds

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Snapshots taken before a run remembered the resume it was started with."""
        state["resumed_with"] = None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """Snapshots taken before a run kept its request as asked (see ``Created.upcast_v1_v2``)."""
        state["requested_agent_id"] = None
        state["execution_mode"] = None
        state["invocation"] = None

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        """Snapshots taken before forks (see ``Created.upcast_v2_v3``)."""
        state["fork"] = None

    Event = events.RunEvent
    Created = events.Created
    Queued = events.Queued
    Dequeued = events.Dequeued
    Started = events.Started
    Resumed = events.Resumed
    LeaseRenewed = events.LeaseRenewed
    LeaseExpired = events.LeaseExpired
    StepRecorded = events.StepRecorded
    ApprovalRequested = events.ApprovalRequested
    ApprovalResolved = events.ApprovalResolved
    ApprovalExpired = events.ApprovalExpired
    RecoveryAttempted = events.RecoveryAttempted
    ResumeFailed = events.ResumeFailed
    CancelRequested = events.CancelRequested
    Cancelled = events.Cancelled
    Completed = events.Completed
    Failed = events.Failed

    # Assigned by the events (see events.py); declared for readers and type checkers.
    state: str
    chain: str
    thread_id: str
    agent_id: str
    requested_agent_id: str | None
    execution_mode: str | None
    input: Any
    invocation: dict[str, Any] | None
    priority: int
    idempotency_key: str | None
    parent_run_id: str | None
    parent_version: int | None
    fork: dict[str, Any] | None  # what a fork changed, and its parent's chain at the fork (see Created)
    created_by: str
    epoch: int
    worker_id: str | None
    lease_expires_at: datetime | None
    pending_approval: dict[str, Any] | None
    pending_resume: dict[str, Any] | None
    resumed_with: dict[str, Any] | None  # the resume this execution was started with (None: Started)
    approvals_requested: int
    recovery_attempts: int
    steps: int
    output: Any
    error: str | None
    cancel_reason: str | None

    def __init__(self) -> None:
        """State is assigned by ``Created.apply``; see ``Run.submit``."""

    # -- chain ----------------------------------------------------------

    # Every new event records the chain format its link uses (``chain.FORMAT_FIELD``),
    # as a stored data field beside the declared ones: old events, without it,
    # keep verifying with format 1.

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        kwargs["chain"] = chain.link(
            chain.GENESIS,
            event_type=event_class.__name__,
            run_id=str(id),
            version=cls.INITIAL_VERSION,
            timestamp=kwargs["timestamp"],
            class_version=event_class.class_version,
            data={**kwargs, "originator_topic": cls.TOPIC, chain.FORMAT_FIELD: chain.CURRENT_FORMAT},
        )
        run = super()._create(event_class, id=id, **kwargs)
        _record_format(run.pending_events[-1])
        return run

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """Trigger an event with its chain link; ``timestamp`` is required."""
        kwargs["chain"] = chain.link(
            self.chain,
            event_type=event_class.__name__,
            run_id=id_text(self.id),
            version=self.version + 1,
            timestamp=kwargs["timestamp"],
            class_version=event_class.class_version,
            data={**kwargs, chain.FORMAT_FIELD: chain.CURRENT_FORMAT},
        )
        super().trigger_event(event_class, **kwargs)
        _record_format(self.pending_events[-1])

    # -- derived facts ----------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id as a string."""
        return id_text(self.id)

    @property
    def is_terminal(self) -> bool:
        """True when no event can follow."""
        return self.state in TERMINAL_STATES

    @property
    def lease_holder(self) -> str | None:
        """The worker whose lease is current, if any."""
        return self.worker_id if self.state in LEASED_STATES else None

    def _check(self, event: str, target: str | None = None, why: str = "") -> RunState:
        if why:
            raise InvalidTransition(self.run_id, self.state, event, target=target, why=why)
        return check(self.run_id, self.state, event, target)

    def _fence(self, worker_id: str, epoch: int) -> None:
        if self.lease_holder != worker_id or self.epoch != epoch:
            raise LeaseLost(self.run_id, worker_id, epoch, holder=self.lease_holder)

    # -- commands -------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        run_id: UUID,
        thread_id: str,
        agent_id: str,
        input: Any,  # noqa: A002
        priority: int,
        idempotency_key: str | None,
        actor: str,
        now: datetime,
        parent_run_id: str | None = None,
        parent_version: int | None = None,
        requested_agent_id: str | None = None,
        execution_mode: str | None = None,
        invocation: dict[str, Any] | None = None,
        fork: dict[str, Any] | None = None,
    ) -> Run:
        """Record a new run with its persisted request (state ``created``).

        ``requested_agent_id`` is what the caller asked for (default: ``agent_id``),
        ``invocation`` the envelope the agent gets beside ``input``, ``fork`` what a fork
        of ``parent_run_id`` at ``parent_version`` changed.
        """
        run: Run = cls._create(
            cls.Created,
            id=run_id,
            timestamp=now,
            actor=actor,
            thread_id=thread_id,
            agent_id=agent_id,
            requested_agent_id=requested_agent_id or agent_id,
            execution_mode=execution_mode,
            input=input,
            invocation=invocation,
            priority=priority,
            idempotency_key=idempotency_key,
            parent_run_id=parent_run_id,
            parent_version=parent_version,
            fork=fork,
        )
        return run

    @classmethod
    def submit(cls, *, actor: str, now: datetime, **request: Any) -> Run:
        """Create a run and queue it: two events, meant to be saved together."""
        run = cls.create(actor=actor, now=now, **request)
        run.enqueue(actor=actor, now=now)
        return run

    def enqueue(self, *, actor: str, now: datetime) -> None:
        """Make a created run claimable."""
        self._check("Queued")
        self.trigger_event(self.Queued, timestamp=now, actor=actor, priority=self.priority)

    def dequeue(self, *, worker_id: str, lease_expires_at: datetime, now: datetime) -> int:
        """Claim the run for a worker; returns the new epoch."""
        self._check("Dequeued")
        epoch = self.epoch + 1
        self.trigger_event(
            self.Dequeued,
            timestamp=now,
            actor=f"worker:{worker_id}",
            worker_id=worker_id,
            epoch=epoch,
            lease_expires_at=lease_expires_at,
        )
        return epoch

    def start(self, *, worker_id: str, epoch: int, now: datetime) -> None:
        """Start a claimed run that has no decision to resume with."""
        self._check("Started")
        self._fence(worker_id, epoch)
        if self.pending_resume:
            self._check("Started", why="it has a pending resume; use resume")
        self.trigger_event(
            self.Started, timestamp=now, actor=f"worker:{worker_id}", worker_id=worker_id, epoch=epoch
        )

    def resume(self, *, worker_id: str, epoch: int, now: datetime) -> dict[str, Any]:
        """Resume a claimed run with its pending decision; returns that resume."""
        self._check("Resumed")
        self._fence(worker_id, epoch)
        pending = self.pending_resume
        if pending is None:
            self._check("Resumed", why="there is nothing to resume; use start")
        assert pending is not None
        self.trigger_event(
            self.Resumed,
            timestamp=now,
            actor=f"worker:{worker_id}",
            worker_id=worker_id,
            epoch=epoch,
            resume_kind=pending["resume_kind"],
            decision=pending["decision"],
        )
        return pending

    def renew_lease(
        self, *, worker_id: str, epoch: int, lease_expires_at: datetime, now: datetime
    ) -> None:
        """Extend the current lease."""
        self._check("LeaseRenewed")
        self._fence(worker_id, epoch)
        self.trigger_event(
            self.LeaseRenewed,
            timestamp=now,
            actor=f"worker:{worker_id}",
            worker_id=worker_id,
            epoch=epoch,
            lease_expires_at=lease_expires_at,
        )

    def lease_outcome(self, *, can_replay: bool) -> tuple[RunState, str, str | None]:
        """Where an expired lease sends this run: (state, reason, resume kind)."""
        if self.state == RunState.CLAIMED:
            if self.pending_resume and self.pending_resume["decision"] is not None:
                return RunState.RESUMING, "lease expired before the run resumed", None
            return RunState.QUEUED, "lease expired before the run started", None
        if not can_replay:
            return RunState.FAILED, STALE_NOT_REPLAYABLE, None
        if self.input is None:  # only runs stored before submit required an input
            return RunState.FAILED, STALE_WITHOUT_REQUEST, None
        return RunState.QUEUED, "lease expired while running; replaying", RESUME_KINDS[2]

    def expire_lease(self, *, now: datetime, can_replay: bool) -> RunState:
        """Apply an expired lease: requeue, resume or fail as the rules say."""
        if self.lease_expires_at is None or self.lease_expires_at > now:
            self._check("LeaseExpired", why="the lease has not expired")
        target, reason, resume_kind = self.lease_outcome(can_replay=can_replay)
        self._check("LeaseExpired", target)
        self.trigger_event(
            self.LeaseExpired,
            timestamp=now,
            actor="system:lease",
            epoch=self.epoch,
            reason=reason,
            to_state=str(target),
            resume_kind=resume_kind,
        )
        return target

    def record_step(self, *, worker_id: str, epoch: int, kind: str, content: Any, now: datetime) -> None:
        """Record a step, tool result or message of the running agent."""
        self._check("StepRecorded")
        self._fence(worker_id, epoch)
        self.trigger_event(
            self.StepRecorded, timestamp=now, actor=f"worker:{worker_id}", kind=kind, content=content
        )

    def request_approval(
        self,
        *,
        worker_id: str,
        epoch: int,
        tool_name: str,
        tool_args: Any,
        tool_call_id: str | None,
        content: Any,
        checkpoint_ref: str | None,
        now: datetime,
        output: str | None = None,
        deadline: datetime | None = None,
        assignees: list[str] | None = None,
        on_expiry: str = "reject",
    ) -> str:
        """Pause the run for a person's decision (``output``: what the agent said so far); returns the approval id.

        ``deadline``: when it expires undecided (``on_expiry``: it rejects, or fails the run);
        ``assignees``: who alone may decide.
        """
        self._check("ApprovalRequested")
        self._fence(worker_id, epoch)
        if on_expiry not in EXPIRY_OUTCOMES:
            raise InvalidInput("on_expiry", f"an expiry rejects or fails (one of {', '.join(EXPIRY_OUTCOMES)})")
        approval_id = f"{self.run_id}.a{self.approvals_requested + 1}"
        self.trigger_event(
            self.ApprovalRequested,
            timestamp=now,
            actor=f"worker:{worker_id}",
            approval_id=approval_id,
            tool_name=tool_name,
            tool_args=tool_args,
            tool_call_id=tool_call_id,
            args_digest=chain.digest(tool_args),
            content=content,
            checkpoint_ref=checkpoint_ref,
            output=output,
            deadline=deadline.isoformat() if deadline is not None else None,
            assignees=list(assignees) if assignees else None,
            on_expiry=on_expiry if deadline is not None else None,
        )
        return approval_id

    def resolve_approval(
        self, *, approval_id: str, decision: str, edits: Any, actor: str, now: datetime
    ) -> None:
        """Record a person's decision; the run goes on to be resumed."""
        pending = self.pending_approval
        if pending is None or pending["approval_id"] != approval_id:
            self._check("ApprovalResolved", why=f"approval {approval_id} is not pending")
        self._check("ApprovalResolved")
        assert pending is not None
        assignees = pending.get("assignees")
        if assignees and actor not in assignees:
            raise InvalidInput("actor", f"{actor} may not decide approval {approval_id}: it is assigned to "
                               f"{', '.join(assignees)}")
        edited_args = None
        if decision == "edit":
            edited_args = {**pending["tool_args"], **edits} if isinstance(edits, dict) else edits
        self.trigger_event(
            self.ApprovalResolved,
            timestamp=now,
            actor=actor,
            approval_id=approval_id,
            decision=decision,
            edits=edits,
            edited_args=edited_args,
            edited_args_digest=None if edited_args is None else chain.digest(edited_args),
        )

    def expire_approval(self, *, approval_id: str, now: datetime) -> bool:
        """Expire the pending approval whose deadline has passed; False when it is not due (or another is pending).

        Raises ``InvalidTransition`` when the run waits for no approval (it was decided, or cancelled, first).
        """
        pending = self.pending_approval or {}
        target = RunState.FAILED if pending.get("on_expiry") == "fail" else RunState.RESUMING
        self._check("ApprovalExpired", target)
        deadline = pending.get("deadline")
        if pending.get("approval_id") != approval_id or deadline is None or datetime.fromisoformat(deadline) > now:
            return False
        self.trigger_event(self.ApprovalExpired, timestamp=now, actor=EXPIRY_ACTOR, approval_id=approval_id,
                           deadline=deadline, to_state=str(target))
        return True

    def attempt_recovery(self, *, resume_kind: str, now: datetime) -> int:
        """Count one more recovery attempt; returns its number."""
        self._check("RecoveryAttempted")
        attempt = self.recovery_attempts + 1
        self.trigger_event(
            self.RecoveryAttempted,
            timestamp=now,
            actor="system:recovery",
            attempt=attempt,
            resume_kind=resume_kind,
        )
        return attempt

    def fail_agent(
        self, *, worker_id: str, epoch: int, error: str, stage: str | None, retries: int, now: datetime
    ) -> RunState:
        """The agent failed: a resumed decision with retries left waits to be retried, else the run fails.

        ``retries`` is how many times a failed resume may be retried (the workspace's
        ``max_recovery_attempts``); every retry, scheduled here or by startup recovery,
        counts as one of the run's recovery attempts.
        """
        resumed = (self.resumed_with or {}).get("decision") is not None
        if resumed and self.recovery_attempts < retries and is_allowed(self.state, "ResumeFailed"):
            self.fail_resume(worker_id=worker_id, epoch=epoch, error=error, stage=stage, now=now)
            return RunState.RESUMING
        self.fail(error=error, actor=f"worker:{worker_id}", now=now, worker=(worker_id, epoch), stage=stage)
        return RunState.FAILED

    def fail_resume(self, *, worker_id: str, epoch: int, error: str, stage: str | None, now: datetime) -> None:
        """Record that the agent failed while resuming a decision; the run waits, ``resuming``, for a retry."""
        self._check("ResumeFailed")
        self._fence(worker_id, epoch)
        if (self.resumed_with or {}).get("decision") is None:
            self._check("ResumeFailed", why="the run was not resumed with a decision")
        self.trigger_event(
            self.ResumeFailed,
            timestamp=now,
            actor=f"worker:{worker_id}",
            error=error,
            stage=stage,
            attempt=self.recovery_attempts + 1,
            resume_kind=RESUME_KINDS[1],
        )

    @property
    def can_be_cancelled(self) -> bool:
        """True when ``cancel_as_asked`` has something to do (the run is not over, nor cancelling already)."""
        return (self.lease_holder is None and is_allowed(self.state, "Cancelled")) or is_allowed(
            self.state, "CancelRequested")

    def cancel_as_asked(self, *, reason: str | None, actor: str, now: datetime) -> None:
        """Cancel: at once when no worker holds the run, else ask its worker to stop it."""
        held = self.lease_holder is not None
        if not held and is_allowed(self.state, "Cancelled"):
            self.cancel(reason=reason, actor=actor, now=now)
            return
        self.request_cancel(reason=reason, actor=actor, now=now)
        if not held:  # nobody will stop it (claimed or resuming, its lease gone): finish in the same save
            self.cancel(reason=reason, actor=actor, now=now)

    def expire_if_due(self, *, now: datetime, running_grace: timedelta, can_replay: bool) -> bool:
        """Act on a lease that ran out (on a run that may fail of it, once ``running_grace`` passed too).

        The run is requeued, resumed or failed as ``lease_outcome`` says; a run whose worker
        died while cancelling it is cancelled. False when nothing is due.
        """
        expires = self.lease_expires_at
        if expires is None or expires > now or (self.state in GRACED_STATES and expires + running_grace > now):
            return False
        if is_allowed(self.state, "LeaseExpired"):
            self.expire_lease(now=now, can_replay=can_replay)
        elif is_allowed(self.state, "Cancelled"):
            self.cancel(reason=self.cancel_reason, actor="system:lease", now=now)
        else:
            return False
        return True

    def request_cancel(self, *, reason: str | None, actor: str, now: datetime) -> None:
        """Ask the worker that holds the run to stop it."""
        self._check("CancelRequested")
        self.trigger_event(self.CancelRequested, timestamp=now, actor=actor, reason=reason)

    def cancel(self, *, reason: str | None, actor: str, now: datetime) -> None:
        """Cancel at once (not held by a worker, or the worker has stopped)."""
        self._check("Cancelled")
        self.trigger_event(self.Cancelled, timestamp=now, actor=actor, reason=reason)

    def finish_cancel(self, *, worker_id: str, epoch: int, now: datetime) -> None:
        """The worker has stopped a cancelling run."""
        self._check("Cancelled")
        self._fence(worker_id, epoch)
        self.cancel(reason=self.cancel_reason, actor=f"worker:{worker_id}", now=now)

    def complete(self, *, worker_id: str, epoch: int, output: Any, now: datetime) -> None:
        """Finish the run with its output."""
        self._check("Completed")
        self._fence(worker_id, epoch)
        self.trigger_event(self.Completed, timestamp=now, actor=f"worker:{worker_id}", output=output)

    def fail(
        self,
        *,
        error: str,
        actor: str,
        now: datetime,
        worker: tuple[str, int] | None = None,
        stage: str | None = None,
    ) -> None:
        """Fail the run; a worker's failure is fenced by its lease. ``stage``: where the agent failed."""
        previous = self.state
        self._check("Failed")
        if worker is not None:
            self._fence(*worker)
        self.trigger_event(
            self.Failed, timestamp=now, actor=actor, error=error, previous_state=str(previous), stage=stage
        )


def _record_format(event: Any) -> None:
    """Store the chain format with the event (events are frozen dataclasses; the field is not declared)."""
    object.__setattr__(event, chain.FORMAT_FIELD, chain.CURRENT_FORMAT)
