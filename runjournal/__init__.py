"""runjournal: a durable run engine for agents on an append-only event log."""

from .domain import (
    ApprovalNotFound,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    RunjournalError,
    RunNotFound,
    RunState,
    StoreError,
    UnknownAgent,
)
from .journal import Journal
from .models import Claim, RecordedEvent, RunSnapshot, VerifyProblem, VerifyReport

__all__ = [
    "ApprovalNotFound",
    "Claim",
    "ConcurrencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "Journal",
    "LeaseLost",
    "RecordedEvent",
    "RunNotFound",
    "RunSnapshot",
    "RunState",
    "RunjournalError",
    "StoreError",
    "UnknownAgent",
    "VerifyProblem",
    "VerifyReport",
]
