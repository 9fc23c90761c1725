"""runjournal: a durable run engine for agents on an append-only event log."""

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
from .adapters.agents import AgentFailed, AgentLoadError
from .harness import Harness
from .journal import Journal
from .projections import Projection, ProjectionError
from .streaming import Health, RunResult, StreamEvent
from .workspace import Workspace, load_workspace
from .models import Claim, RecordedEvent, RunSnapshot, VerifyProblem, VerifyReport

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
