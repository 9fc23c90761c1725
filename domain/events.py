"""The events of a run: one class per fact, each with the fold that applies it.

A class's ``apply`` only assigns; every check happens in the command that
triggers it (``run.py``), because ``apply`` runs again on every replay. Each
class has an explicit, versioned topic so stored events survive module moves.
The state an event leads to comes from the transition table, never from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import resolve_topic

from . import transitions

if TYPE_CHECKING:
    from .run import Run

JSON = Any


class RunEvent(Aggregate.Event):
    """Base of every run event: who caused it, and its link in the hash chain."""

    class_version = 1
    actor: str
    chain: str

    def apply(self, run: Run) -> None:
        """Move the run along the transition table, then assign this event's facts."""
        name = type(self).__name__
        target = getattr(self, "to_state", None)
        run.state = transitions.check(run.run_id, run.state, name, target)
        run.chain = self.chain
        self.assign(run)

    def assign(self, run: Run) -> None:
        """Copy this event's facts onto the run; the default records nothing more."""


class Created(RunEvent, Aggregate.Created):
    TOPIC = "runjournal.Run.Created.v1"
    class_version = 3
    thread_id: str
    agent_id: str  # the agent selected to run it
    requested_agent_id: str | None  # what the caller asked for ("auto": routing chose); None before v2
    execution_mode: str | None  # the selected agent's adapter kind; None when not known, or before v2
    input: JSON
    invocation: JSON  # the envelope beside the input: context, inputs, attachments (None: none given)
    priority: int
    idempotency_key: str | None
    parent_run_id: str | None
    parent_version: int | None
    # A fork of the parent at ``parent_version``: {"parent_chain": the parent's chain there (an
    # anchor a verifier can check), "input": "kept" | "replaced" | "edited", "edits": the merge
    # patch applied to the parent's input or None}. None: not a fork (a retry, or a new run).
    fork: JSON

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Runs created before the request was recorded as asked: none of it was kept."""
        state["requested_agent_id"] = None
        state["execution_mode"] = None
        state["invocation"] = None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """Runs created before forks: none was one."""
        state["fork"] = None

    def mutate(self, aggregate: Any) -> Any:
        """The run this event begins: eventsourcing's generic path, less its signature inspection.

        That path reads the aggregate's ``__init__`` signature on every create to pick its
        arguments; ``Run.__init__`` takes none, so the shell is initialised and applied directly.
        """
        assert aggregate is None
        run = object.__new__(resolve_topic(self.originator_topic))
        run.__base_init__(self.originator_id, self.originator_version, self.timestamp)
        self.apply(run)
        return run

    def apply(self, run: Run) -> None:
        run.state = transitions.RunState.CREATED
        run.chain = self.chain
        run.thread_id = self.thread_id
        run.agent_id = self.agent_id
        run.requested_agent_id = self.requested_agent_id
        run.execution_mode = self.execution_mode
        run.input = self.input
        run.invocation = self.invocation
        run.priority = self.priority
        run.idempotency_key = self.idempotency_key
        run.parent_run_id = self.parent_run_id
        run.parent_version = self.parent_version
        run.fork = self.fork
        run.created_by = self.actor
        run.epoch = 0
        run.worker_id = None
        run.lease_expires_at = None
        run.pending_approval = None
        run.pending_resume = None
        run.resumed_with = None
        run.approvals_requested = 0
        run.recovery_attempts = 0
        run.steps = 0
        run.output = None
        run.error = None
        run.cancel_reason = None


class Queued(RunEvent):
    TOPIC = "runjournal.Run.Queued.v1"
    priority: int

    def assign(self, run: Run) -> None:
        run.priority = self.priority


class Dequeued(RunEvent):
    TOPIC = "runjournal.Run.Dequeued.v1"
    worker_id: str
    epoch: int
    lease_expires_at: datetime

    def assign(self, run: Run) -> None:
        run.worker_id = self.worker_id
        run.epoch = self.epoch
        run.lease_expires_at = self.lease_expires_at


class Started(RunEvent):
    TOPIC = "runjournal.Run.Started.v1"
    worker_id: str
    epoch: int

    def assign(self, run: Run) -> None:
        run.resumed_with = None


class Resumed(RunEvent):
    TOPIC = "runjournal.Run.Resumed.v1"
    worker_id: str
    epoch: int
    resume_kind: str
    decision: JSON

    def assign(self, run: Run) -> None:
        run.resumed_with = {"resume_kind": self.resume_kind, "decision": self.decision}
        run.pending_resume = None


class LeaseRenewed(RunEvent):
    TOPIC = "runjournal.Run.LeaseRenewed.v1"
    worker_id: str
    epoch: int
    lease_expires_at: datetime

    def assign(self, run: Run) -> None:
        run.lease_expires_at = self.lease_expires_at


class LeaseExpired(RunEvent):
    TOPIC = "runjournal.Run.LeaseExpired.v1"
    epoch: int
    reason: str
    to_state: str
    resume_kind: str | None

    def assign(self, run: Run) -> None:
        run.lease_expires_at = None
        if self.resume_kind is not None:
            run.pending_resume = {"resume_kind": self.resume_kind, "decision": None}
        if self.to_state == transitions.RunState.FAILED:
            run.error = self.reason


class StepRecorded(RunEvent):
    TOPIC = "runjournal.Run.StepRecorded.v1"
    kind: str
    content: JSON

    def assign(self, run: Run) -> None:
        run.steps += 1


class ApprovalRequested(RunEvent):
    TOPIC = "runjournal.Run.ApprovalRequested.v1"
    approval_id: str
    tool_name: str
    tool_args: JSON
    tool_call_id: str | None
    args_digest: str
    content: JSON
    checkpoint_ref: str | None
    output: str | None  # the answer so far, when the agent paused (None: nothing said, or before v2)
    deadline: str | None  # when it expires undecided, ISO 8601 (None: never, or before v3)
    assignees: list[str] | None  # who may decide (None: anyone, or before v3)
    on_expiry: str | None  # what its deadline does: "reject" or "fail" (None: no deadline)
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Approval requests stored before the output so far was recorded."""
        state["output"] = None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """Approval requests stored before deadlines and assignees: none had either."""
        state["deadline"] = None
        state["assignees"] = None
        state["on_expiry"] = None

    def assign(self, run: Run) -> None:
        run.approvals_requested += 1
        run.lease_expires_at = None
        run.pending_approval = {
            "approval_id": self.approval_id,
            "tool_name": self.tool_name,
            "tool_args": self.tool_args,
            "tool_call_id": self.tool_call_id,
            "args_digest": self.args_digest,
            "checkpoint_ref": self.checkpoint_ref,
            "deadline": self.deadline,
            "assignees": self.assignees,
            "on_expiry": self.on_expiry,
        }


class ApprovalResolved(RunEvent):
    TOPIC = "runjournal.Run.ApprovalResolved.v1"
    approval_id: str
    decision: str
    edits: JSON
    edited_args: JSON
    edited_args_digest: str | None

    def assign(self, run: Run) -> None:
        approval = dict(run.pending_approval or {})
        approval.update(
            decision=self.decision, edits=self.edits, edited_args=self.edited_args, actor=self.actor
        )
        run.pending_approval = None
        run.pending_resume = {"resume_kind": "cross-restart", "decision": approval}


def expiry_error(approval_id: str, deadline: str) -> str:
    """The error of a run an approval's expiry failed (the run and the views say it alike)."""
    return f"approval {approval_id} expired undecided at {deadline}"


class ApprovalExpired(RunEvent):
    """A pending approval's deadline passed undecided: the run resumes as rejected, or fails."""

    TOPIC = "runjournal.Run.ApprovalExpired.v1"
    approval_id: str
    deadline: str  # the deadline that passed, ISO 8601
    to_state: str  # resuming (expiry rejects) or failed

    def assign(self, run: Run) -> None:
        approval = dict(run.pending_approval or {})
        run.pending_approval = None
        if self.to_state == transitions.RunState.FAILED:
            run.error = expiry_error(self.approval_id, self.deadline)
            return
        approval.update(decision="reject", edits=None, edited_args=None, actor=self.actor, expired=True)
        run.pending_resume = {"resume_kind": "cross-restart", "decision": approval}


class RecoveryAttempted(RunEvent):
    TOPIC = "runjournal.Run.RecoveryAttempted.v1"
    attempt: int
    resume_kind: str

    def assign(self, run: Run) -> None:
        run.recovery_attempts = self.attempt
        decision = (run.pending_resume or {}).get("decision")
        run.pending_resume = {"resume_kind": self.resume_kind, "decision": decision}


class ResumeFailed(RunEvent):
    """The agent failed while resuming with a decision: recorded, and the run waits to be retried."""

    TOPIC = "runjournal.Run.ResumeFailed.v1"
    error: str
    stage: str | None  # where the agent failed: "stream" or "invoke" (None: not the agent)
    attempt: int  # retries this failure leaves behind it: 1 for the first failed resume
    resume_kind: str  # what the retry is resumed as

    def assign(self, run: Run) -> None:
        decision = (run.resumed_with or {}).get("decision")
        run.recovery_attempts = self.attempt
        run.error = self.error
        run.lease_expires_at = None
        run.pending_resume = {"resume_kind": self.resume_kind, "decision": decision}
        run.resumed_with = None


class CancelRequested(RunEvent):
    TOPIC = "runjournal.Run.CancelRequested.v1"
    reason: str | None

    def assign(self, run: Run) -> None:
        run.cancel_reason = self.reason


class Cancelled(RunEvent):
    TOPIC = "runjournal.Run.Cancelled.v1"
    reason: str | None

    def assign(self, run: Run) -> None:
        run.cancel_reason = self.reason
        run.lease_expires_at = None
        run.pending_approval = None


class Completed(RunEvent):
    TOPIC = "runjournal.Run.Completed.v1"
    output: JSON

    def assign(self, run: Run) -> None:
        run.output = self.output
        run.error = None  # a failed resume that a retry completed
        run.lease_expires_at = None


class Failed(RunEvent):
    TOPIC = "runjournal.Run.Failed.v1"
    class_version = 2
    error: str
    previous_state: str
    stage: str | None  # where an agent failed: "stream" or "invoke" (None: not the agent, or before v2)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Failed events stored before the stage was recorded."""
        state["stage"] = None

    def assign(self, run: Run) -> None:
        run.error = self.error
        run.lease_expires_at = None
        run.pending_approval = None


# The registry stored topics are resolved through (adapters/storage/topics.py): a topic
# read from a store or an export names one of these classes, or it is refused unread.
EVENT_CLASSES: tuple[type[RunEvent], ...] = (
    Created,
    Queued,
    Dequeued,
    Started,
    Resumed,
    LeaseRenewed,
    LeaseExpired,
    StepRecorded,
    ApprovalRequested,
    ApprovalResolved,
    ApprovalExpired,
    RecoveryAttempted,
    ResumeFailed,
    CancelRequested,
    Cancelled,
    Completed,
    Failed,
)

# Topics that earlier releases stored for classes renamed or moved since: old topic -> class.
# None so far (every class has had its explicit topic from the start). A class that is
# renamed keeps reading its old events by adding its old topic here; a class whose fields
# change raises ``class_version`` and adds ``upcast_vN_vN+1`` instead.
OLD_TOPICS: dict[str, type[RunEvent]] = {}
