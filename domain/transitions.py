"""The run state machine, as data.

``TRANSITIONS`` is the single source of truth: the ``Run`` aggregate enforces
it, the docs' state table is generated from it and the tests walk every pair of
it. Nothing else in the code base asks ``if state == ...`` to decide whether an
event may happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import cast

from .errors import InvalidTransition


class RunState(StrEnum):
    """Where a run is in its life."""

    CREATED = "created"
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    RESUMING = "resuming"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True when no event can follow."""
        return self in TERMINAL_STATES


S = RunState
TERMINAL_STATES = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
_NON_TERMINAL = tuple(s for s in S if s not in TERMINAL_STATES)

# Event names, in the order of the domain table in DESIGN.md.
EVENT_NAMES: tuple[str, ...] = (
    "Created",
    "Queued",
    "Dequeued",
    "Started",
    "Resumed",
    "LeaseRenewed",
    "LeaseExpired",
    "StepRecorded",
    "ApprovalRequested",
    "ApprovalResolved",
    "ApprovalExpired",
    "RecoveryAttempted",
    "ResumeFailed",
    "CancelRequested",
    "Cancelled",
    "Completed",
    "Failed",
)


def _same(*states: RunState) -> dict[RunState, frozenset[RunState]]:
    return {s: frozenset({s}) for s in states}


def _to(target: RunState, *states: RunState) -> dict[RunState, frozenset[RunState]]:
    return {s: frozenset({target}) for s in states}


# event -> {from state -> allowed target states}. One target for every event
# but LeaseExpired and ApprovalExpired, whose target is a decision the event records.
TRANSITIONS: Mapping[str, Mapping[RunState, frozenset[RunState]]] = {
    "Queued": _to(S.QUEUED, S.CREATED),
    "Dequeued": _to(S.CLAIMED, S.QUEUED, S.RESUMING),
    "Started": _to(S.RUNNING, S.CLAIMED),
    "Resumed": _to(S.RUNNING, S.CLAIMED),
    "LeaseRenewed": _same(S.CLAIMED, S.RUNNING, S.CANCELLING),
    "LeaseExpired": {
        S.CLAIMED: frozenset({S.QUEUED, S.RESUMING}),
        S.RUNNING: frozenset({S.QUEUED, S.FAILED}),
    },
    "StepRecorded": _same(S.RUNNING),
    "ApprovalRequested": _to(S.WAITING_FOR_APPROVAL, S.RUNNING),
    "ApprovalResolved": _to(S.RESUMING, S.WAITING_FOR_APPROVAL),
    # A deadline passed with no decision: rejected (the agent resumes with a reject) or failed, per policy.
    "ApprovalExpired": {S.WAITING_FOR_APPROVAL: frozenset({S.RESUMING, S.FAILED})},
    "RecoveryAttempted": _same(S.RESUMING, S.QUEUED),
    "ResumeFailed": _to(S.RESUMING, S.RUNNING),  # a failed resume waits to be retried
    "CancelRequested": _to(S.CANCELLING, S.RUNNING, S.CLAIMED, S.RESUMING),
    "Cancelled": _to(S.CANCELLED, S.CREATED, S.QUEUED, S.WAITING_FOR_APPROVAL, S.CANCELLING),
    "Completed": _to(S.COMPLETED, S.RUNNING),
    "Failed": _to(S.FAILED, *_NON_TERMINAL),
}

# States a worker may claim from, and states in which a worker holds a lease:
# both read off the table rather than listed again.
CLAIMABLE_STATES = frozenset(TRANSITIONS["Dequeued"])
LEASED_STATES = frozenset(TRANSITIONS["LeaseRenewed"])
# States where a run rests: no worker acts on it (it is over, or waits for a person).
RESTING_STATES = frozenset(s for s in S if s not in CLAIMABLE_STATES | LEASED_STATES | {S.CREATED})
# States whose expired lease may fail the run (a stale running run): recovery's grace applies first.
GRACED_STATES = frozenset(s for s, targets in TRANSITIONS["LeaseExpired"].items() if S.FAILED in targets)

# What startup recovery does for a run in each non-terminal state (DESIGN.md, Recovery); a
# terminal run has nothing done to it. Data, like the table: the recovery view and ``status`` read it.
RECOVERY_INTENTS: dict[RunState, str] = {
    S.CREATED: "queue",
    S.QUEUED: "execute",
    S.CLAIMED: "requeue-if-lease-expired",
    S.RUNNING: "replay-or-fail-if-stale",
    S.RESUMING: "resume",
    S.WAITING_FOR_APPROVAL: "wait-for-approval",
    S.CANCELLING: "cancel-if-lease-expired",
}
NO_RECOVERY = "nothing (terminal)"


def recovery_intent(state: str) -> str:
    """What startup recovery does for a run in ``state``."""
    return RECOVERY_INTENTS.get(RunState(state), NO_RECOVERY)


def allowed_targets(state: str, event: str) -> frozenset[RunState]:
    """The states ``event`` may lead to from ``state``; empty when forbidden.

    Raises ``ValueError`` for a ``state`` that is not a run state.
    """
    # A plain string finds its member: a StrEnum member hashes and compares as its value.
    by_state = cast("Mapping[str, frozenset[RunState]]", TRANSITIONS.get(event, {}))
    found = by_state.get(state)
    if found is None:
        RunState(state)  # a state that is none is an error, not a forbidden transition
        return _NONE
    return found


def is_allowed(state: str, event: str) -> bool:
    """True when the table allows ``event`` in ``state``."""
    return bool(allowed_targets(state, event))


def check(run_id: str, state: str, event: str, target: str | None = None) -> RunState:
    """Return the state ``event`` leads to, or raise ``InvalidTransition``.

    Raises ``ValueError`` for a ``state`` or ``target`` that is not a run state.
    """
    if target is None:
        only = _ONLY_TARGET.get((event, state))
        if only is None:
            RunState(state)
            raise InvalidTransition(run_id, state, event)
        return only
    wanted = RunState(target)
    if wanted in allowed_targets(state, event):
        return wanted
    raise InvalidTransition(run_id, state, event, target=target)


_NONE: frozenset[RunState] = frozenset()
# (event, from state) -> the one state it leads to, for every pair with exactly one target.
_ONLY_TARGET: dict[tuple[str, str], RunState] = {
    (event, str(state)): next(iter(targets))
    for event, by_state in TRANSITIONS.items()
    for state, targets in by_state.items()
    if len(targets) == 1
}


def all_pairs() -> list[tuple[RunState, str]]:
    """Every (state, event) pair, allowed or not, for exhaustive tests and docs."""
    return [(s, e) for s in RunState for e in EVENT_NAMES if e != "Created"]
