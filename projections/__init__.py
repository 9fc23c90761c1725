"""Followed read models derived from the log, and the runner that keeps them caught up."""

from .approvals import ApprovalsView
from .base import REFUSED, ProjectedEvent, Projection
from .messages import MessagesView
from .recovery_intents import INTENTS, RecoveryIntentsView
from .refused_runs import RefusedRun
from .runner import ProjectionError, ProjectionFailure, ProjectionRunner, open_views
from .run_facts import RunFactsView
from .runs import RunsView
from .sealing import ViewCipher
from .threads import ThreadsView


def builtin_projections() -> list[Projection]:
    """Fresh instances of every built-in followed view."""
    return [RunsView(), ThreadsView(), ApprovalsView(), RecoveryIntentsView(), MessagesView(), RunFactsView()]


__all__ = [
    "INTENTS",
    "REFUSED",
    "ApprovalsView",
    "MessagesView",
    "ProjectedEvent",
    "Projection",
    "ProjectionError",
    "ProjectionFailure",
    "ProjectionRunner",
    "RecoveryIntentsView",
    "RefusedRun",
    "RunFactsView",
    "RunsView",
    "ThreadsView",
    "ViewCipher",
    "builtin_projections",
    "open_views",
]
