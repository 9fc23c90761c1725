"""Build runs in any state by driving the public commands (no storage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from runjournal.domain import Run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)
LEASE = T0 + timedelta(seconds=30)
WORKER = "w1"


def new_run() -> Run:
    return Run.create(
        run_id=uuid4(), thread_id="t1", agent_id="echo", input={"message": "hi"},
        priority=0, idempotency_key=None, actor="alice", now=T0,
    )


def claimed(run: Run) -> Run:
    run.dequeue(worker_id=WORKER, lease_expires_at=LEASE, now=T0)
    return run


def _steps(state: str, *, via_resume: bool = False) -> Run:
    run = new_run()
    if state == "created":
        return run
    run.enqueue(actor="alice", now=T0)
    if state == "queued":
        return run
    if via_resume:
        run = claimed(_steps("resuming"))
        if state == "running":
            run.resume(worker_id=WORKER, epoch=run.epoch, now=T0)
        return run
    claimed(run)
    if state == "claimed":
        return run
    run.start(worker_id=WORKER, epoch=run.epoch, now=T0)
    if state == "running":
        return run
    if state == "cancelling":
        run.request_cancel(reason="stop", actor="bob", now=T0)
        return run
    if state in ("waiting_for_approval", "resuming"):
        run.request_approval(
            worker_id=WORKER, epoch=run.epoch, tool_name="deploy", tool_args={"env": "prod"},
            tool_call_id="c1", content=None, checkpoint_ref=None, now=T0, deadline=T0 + timedelta(minutes=30),
        )
        if state == "resuming":
            run.resolve_approval(approval_id=run.pending_approval["approval_id"], decision="approve",
                                 edits=None, actor="bob", now=T0)
        return run
    if state == "completed":
        run.complete(worker_id=WORKER, epoch=run.epoch, output={"ok": True}, now=T0)
    elif state == "failed":
        run.fail(error="boom", actor="alice", now=T0)
    elif state == "cancelled":
        run.request_cancel(reason="stop", actor="bob", now=T0)
        run.finish_cancel(worker_id=WORKER, epoch=run.epoch, now=T0)
    return run


def run_in(state: str, *, via_resume: bool = False) -> Run:
    """A run in ``state``; ``via_resume`` claims it with a decision pending (and resumes it, for ``running``)."""
    run = _steps(state, via_resume=via_resume)
    assert run.state == state, (run.state, state)
    run.collect_events()
    return run


def attempt(run: Run, event: str) -> None:
    """Invoke the command that would append ``event``, as its rightful worker."""
    w = {"worker_id": WORKER, "epoch": run.epoch}
    commands = {
        "Queued": lambda: run.enqueue(actor="alice", now=T0),
        "Dequeued": lambda: run.dequeue(worker_id="w2", lease_expires_at=LEASE, now=T0),
        "Started": lambda: run.start(**w, now=T0),
        "Resumed": lambda: run.resume(**w, now=T0),
        "LeaseRenewed": lambda: run.renew_lease(**w, lease_expires_at=LATER, now=T0),
        "LeaseExpired": lambda: run.expire_lease(now=LATER, can_replay=True),
        "StepRecorded": lambda: run.record_step(**w, kind="step", content={"n": 1}, now=T0),
        "ApprovalRequested": lambda: run.request_approval(
            **w, tool_name="t", tool_args={}, tool_call_id=None, content=None, checkpoint_ref=None, now=T0
        ),
        "ApprovalResolved": lambda: run.resolve_approval(
            approval_id=(run.pending_approval or {}).get("approval_id", f"{run.run_id}.a1"),
            decision="approve", edits=None, actor="bob", now=T0,
        ),
        "ApprovalExpired": lambda: run.expire_approval(
            approval_id=(run.pending_approval or {}).get("approval_id", f"{run.run_id}.a1"), now=LATER,
        ),
        "RecoveryAttempted": lambda: run.attempt_recovery(resume_kind="startup-recovery", now=T0),
        "ResumeFailed": lambda: run.fail_resume(**w, error="boom", stage="stream", now=T0),
        "CancelRequested": lambda: run.request_cancel(reason="r", actor="bob", now=T0),
        "Cancelled": lambda: run.cancel(reason="r", actor="bob", now=T0),
        "Completed": lambda: run.complete(**w, output={}, now=T0),
        "Failed": lambda: run.fail(error="e", actor="alice", now=T0),
    }
    commands[event]()
