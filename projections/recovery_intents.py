"""The ``recovery_intents`` view: for each non-terminal run, what startup recovery must do.

Recovery reads this view, never the whole log, so its cost follows the number
of live runs. Terminal runs have no row.
"""

from __future__ import annotations

from ..domain.transitions import RECOVERY_INTENTS, TERMINAL_STATES, RunState
from .base import ProjectedEvent
from .rows import Row, RowProjection, as_json
from .runs import next_state

INTENTS = RECOVERY_INTENTS  # the domain's table, under the name this module has always exported


class RecoveryIntentsView(RowProjection):
    name = "recovery_intents"
    version = 2  # 2: a failed resume (ResumeFailed) keeps its decision and counts its attempt
    pk = "run_id"
    columns = {  # noqa: RUF012
        "run_id": str, "thread_id": str, "agent_id": str, "state": str, "intent": str, "attempts": int,
        "has_request": int, "checkpoint_ref": str, "resume_kind": str, "resume_payload": str,
        "lease_expires_at": str, "updated_at": str,
    }
    indexes = (("intent",),)
    fixed = ("thread_id", "agent_id")
    sealed = ("checkpoint_ref", "resume_payload")

    def creates(self, event: ProjectedEvent) -> bool:
        return event.type == "Created"

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row | None:
        d = e.data
        if e.type == "Created":
            row = {"run_id": e.run_id, "thread_id": d["thread_id"], "agent_id": d["agent_id"], "state": str(RunState.CREATED),
                   "attempts": 0, "has_request": int(d["input"] is not None), "checkpoint_ref": None,
                   "resume_kind": None, "resume_payload": None, "lease_expires_at": None}
        else:
            assert row is not None, f"{e.type} before Created for run {e.run_id}"
            row["state"] = next_state(row["state"], e)  # rows are this page's own copies
        if row["state"] in TERMINAL_STATES:
            return None
        if "lease_expires_at" in d:
            row["lease_expires_at"] = d["lease_expires_at"].isoformat()
        if e.type == "ApprovalRequested":
            row["checkpoint_ref"] = d["checkpoint_ref"]
        elif e.type == "ApprovalResolved":
            row["resume_kind"] = "cross-restart"
            row["resume_payload"] = as_json({"approval_id": d["approval_id"], "decision": d["decision"],
                                             "edits": d["edits"], "edited_args": d["edited_args"]})
        elif e.type in ("RecoveryAttempted", "ResumeFailed"):
            row["attempts"] = d["attempt"]
            row["resume_kind"] = d["resume_kind"]
        elif e.type == "LeaseExpired" and d.get("resume_kind"):
            row["resume_kind"] = d["resume_kind"]
            row["resume_payload"] = None  # a replay from the request: no decision to resume with
        elif e.type == "Resumed":
            # The decision stays: a resume the agent fails is retried with it (ResumeFailed).
            row["resume_kind"] = None
        elif e.type == "Started":
            row["resume_payload"] = None
        row["intent"] = INTENTS[row["state"]]
        row["updated_at"] = e.iso
        return row
