"""runjournal: a durable run engine for agents on an append-only event log."""

from .adapters.agents import AgentFailed, AgentLoadError
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
from .projections import Projection, ProjectionError
from .runtime.harness import Harness
from .runtime.streaming import Health, RunResult, StreamEvent

__all__ = [
    "ApprovalNotFound",
    "Harness",
    "Health",
    "Projection",
    "ProjectionError",
    "RunResult",
    "StreamEvent",
    "Workspace",
    "load_workspace",
    "Claim",
    "ConcurrencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "Journal",
    "LeaseLost",
    "ResumeFailedError",
    "RecordedEvent",
    "RunNotFound",
    "RunSnapshot",
    "RunState",
    "RunjournalError",
    "StoreError",
    "StoreUnavailable",
    "TamperDetected",
    "WorkspaceError",
    "AgentFailed",
    "AgentLoadError",
    "UnknownAgent",
    "VerifyProblem",
    "VerifyReport",
]
