"""Decisions the domain reads off its table: where a run rests, how a cancel lands, when a lease is due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runjournal.domain import RESTING_STATES, TERMINAL_STATES, RunState
from runjournal.domain.transitions import GRACED_STATES

from .builders import LATER, LEASE, T0, run_in

S = RunState


def test_a_run_rests_when_it_is_over_or_waits_for_a_person() -> None:
    assert RESTING_STATES == TERMINAL_STATES | {S.WAITING_FOR_APPROVAL}


def test_only_a_run_its_expired_lease_may_fail_waits_for_the_grace() -> None:
    assert GRACED_STATES == {S.RUNNING}


# state -> the events a cancel appends (none: nothing to do)
CANCEL = {
    "created": ["Cancelled"],
    "queued": ["Cancelled"],
    "claimed": ["CancelRequested"],  # its worker stops it
    "running": ["CancelRequested"],
    "waiting_for_approval": ["Cancelled"],
    "resuming": ["CancelRequested", "Cancelled"],  # no lease: nobody will stop it, so at once
    "cancelling": [],
    "completed": [],
    "failed": [],
    "cancelled": [],
}


@pytest.mark.parametrize("state", list(CANCEL))
def test_a_cancel_lands_as_the_table_and_the_lease_say(state: str) -> None:
    run = run_in(state)
    assert run.can_be_cancelled == bool(CANCEL[state])
    if run.can_be_cancelled:
        run.cancel_as_asked(reason="stop", actor="bob", now=T0)
    assert [type(e).__name__ for e in run.collect_events()] == CANCEL[state]


def test_a_claimed_run_whose_lease_is_gone_is_cancelled_at_once() -> None:
    run = run_in("claimed")
    run.expire_lease(now=LATER, can_replay=True)
    run.collect_events()
    assert run.state == S.QUEUED
    run.cancel_as_asked(reason="stop", actor="bob", now=LATER)
    assert run.state == S.CANCELLED


@pytest.mark.parametrize(("state", "now", "grace", "due"), [
    ("claimed", T0, timedelta(0), False),  # the lease has not run out
    ("claimed", LEASE + timedelta(seconds=1), timedelta(hours=1), True),  # no grace for a claim
    ("running", LEASE + timedelta(seconds=1), timedelta(hours=1), False),  # a running run gets the grace
    ("running", LEASE + timedelta(seconds=1), timedelta(0), True),
    ("cancelling", LATER, timedelta(0), True),  # its worker died while cancelling: cancelled
    ("queued", LATER, timedelta(0), False),  # no lease at all
    ("waiting_for_approval", LATER, timedelta(0), False),
])
def test_an_expired_lease_is_acted_on_only_when_due(state: str, now, grace: timedelta, due: bool) -> None:
    run = run_in(state)
    assert run.expire_if_due(now=now, running_grace=grace, can_replay=True) is due
    events = [type(e).__name__ for e in run.collect_events()]
    if not due:
        assert events == []
    elif state == "cancelling":
        assert (events, run.state, run.cancel_reason) == (["Cancelled"], S.CANCELLED, "stop")
    else:
        assert events == ["LeaseExpired"]
