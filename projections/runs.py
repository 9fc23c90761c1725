"""The ``runs`` view: one row per run with its state, agent, thread, priority, times and lease."""

from __future__ import annotations

from ..domain.events import expiry_error
from ..domain.transitions import LEASED_STATES, RunState, check
from .base import ProjectedEvent
from .rows import Row, RowProjection, as_json


_NEXT: dict[tuple[str, str, str | None], str] = {}


def next_state(state: str, event: ProjectedEvent) -> str:
    """The state an event leads to, from the transition table (memoised: views ask ~3 times per event)."""
    if event.state_from == state:
        return event.state_to
    key = (state, event.type, event.data.get("to_state"))
    found = _NEXT.get(key)
    if found is None:
        found = _NEXT[key] = str(check(event.run_id, state, event.type, key[2]))
    event.state_from, event.state_to = state, found
    return found


def lineage_kind(created: dict[str, object]) -> str:
    """How a run came to be: "fork" or "retry" of its parent, else "root"."""
    if created.get("fork") is not None:
        return "fork"
    return "retry" if created.get("parent_run_id") else "root"


class RunsView(RowProjection):
    name = "runs"
    version = 4  # 2: the error of a failed resume (ResumeFailed), cleared when a retry completes; 3: lineage;
    # 4: the error of a run an approval's expiry failed
    pk = "run_id"
    columns = {  # noqa: RUF012
        "run_id": str, "thread_id": str, "agent_id": str, "state": str, "priority": int, "version": int,
        "worker_id": str, "epoch": int, "lease_expires_at": str, "created_at": str, "updated_at": str,
        "created_by": str, "error": str, "output": str, "parent_run_id": str, "parent_version": int,
        "lineage": str,
    }
    # Every filter of ``Journal.find_runs`` is an index (created_at: a range) or the run_facts view.
    indexes = (("state",), ("agent_id",), ("thread_id",), ("parent_run_id",), ("created_at",))
    fixed = ("thread_id", "agent_id", "created_at", "created_by", "parent_run_id", "parent_version", "lineage")
    sealed = ("error", "output")

    def creates(self, event: ProjectedEvent) -> bool:
        return event.type == "Created"

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row:
        ts = e.iso
        if e.type == "Created":
            return {
                "run_id": e.run_id, "thread_id": e.data["thread_id"], "agent_id": e.data["agent_id"],
                "state": str(RunState.CREATED), "priority": e.data["priority"], "version": e.version, "worker_id": None,
                "epoch": 0, "lease_expires_at": None, "created_at": ts, "updated_at": ts,
                "created_by": e.actor, "error": None, "output": None, "parent_run_id": e.data.get("parent_run_id"),
                "parent_version": e.data.get("parent_version"), "lineage": lineage_kind(e.data),
            }
        assert row is not None, f"{e.type} before Created for run {e.run_id}"
        row.update(state=next_state(row["state"], e), version=e.version, updated_at=ts)  # this page's copy
        data = e.data
        if "worker_id" in data:
            row["worker_id"] = data["worker_id"]
        if "epoch" in data:
            row["epoch"] = data["epoch"]
        if "lease_expires_at" in data:
            row["lease_expires_at"] = data["lease_expires_at"].isoformat()
        if row["state"] not in LEASED_STATES:  # only a claimed, running or cancelling run holds a lease
            row["lease_expires_at"] = None
        if e.type == "Completed":
            row["output"] = as_json(data["output"])
            row["error"] = None  # a failed resume that a retry completed
        if e.type in ("Failed", "ResumeFailed") or (e.type == "LeaseExpired" and data["to_state"] == "failed"):
            row["error"] = data.get("error") or data.get("reason")
        elif e.type == "ApprovalExpired" and data["to_state"] == "failed":
            row["error"] = expiry_error(data["approval_id"], data["deadline"])
        return row
