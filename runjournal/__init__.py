"""runjournal: a durable run engine for agents on an append-only event log.

Every public name is importable from here (``from runjournal import Journal``), but
each is imported on first use (PEP 562): ``import runjournal`` costs almost nothing,
so a command that reads one run does not pay for the harness, and an application
that embeds only the journal does not load the workspace parser.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from .adapters.agents import AgentAdapter, AgentFailed, AgentLoadError, AgentRequest, Chunk
    from .adapters.clock import ManualClock
    from .adapters.langgraph import JournalCheckpointer
    from .app.journal import Journal
    from .app.models import Claim, RecordedEvent, RunSnapshot, VerifyProblem, VerifyReport
    from .config.workspace import Workspace, load_workspace
    from .domain import ApprovalNotFound, ConcurrencyConflict, InvalidInput, InvalidTransition, LeaseLost
    from .domain import ResumeFailedError, RunjournalError, RunNotFound, RunState, StoreError, StoreUnavailable
    from .domain import TamperDetected, UnknownAgent, WorkspaceError
    from .projections import ProjectedEvent, Projection, ProjectionError
    from .runtime.harness import Harness
    from .runtime.streaming import Health, RunResult, StreamEvent

# Public name -> the module (relative to this package) that defines it.
_HOMES = {
    "AgentAdapter": ".adapters.agents",
    "AgentFailed": ".adapters.agents",
    "AgentLoadError": ".adapters.agents",
    "AgentRequest": ".adapters.agents",
    "ApprovalNotFound": ".domain",
    "Chunk": ".adapters.agents",
    "Claim": ".app.models",
    "ConcurrencyConflict": ".domain",
    "Harness": ".runtime.harness",
    "JournalCheckpointer": ".adapters.langgraph",  # needs the langgraph extra: imported only when asked for
    "Health": ".runtime.streaming",
    "InvalidInput": ".domain",
    "InvalidTransition": ".domain",
    "Journal": ".app.journal",
    "LeaseLost": ".domain",
    "ManualClock": ".adapters.clock",
    "ProjectedEvent": ".projections",
    "Projection": ".projections",
    "ProjectionError": ".projections",
    "RecordedEvent": ".app.models",
    "ResumeFailedError": ".domain",
    "RunNotFound": ".domain",
    "RunResult": ".runtime.streaming",
    "RunSnapshot": ".app.models",
    "RunState": ".domain",
    "RunjournalError": ".domain",
    "StoreError": ".domain",
    "StoreUnavailable": ".domain",
    "StreamEvent": ".runtime.streaming",
    "TamperDetected": ".domain",
    "UnknownAgent": ".domain",
    "VerifyProblem": ".app.models",
    "VerifyReport": ".app.models",
    "Workspace": ".config.workspace",
    "WorkspaceError": ".domain",
    "load_workspace": ".config.workspace",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use, then keep it here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "JournalCheckpointer",
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
