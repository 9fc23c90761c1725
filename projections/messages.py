"""The ``messages`` view: a thread's conversation, for the agent's prior context.

A run's request is the user's turn; ``StepRecorded(kind="message")`` and a
completed run's output are the assistant's.
"""

from __future__ import annotations

from typing import Any

from .base import ProjectedEvent
from .rows import Row, RowProjection, as_json


def message_text(value: Any) -> str:
    """The text of a request or output: its ``message`` / ``text`` field, else its JSON."""
    if isinstance(value, dict):
        for field in ("message", "text", "content"):
            if isinstance(value.get(field), str):
                return str(value[field])
    return value if isinstance(value, str) else str(as_json(value))


class MessagesView(RowProjection):
    name = "messages"
    version = 1
    pk = "position"
    append_only = True
    columns = {  # noqa: RUF012
        "position": int, "thread_id": str, "run_id": str, "role": str, "content": str, "created_at": str,
    }
    indexes = (("thread_id", "position"),)
    sealed = ("content",)

    def key(self, e: ProjectedEvent) -> int | None:
        if e.type in ("Created", "Completed") or (e.type == "StepRecorded" and e.data["kind"] == "message"):
            return e.position
        return None

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row:
        if e.type == "Created":
            role, content = "user", message_text(e.data["input"])
        elif e.type == "Completed":
            role, content = "assistant", message_text(e.data["output"])
        else:
            role, content = "assistant", message_text(e.data["content"])
        thread_id = e.data.get("thread_id", e.thread_id)
        return {"position": e.position, "thread_id": thread_id, "run_id": e.run_id, "role": role,
                "content": content, "created_at": e.iso}
