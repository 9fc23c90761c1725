"""The pure domain of runjournal: the Run aggregate, its events, the transition table, errors."""

from .errors import (
    ApprovalNotFound,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    ResumeFailedError,
    RunjournalError,
    RunNotFound,
    StoreError,
    StoreUnavailable,
    TamperDetected,
    UnknownAgent,
    WorkspaceError,
)
from .run import AUTO_AGENT, DECISIONS, RESUME_KINDS, STEP_KINDS, Run
from .transitions import CLAIMABLE_STATES, LEASED_STATES, RESTING_STATES, TERMINAL_STATES, TRANSITIONS, RunState

__all__ = [
    "AUTO_AGENT",
    "CLAIMABLE_STATES",
    "DECISIONS",
    "LEASED_STATES",
    "RESTING_STATES",
    "RESUME_KINDS",
    "STEP_KINDS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "ApprovalNotFound",
    "ConcurrencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "LeaseLost",
    "ResumeFailedError",
    "Run",
    "RunNotFound",
    "RunState",
    "RunjournalError",
    "StoreError",
    "StoreUnavailable",
    "TamperDetected",
    "UnknownAgent",
    "WorkspaceError",
]
