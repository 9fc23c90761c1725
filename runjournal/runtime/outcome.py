"""How one execution of a run ended: what the harness does next with it."""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    """How an execution ended: what the harness does next with the run."""

    COMPLETING = "completing"  # the agent finished: the harness saves its Completed, grouped with others
    COMPLETED = "completed"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RESUME_FAILED = "resume_failed"  # the agent failed a resume that will be retried
    LEASE_LOST = "lease_lost"  # another worker has the run now (it expired, or was taken over)

    @property
    def succeeded(self) -> bool:
        """True for what counts as an adapter success: an answer, or a pause for a person."""
        return self in (Outcome.COMPLETED, Outcome.WAITING_FOR_APPROVAL)
