"""The ``threads`` view: per thread, its latest run, that run's status, counts and last update."""

from __future__ import annotations

from .base import ProjectedEvent
from .messages import MessagesView
from .rows import Row, RowProjection
from .runs import next_state

_counts_as_message = MessagesView().key


class ThreadsView(RowProjection):
    name = "threads"
    version = 1
    pk = "thread_id"
    columns = {  # noqa: RUF012
        "thread_id": str, "agent_id": str, "latest_run_id": str, "status": str, "run_count": int,
        "message_count": int, "created_at": str, "updated_at": str,
    }
    indexes = (("updated_at",),)

    def key(self, e: ProjectedEvent) -> str:
        return e.data["thread_id"] if e.type == "Created" else e.thread_id

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row:
        ts = e.iso
        messages = 1 if _counts_as_message(e) is not None else 0
        if e.type == "Created":
            base = row or {"thread_id": e.data["thread_id"], "run_count": 0, "message_count": 0, "created_at": ts}
            return {**base, "agent_id": e.data["agent_id"], "latest_run_id": e.run_id, "status": "created",
                    "run_count": base["run_count"] + 1, "message_count": base["message_count"] + messages,
                    "updated_at": ts}
        assert row is not None, f"{e.type} of run {e.run_id} before its thread exists"
        row["message_count"] += messages  # rows are this page's own copies
        row["updated_at"] = ts
        if e.run_id == row["latest_run_id"]:
            row["status"] = next_state(row["status"], e)
        return row
