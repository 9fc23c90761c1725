"""runjournal: a durable run engine for agents on an append-only event log."""

from .adapters.agents import AgentAdapter, AgentFailed, AgentLoadError, AgentRequest, Chunk
from .adapters.clock import ManualClock
from .app.journal import Journal
from .app.models import Claim, RecordedEvent, RunSnapshot, VerifyProblem, VerifyReport
from .config.workspace import Workspace, load_workspace
from .domain import (
    ApprovalNotFound,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    ResumeFailedError,
    RunjournalError,
    RunNotFound,
    RunState,
    StoreError,
    StoreUnavailable,
    TamperDetected,
    UnknownAgent,
    WorkspaceError,
)
from .projections import ProjectedEvent, Projection, ProjectionError
from .runtime.harness import Harness
from .runtime.streaming import Health, RunResult, StreamEvent

__all__ = [
    "AgentAdapter",
    "AgentFailed",
    "AgentLoadError",
    "AgentRequest",
    "ApprovalNotFound",
    "Chunk",
    "Claim",
    "ConcurrencyConflict",
    "Harness",
    "Health",
    "InvalidInput",
    "InvalidTransition",
    "Journal",
    "LeaseLost",
    "ManualClock",
    "ProjectedEvent",
    "Projection",
    "ProjectionError",
    "RecordedEvent",
    "ResumeFailedError",
    "RunNotFound",
    "RunResult",
    "RunSnapshot",
    "RunState",
    "RunjournalError",
    "StoreError",
    "StoreUnavailable",
    "StreamEvent",
    "TamperDetected",
    "UnknownAgent",
    "VerifyProblem",
    "VerifyReport",
    "Workspace",
    "WorkspaceError",
    "load_workspace",
]
