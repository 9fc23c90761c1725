"""The ``approvals`` view: every approval, pending or decided, who decided, digests and edits.

An approval whose run ends (cancelled or failed) before a decision is marked
``withdrawn``; one whose deadline passed undecided, ``expired`` (decided by
``system:approvals``). Each row keeps its deadline and assignees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Sequence


from .base import ProjectedEvent
from .rows import Row, RowProjection, as_json

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database

STATUS = {"approve": "approved", "reject": "rejected", "edit": "edited"}


class ApprovalsView(RowProjection):
    name = "approvals"
    version = 2  # 2: deadline, assignees, on_expiry and the expired status
    pk = "approval_id"
    columns = {  # noqa: RUF012
        "approval_id": str, "run_id": str, "thread_id": str, "agent_id": str, "tool_name": str,
        "tool_args": str, "tool_call_id": str, "args_digest": str, "checkpoint_ref": str, "status": str,
        "requested_at": str, "decided_by": str, "decided_at": str, "edits": str, "edited_args": str,
        "edited_args_digest": str, "deadline": str, "assignees": str, "on_expiry": str,
    }
    indexes = (("status", "requested_at"), ("run_id",), ("status", "deadline"))
    sealed = ("tool_args", "checkpoint_ref", "edits", "edited_args")

    def handle_page(self, events: Sequence[ProjectedEvent], db: Database) -> None:
        ending = [e.run_id for e in events if e.type in ("Cancelled", "Failed")]
        pending: dict[str, str] = {}
        if ending:
            marks = ",".join("?" * len(ending))
            for approval_id, run_id in db.conn.execute(
                f"SELECT approval_id, run_id FROM approvals WHERE status = 'pending' AND run_id IN ({marks})", ending
            ):
                pending[run_id] = approval_id
        for e in events:  # which approval each ending event withdraws, in page order
            if e.type == "ApprovalRequested":
                pending[e.run_id] = e.data["approval_id"]
            elif e.type in ("ApprovalResolved", "ApprovalExpired"):
                pending.pop(e.run_id, None)
            elif e.type in ("Cancelled", "Failed") and e.run_id in pending:
                e.extra["withdraws"] = pending.pop(e.run_id)
        super().handle_page(events, db)

    def key(self, e: ProjectedEvent) -> str | None:
        if e.type in ("ApprovalRequested", "ApprovalResolved", "ApprovalExpired"):
            return str(e.data["approval_id"])
        return e.extra.get("withdraws")

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row:
        ts = e.iso
        d = e.data
        if e.type == "ApprovalRequested":
            return {
                "approval_id": d["approval_id"], "run_id": e.run_id, "thread_id": e.thread_id,
                "agent_id": e.agent_id, "tool_name": d["tool_name"], "tool_args": as_json(d["tool_args"]),
                "tool_call_id": d["tool_call_id"], "args_digest": d["args_digest"],
                "checkpoint_ref": d["checkpoint_ref"], "status": "pending", "requested_at": ts,
                "decided_by": None, "decided_at": None, "edits": None, "edited_args": None,
                "edited_args_digest": None, "deadline": d.get("deadline"), "assignees": as_json(d.get("assignees")),
                "on_expiry": d.get("on_expiry"),
            }
        assert row is not None
        if e.type == "ApprovalResolved":
            return {**row, "status": STATUS[d["decision"]], "decided_by": e.actor, "decided_at": ts,
                    "edits": as_json(d["edits"]), "edited_args": as_json(d["edited_args"]),
                    "edited_args_digest": d["edited_args_digest"]}
        if e.type == "ApprovalExpired":
            return {**row, "status": "expired", "decided_by": e.actor, "decided_at": ts}
        return {**row, "status": "withdrawn", "decided_by": e.actor, "decided_at": ts}
