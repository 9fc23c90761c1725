"""What harness listeners and ``Harness.stream`` receive: typed, JSON-ready stream events."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StreamType = Literal["content", "reasoning", "step", "tool_result", "approval", "state", "queue.position"]


class StreamEvent(BaseModel):
    """One thing that happened to a run, for streaming and UIs (the log stays the truth)."""

    model_config = ConfigDict(frozen=True)

    type: StreamType
    run_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class RunResult(BaseModel):
    """Where a run came to rest: terminal, or waiting for a person."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    thread_id: str
    agent_id: str
    state: str
    output: Any = None
    error: str | None = None
    approval_id: str | None = None


class Health(BaseModel):
    """A worker's view of itself and the journal.

    ``listener_errors`` counts the errors raised by this harness's listeners,
    ``journal_listener_errors`` those of the journal's own subscribers: each was
    logged and changed nothing.
    """

    model_config = ConfigDict(frozen=True)

    worker_id: str
    active_slots: int
    max_concurrent_runs: int
    queued: int  # runs waiting for a slot: queued and resuming
    waiting_for_approval: int
    adapter_successes: int
    adapter_failures: int
    oldest_queued_age_seconds: float | None
    listener_errors: int = 0
    journal_listener_errors: int = 0
    quarantined: int = 0  # runs whose stored events failed their check on load; `runjournal quarantine` lists them
    refused_by_views: int = 0  # runs the views stopped following at a stored topic not runjournal's (Journal.refused_runs)
