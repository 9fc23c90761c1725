"""Every (state, event) pair of the transition table: allowed pairs append, forbidden ones do not."""

from __future__ import annotations

import pytest
from runjournal.domain import InvalidTransition, LeaseLost, RunState
from runjournal.domain.transitions import (
    LEASED_STATES,
    TRANSITIONS,
    all_pairs,
    allowed_targets,
    check,
)

from .builders import attempt, run_in

PAIRS = all_pairs()


def _run_for(state: RunState, event: str):
    # Resumed needs a claimed run with a decision pending; Started one without; ResumeFailed
    # a run running a resumed decision.
    via_resume = (event, state) in (("Resumed", RunState.CLAIMED), ("ResumeFailed", RunState.RUNNING))
    return run_in(state, via_resume=via_resume)


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_the_aggregate_obeys_the_table_for_every_pair(state: RunState, event: str) -> None:
    run = _run_for(state, event)
    version = run.version
    targets = allowed_targets(state, event)
    if targets:
        attempt(run, event)
        appended = run.collect_events()
        assert [type(e).__name__ for e in appended] == [event]
        assert run.state in targets
        assert run.version == version + 1
    else:
        expected = InvalidTransition if state in LEASED_STATES else (InvalidTransition, LeaseLost)
        with pytest.raises(expected):
            attempt(run, event)
        assert run.collect_events() == []
        assert run.version == version
        assert run.state == state


def test_invalid_transition_names_run_state_and_event() -> None:
    run = run_in(RunState.COMPLETED)
    with pytest.raises(InvalidTransition) as info:
        attempt(run, "Failed")
    message = str(info.value)
    assert run.run_id in message and "completed" in message and "Failed" in message
    assert (info.value.run_id, info.value.state, info.value.event) == (run.run_id, "completed", "Failed")


def test_terminal_states_allow_nothing() -> None:
    for state in (s for s in RunState if s.is_terminal):
        assert not any(state in sources for sources in TRANSITIONS.values())


def test_every_non_terminal_state_can_fail() -> None:
    for state in RunState:
        assert bool(allowed_targets(state, "Failed")) is (not state.is_terminal)


def test_an_ambiguous_transition_needs_its_target() -> None:
    with pytest.raises(InvalidTransition):
        check("r1", "running", "LeaseExpired")
    assert check("r1", "running", "LeaseExpired", "failed") == RunState.FAILED
    with pytest.raises(InvalidTransition):
        check("r1", "running", "LeaseExpired", "completed")


def test_every_live_state_says_what_recovery_does_and_a_terminal_one_says_nothing() -> None:
    from runjournal.domain.transitions import NO_RECOVERY, RECOVERY_INTENTS, TERMINAL_STATES, RunState, recovery_intent

    assert set(RECOVERY_INTENTS) == set(RunState) - TERMINAL_STATES
    assert all(recovery_intent(s) == NO_RECOVERY for s in TERMINAL_STATES)
    assert recovery_intent("queued") == "execute" and recovery_intent("resuming") == "resume"
