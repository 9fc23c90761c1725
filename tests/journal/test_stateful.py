"""Random command sequences against an independent model of the runs (``model.py``).

The machine drives a memory:// journal and the model with the same commands:
mostly valid ones (preconditions pick the claims, runs and approvals that the
model says are live), and some that must be refused (stale claims, wrong
states, resolved approvals). After every step the journal's runs, histories,
queue and leases must equal the model's, every stored history must be a walk
of the transition table and every chain must verify. Across the test every
event type of the table must have been stored at least once.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from eventsourcing.utils import resolve_topic
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from runjournal.adapters.clock import ManualClock
from runjournal.domain.transitions import TRANSITIONS, allowed_targets

from runjournal import Claim, InvalidInput, InvalidTransition, Journal, LeaseLost, RunjournalError
from runjournal.runtime.recovery import recover

from . import model as m
from .helpers import legacy_run_without_request
from .model import Model, Outcome

TABLE_EVENTS = frozenset({"Created", *TRANSITIONS})  # every event type, read off the table
STORED: set[str] = set()  # event types stored, across every example
REFUSED: Counter[str] = Counter()  # refusals seen, by error class, across every example

WORKERS = st.sampled_from(("w1", "w2"))
LEASES = st.sampled_from((30, 5))
PRIORITIES = st.integers(-1, 2)
DECISIONS = st.sampled_from(("approve", "reject", "edit"))
MAX_RECOVERY_ATTEMPTS = 1
WORKER_VERBS = ("start", "heartbeat", "step", "approval", "complete", "fail", "fail_agent", "finish_cancel")
NEXT_VERBS = {  # what a worker holding a run in each state goes on to do
    "claimed": ("start", "start", "heartbeat"),
    "running": (
        "step",
        "step",
        "approval",
        "approval",
        "approval",
        "heartbeat",
        "complete",
        "fail",
        "fail_agent",
    ),
    "cancelling": ("finish_cancel", "finish_cancel", "heartbeat"),
}


def fold(history: list[Any]) -> str:
    """The state a run's stored events lead to, read off the domain's table alone."""
    state = None
    for event in history:
        if event.type == "Created":
            assert state is None, "a second Created"
            state = "created"
            continue
        targets = allowed_targets(state, event.type)
        assert targets, f"stored forbidden transition {state} -> {event.type}"
        target = event.data.get("to_state")
        state = str(target) if target else str(next(iter(targets)))
        assert state in targets
    return str(state)


class JournalMachine(RuleBasedStateMachine):
    """A journal and the model, driven by the same commands."""

    runs = Bundle("runs")
    claims = Bundle("claims")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.journal = Journal.open("memory://", clock=self.clock)
        self.model = Model(self.clock.now())
        self.asked = 0  # approvals asked for: which kind of deadline the next one gets
        self.latest: dict[str, Claim] = {}  # run -> the claim of its latest epoch
        self.issued: list[Claim] = []  # every claim ever given, stale ones included
        self.checked: dict[str, int] = {}  # run -> the model's version when last compared
        self.checked_at = 0  # the log position runs were last compared at
        self.verified_at = -1  # the log position chains were last verified at

    def teardown(self) -> None:
        self.journal.close()

    # -- checking one command ------------------------------------------------

    def _appended(self, before: int, outcome: Outcome) -> None:
        """The command appended exactly the model's events, in order."""
        stored = [
            (str(n.originator_id), resolve_topic(n.topic).__name__)
            for page in self.journal.notifications(before)
            for n in page
        ]
        assert stored == list(outcome.events)

    def _do(self, outcome: Outcome, command: Any) -> Any:
        """Run ``command``: refused as the model says (appending nothing), or appending its events."""
        before = self.journal.max_position()
        if outcome.refused:
            with pytest.raises(RunjournalError) as caught:
                command()
            error = caught.value
            assert type(error) is outcome.error, f"expected {outcome.error.__name__}, got {error!r}"
            if outcome.run_id is not None:
                assert error.run_id == outcome.run_id
            if outcome.error is InvalidTransition:
                assert (error.state, error.event) == (outcome.state, outcome.event), error
            if outcome.error is LeaseLost:
                assert error.holder == outcome.holder, error
            assert self.journal.max_position() == before, "a refused command appended"
            REFUSED[outcome.error.__name__] += 1
            return None
        result = command()
        self._appended(before, outcome)
        return result

    def _live(self, *states: str) -> list[Claim]:
        """The current claims of runs in ``states``: commands the model expects to be valid."""
        return [
            self.latest[run_id]
            for run_id, run in self.model.runs.items()
            if run.state in states and run_id in self.latest
        ]

    def _claimed(self, claims: list[Claim], resumes: dict[str, Any]) -> None:
        for claim in claims:
            run = self.model.runs[claim.run_id]
            assert (claim.worker_id, claim.epoch) == (run.worker, run.epoch)
            assert claim.lease_expires_at == run.lease_expires_at or run.state != "claimed"
            assert (claim.resume is None) == (resumes[claim.run_id] is None)
            self.latest[claim.run_id] = claim
            self.issued.append(claim)

    def _worker(self, verb: str, claim: Claim, *, lease: int = 30) -> Any:
        """One worker command, checked against the model."""
        j, mod, run_id, w, e = self.journal, self.model, claim.run_id, claim.worker_id, claim.epoch
        if verb == "start":
            return self._do(mod.start(run_id, w, e), lambda: j.start(claim))
        if verb == "heartbeat":
            return self._do(
                mod.heartbeat(run_id, w, e, lease), lambda: j.heartbeat(claim, lease_seconds=lease)
            )
        if verb == "step":
            return self._do(
                mod.record_step(run_id, w, e), lambda: j.record_step(claim, "tool_result", {"i": 1})
            )
        if verb == "approval":
            # Half the approvals have no deadline; the others expire in 10 s, rejecting or failing.
            self.asked += 1
            expires_in, on_expiry = ((None, "reject"), (10.0, "reject"), (None, "reject"), (10.0, "fail"))[self.asked % 4]
            outcome = mod.request_approval(run_id, w, e, expires_in, on_expiry)
            approval_id = self._do(
                outcome,
                lambda: j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"},
                                           expires_in=expires_in, on_expiry=on_expiry),
            )
            if approval_id is not None:
                mod.approval_given(run_id, approval_id)
            return approval_id
        if verb == "complete":
            return self._do(
                mod.complete(run_id, w, e, {"by": w}), lambda: j.complete(claim, output={"by": w})
            )
        if verb == "fail":
            return self._do(
                mod.fail(run_id, "boom", worker=(w, e)), lambda: j.fail(claim, error="boom")
            )
        if verb == "fail_agent":  # a failed resume is retried while attempts are left
            return self._do(
                mod.fail_agent(run_id, "agent broke", (w, e), MAX_RECOVERY_ATTEMPTS),
                lambda: j.fail(claim, error="agent broke", stage="stream", retries=MAX_RECOVERY_ATTEMPTS),
            )
        assert verb == "finish_cancel"
        return self._do(mod.finish_cancel(run_id, w, e), lambda: j.finish_cancel(claim))

    # -- submitting ------------------------------------------------------------

    @rule(
        target=runs,
        priority=PRIORITIES,
        request=st.sampled_from(("plain",) * 5 + ("no-request", "legacy", "refused", "key k1", "key k2")),
    )
    def submit(self, priority: int, request: str) -> Any:
        """A plain run, one refused by policy, an idempotent one; ``input=None`` is refused (nothing stored),
        and a ``legacy`` run has no persisted request, as stores from before that refusal hold."""
        key = request.split()[1] if request.startswith("key") else None
        payload = None if request in ("no-request", "legacy") else {"n": len(self.model.runs), "key": key}
        refuse = "policy: agent denied" if request == "refused" else None
        before = self.journal.max_position()
        if request == "no-request":
            with pytest.raises(InvalidInput, match="a run needs an input"):
                self.journal.submit(agent_id="a", input=None, priority=priority, actor="alice")
            assert self.journal.max_position() == before
            REFUSED["InvalidInput"] += 1
            return multiple()
        if request == "legacy":
            snap = self.journal.get_run(legacy_run_without_request(self.journal, priority=priority, actor="alice"))
        else:
            snap = self.journal.submit(
                agent_id="a",
                input=payload,
                priority=priority,
                refuse=refuse,
                idempotency_key=key,
                actor="alice",
            )
        outcome = self.model.submit(
            snap.run_id, input=payload, priority=priority, refuse=refuse, key=key
        )
        self._appended(before, outcome)
        return snap.run_id

    @rule(target=runs, parent=runs)
    def retry(self, parent: str) -> Any:
        """What `runjournal retry` does: a new run with the same request, linked to its parent."""
        old = self.journal.get_run(parent)
        before = self.journal.max_position()
        if old.input is None:  # a legacy run has no request to retry with
            with pytest.raises(InvalidInput, match="a run needs an input"):
                self.journal.submit(agent_id=old.agent_id, input=None, parent_run_id=parent)
            assert self.journal.max_position() == before
            return multiple()
        snap = self.journal.submit(
            agent_id=old.agent_id,
            input=old.input,
            thread_id=old.thread_id,
            priority=old.priority,
            parent_run_id=parent,
            parent_version=old.version,
        )
        assert (snap.parent_run_id, snap.parent_version) == (
            parent,
            self.model.runs[parent].version,
        )
        outcome = self.model.submit(
            snap.run_id, input=old.input, priority=old.priority, parent_run_id=parent
        )
        self._appended(before, outcome)
        return snap.run_id

    @rule(target=runs, priorities=st.lists(PRIORITIES, max_size=3), refused=st.booleans())
    def submit_many(self, priorities: list[int], refused: bool) -> Any:
        requests: list[dict[str, Any]] = [
            {"agent_id": "a", "input": {"i": i}, "priority": p} for i, p in enumerate(priorities)
        ]
        if refused and requests:
            requests[-1]["refuse"] = "policy: tool denied"
        before = self.journal.max_position()
        snaps = self.journal.submit_many(requests, actor="bulk")
        assert len(snaps) == len(requests)
        events: list[tuple[str, str]] = []
        for snap, request in zip(snaps, requests, strict=True):
            outcome = self.model.submit(
                snap.run_id,
                input=request["input"],
                priority=request["priority"],
                refuse=request.get("refuse"),
            )
            events.extend(outcome.events)
        self._appended(before, Outcome(events=tuple(events)))
        return multiple(*(s.run_id for s in snaps))

    # -- claiming --------------------------------------------------------------

    @rule(
        target=claims,
        worker=WORKERS,
        lease=LEASES,
        start=st.booleans(),
        count=st.sampled_from((None, None, 1, 2, 3)),
    )
    def claim(self, worker: str, lease: int, start: bool, count: int | None) -> Any:
        """``claim_next`` (``count=None``) or ``claim_many``; ``start`` appends Started/Resumed too."""
        resumes = {r: self.model.runs[r].resume for r in self.model.queue()[: count or 1]}
        before = self.journal.max_position()
        if count is None:
            one = self.journal.claim_next(worker_id=worker, lease_seconds=lease, start=start)
            claims = [one] if one is not None else []
        else:
            claims = self.journal.claim_many(
                worker_id=worker, count=count, lease_seconds=lease, start=start
            )
        chosen, outcome = self.model.claim(worker, lease, count=count or 1, start=start)
        self._appended(before, outcome)
        assert [c.run_id for c in claims] == chosen
        self._claimed(claims, resumes)
        return multiple(*claims)

    # -- valid worker commands (the model says the claim is current) -------------------

    @precondition(lambda self: self._live(*m.LEASED))
    @rule(data=st.data(), lease=LEASES)
    def worker_goes_on(self, data: st.DataObject, lease: int) -> None:
        """A worker holding a run does what its state asks next (the model says it is valid).

        claimed: start (``Started``, or ``Resumed`` after a decision or a recovery);
        running: record a step, ask for approval, complete, heartbeat or fail;
        cancelling: stop (``Cancelled``) or heartbeat.
        """
        claim = data.draw(st.sampled_from(self._live(*m.LEASED)))
        verb = data.draw(st.sampled_from(NEXT_VERBS[self.model.runs[claim.run_id].state]))
        self._worker(verb, claim, lease=lease)

    @precondition(lambda self: self._live("running"))
    @rule(data=st.data(), verb=st.sampled_from(("step", "approval")))
    def agent_works(self, data: st.DataObject, verb: str) -> None:
        """The agent of a running run records a step or stops to ask a person."""
        self._worker(verb, data.draw(st.sampled_from(self._live("running"))))

    def _resumed(self) -> list[Claim]:
        return [c for c in self._live("running") if self.model.runs[c.run_id].resumed is not None]

    @precondition(lambda self: self._resumed())
    @rule(data=st.data())
    def resumed_agent_fails(self, data: st.DataObject) -> None:
        """The agent fails a resumed decision: retried while attempts are left (``ResumeFailed``), else final."""
        self._worker("fail_agent", data.draw(st.sampled_from(self._resumed())))

    @precondition(lambda self: self._live("running"))
    @rule(data=st.data())
    def complete_many(self, data: st.DataObject) -> None:
        """A group commit of current claims, stale ones and repeats of one run."""
        pool = self._live("running") + self.issued
        claims = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        expected = self.model.complete_many(
            [(c.run_id, c.worker_id, c.epoch, {"batch": i}) for i, c in enumerate(claims)]
        )
        before = self.journal.max_position()
        results = self.journal.complete_many([(c, {"batch": i}) for i, c in enumerate(claims)])
        assert len(results) == len(claims)
        for result, outcome in zip(results, expected, strict=True):
            if outcome.refused:
                assert type(result) is outcome.error, (result, outcome)
                REFUSED[outcome.error.__name__] += 1
            else:
                assert not isinstance(result, RunjournalError), result
                assert result.state == "completed"
        self._appended(before, Outcome(events=tuple(e for o in expected for e in o.events)))

    @precondition(lambda self: self._live("running"))
    @rule(target=claims, data=st.data(), worker=WORKERS, lease=LEASES, count=st.sampled_from((0, 1, 2, 3)))
    def complete_and_claim(self, data: st.DataObject, worker: str, lease: int, count: int) -> Any:
        """A worker's turn as one save: completions (current, stale, repeated) and the next claims."""
        pool = self._live("running") + self.issued
        items = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        expected = self.model.complete_many(
            [(c.run_id, c.worker_id, c.epoch, {"turn": i}) for i, c in enumerate(items)]
        )
        resumes = {r: self.model.runs[r].resume for r in self.model.queue()[:count]}
        before = self.journal.max_position()
        refusals, claims = self.journal.complete_and_claim(
            [(c, {"turn": i}) for i, c in enumerate(items)], worker_id=worker, count=count, lease_seconds=lease,
            start=True,
        )
        chosen, claimed = self.model.claim(worker, lease, count=count, start=True) if count else ([], Outcome())
        for refusal, outcome in zip(refusals, expected, strict=True):
            if outcome.refused:
                assert type(refusal) is outcome.error, (refusal, outcome)
                REFUSED[outcome.error.__name__] += 1
            else:
                assert refusal is None, refusal
        events = tuple(e for o in expected for e in o.events) + claimed.events
        self._appended(before, Outcome(events=events))
        assert [c.run_id for c in claims] == chosen
        self._claimed(claims, resumes)
        return multiple(*claims)

    @precondition(lambda self: self.model.approval_run)
    @rule(data=st.data(), decision=DECISIONS)
    def decide(self, data: st.DataObject, decision: str) -> None:
        """A person approves, rejects or edits: mostly a pending approval, sometimes a settled one."""
        pending = sorted(r.approval for r in self.model.runs.values() if r.approval)
        approval_id = data.draw(st.sampled_from(pending * 4 + sorted(self.model.approval_run)))
        edits = {"env": "staging"} if decision == "edit" else None
        snap = self._do(
            self.model.resolve_approval(approval_id, decision),
            lambda: self.journal.resolve_approval(
                approval_id, decision=decision, edits=edits, actor="bob"
            ),
        )
        if snap is not None:
            assert snap.pending_resume["decision"]["decision"] == decision
            assert snap.pending_resume["decision"]["actor"] == "bob"

    # -- worker commands that must be refused, or that may be ------------------------

    def _fenced(self) -> list[Claim]:
        """Claims of live runs that are not current: an older epoch, a lease gone, another worker."""
        stale = [
            c
            for c in self.issued
            if not self.model.runs[c.run_id].terminal
            and (self.model.runs[c.run_id].holder, self.model.runs[c.run_id].epoch)
            != (c.worker_id, c.epoch)
        ]
        return stale + [c.model_copy(update={"worker_id": "w3"}) for c in self._live(*m.LEASED)]

    @precondition(lambda self: self._fenced())
    @rule(data=st.data(), verb=st.sampled_from(WORKER_VERBS))
    def fenced_worker_command(self, data: st.DataObject, verb: str) -> None:
        """A worker presumed dead comes back, or one presents another's epoch: table or fence refuses."""
        self._worker(verb, data.draw(st.sampled_from(self._fenced())))

    @rule(claim=claims, verb=st.sampled_from(WORKER_VERBS))
    def any_worker_command(self, claim: Claim, verb: str) -> None:
        """Any claim ever given, any verb: valid or refused, as the model says."""
        self._worker(verb, claim)

    # -- operators --------------------------------------------------------------------

    @rule(run_id=runs, reason=st.sampled_from((None, "operator")))
    def cancel(self, run_id: str, reason: str | None) -> None:
        snap = self._do(
            self.model.cancel(run_id, reason),
            lambda: self.journal.cancel(run_id, reason=reason, actor="carol"),
        )
        assert snap.state == self.model.runs[run_id].state

    @precondition(lambda self: self._held_or_resuming())
    @rule(data=st.data(), reason=st.sampled_from((None, "operator")))
    def cancel_active(self, data: st.DataObject, reason: str | None) -> None:
        """Cancel a run a worker holds (it must stop it) or one about to resume."""
        self.cancel(data.draw(st.sampled_from(self._held_or_resuming())), reason)

    def _held_or_resuming(self) -> list[str]:
        return [
            r
            for r, run in self.model.runs.items()
            if run.state in ("claimed", "running", "resuming")
        ]

    @rule(run_id=runs, verb=st.sampled_from(("attempt_recovery", "attempt_recovery", "fail_run")))
    def operator(self, run_id: str, verb: str) -> None:
        if verb == "fail_run":
            self._do(
                self.model.fail(run_id, "operator gave up"),
                lambda: self.journal.fail_run(run_id, error="operator gave up", actor="dave"),
            )
        else:
            self._do(
                self.model.attempt_recovery(run_id, "startup-recovery"),
                lambda: self.journal.attempt_recovery(run_id, resume_kind="startup-recovery"),
            )

    # -- time, leases and recovery ------------------------------------------------------

    @rule(seconds=st.sampled_from((1, 5, 10, 40)))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.model.advance(seconds)

    @rule(
        seconds=st.sampled_from((0, 5, 10, 40)),
        replay=st.booleans(),
        grace=st.sampled_from((0, 0, 20)),
    )
    def expire_leases(self, seconds: int, replay: bool, grace: int) -> None:
        """Time passes (maybe), then any worker expires the leases that ran out."""
        self.time_passes(seconds)
        handled, outcome = self.model.expire_leases(replay=replay, grace=grace)
        before = self.journal.max_position()
        result = self.journal.expire_leases(
            can_replay=lambda _: replay, running_grace=timedelta(seconds=grace)
        )
        assert set(result) == handled and len(result) == len(handled)
        stored = [
            (str(n.originator_id), resolve_topic(n.topic).__name__)
            for p in self.journal.notifications(before)
            for n in p
        ]
        assert sorted(stored) == sorted(outcome.events)  # one event per run, in expiry order

    @precondition(lambda self: any(r.deadline and r.approval for r in self.model.runs.values()))
    @rule(seconds=st.sampled_from((0, 5, 10, 20)))
    def approvals_expire(self, seconds: int) -> None:
        """A worker's pass over approval deadlines, after ``seconds``: each one passed expires, once."""
        self.time_passes(seconds)
        handled, outcome = self.model.expire_approvals()
        before = self.journal.max_position()
        assert set(self.journal.expire_approvals()) == handled
        stored = [
            (str(n.originator_id), resolve_topic(n.topic).__name__)
            for p in self.journal.notifications(before)
            for n in p
        ]
        assert sorted(stored) == sorted(outcome.events)

    @rule(seconds=st.sampled_from((0, 0, 60)), replay=st.booleans(), grace=st.sampled_from((0, 20)))
    def recover(self, seconds: int, replay: bool, grace: int) -> None:
        """A restart after ``seconds``: startup recovery (expired leases, then resuming runs)."""
        self.time_passes(seconds)
        config = SimpleNamespace(
            enabled=True,
            resume_resuming_runs_on_startup=True,
            max_recovery_attempts=MAX_RECOVERY_ATTEMPTS,
            stale_running_after_seconds=grace,
        )
        outcome = self.model.recover(replay=replay, grace=grace, max_attempts=MAX_RECOVERY_ATTEMPTS)
        before = self.journal.max_position()
        recover(self.journal, config, can_replay=lambda _: replay)
        stored = [
            (str(n.originator_id), resolve_topic(n.topic).__name__)
            for p in self.journal.notifications(before)
            for n in p
        ]
        assert sorted(stored) == sorted(outcome.events)

    @precondition(lambda self: any(r.state == "resuming" for r in self.model.runs.values()))
    @rule(seconds=st.sampled_from((0, 60)), replay=st.booleans())
    def restart_while_resuming(self, seconds: int, replay: bool) -> None:
        """A restart while some runs wait to resume: each gets a recovery attempt, or fails when out of them."""
        self.recover(seconds, replay, 0)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def every_run_is_as_the_model_says(self) -> None:
        """Every run the step touched, in the log or in the model, is as the model says."""
        position = self.journal.max_position()
        touched = {
            str(n.originator_id)
            for page in self.journal.notifications(self.checked_at)
            for n in page
        }
        touched |= {r for r, run in self.model.runs.items() if self.checked.get(r) != run.version}
        assert touched <= set(self.model.runs), "the log has a run the model does not know"
        for run_id in sorted(touched):
            want = self.model.runs[run_id]
            self.checked[run_id] = want.version
            history = self.journal.history(run_id)
            types = [e.type for e in history]
            STORED.update(types)
            assert types == want.events, run_id
            assert [e.version for e in history] == list(range(1, len(history) + 1)), (
                "versions have a gap"
            )
            assert m.legal(types), types
            run = self.journal.get_run(run_id)
            assert run.state == fold(history) == want.state
            got = (
                run.version,
                run.priority,
                run.epoch,
                run.worker_id,
                run.lease_expires_at,
                (run.pending_approval or {}).get("approval_id"),
                run.recovery_attempts,
                run.steps,
                run.output,
                run.error,
                run.cancel_reason,
                run.parent_run_id,
            )
            expected = (
                want.version,
                want.priority,
                want.epoch,
                want.worker,
                want.lease_expires_at,
                want.approval,
                want.recovery_attempts,
                want.steps,
                want.output,
                want.error,
                want.cancel_reason,
                want.parent_run_id,
            )
            assert got == expected, run_id
            if not want.terminal:  # what a worker resumes with
                resume = run.pending_resume and (
                    run.pending_resume["resume_kind"],
                    (run.pending_resume["decision"] or {}).get("decision"),
                )
                assert resume == want.resume, run_id
        self.checked_at = position

    @invariant()
    def the_inline_views_are_as_the_model_says(self) -> None:
        assert [row.run_id for row in self.journal.queue()] == self.model.queue()
        leases = {
            row.run_id: (row.worker_id, row.epoch, row.expires_at) for row in self.journal.leases()
        }
        assert leases == {r: (w, e, t.timestamp()) for r, (w, e, t) in self.model.leases().items()}

    @invariant()
    def every_chain_verifies(self) -> None:
        if self.verified_at == self.journal.max_position():
            return  # nothing stored since the last check
        self.verified_at = self.journal.max_position()
        report = self.journal.verify()
        assert report.ok, report.problems
        assert report.events_checked == self.journal.max_position()


SETTINGS = settings(
    max_examples=200,  # swarm testing disables some rules per example: this many (of 60 steps) reach every event type
    stateful_step_count=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


def test_the_model_table_is_the_domain_table() -> None:
    """The model's table was copied from DESIGN.md; the domain's must say the same."""
    domain = {
        e: {str(s): frozenset(str(t) for t in ts) for s, ts in row.items()}
        for e, row in TRANSITIONS.items()
    }
    assert domain == m.TABLE
    assert frozenset(m.EVENT_TYPES) == TABLE_EVENTS


def test_random_command_sequences_match_the_model() -> None:
    STORED.clear()
    REFUSED.clear()
    run_state_machine_as_test(JournalMachine, settings=SETTINGS)
    assert STORED == TABLE_EVENTS, f"never stored: {sorted(TABLE_EVENTS - STORED)}"
    assert REFUSED["InvalidTransition"] and REFUSED["LeaseLost"] and REFUSED["InvalidInput"], REFUSED


def test_recovery_runs_out_of_attempts_as_the_model_says() -> None:
    """A path the random machine seldom walks: a resumed run's lease expires after its last attempt."""
    clock = ManualClock()
    journal = Journal.open("memory://", clock=clock)
    model = Model(clock.now())
    config = SimpleNamespace(
        enabled=True,
        resume_resuming_runs_on_startup=True,
        max_recovery_attempts=1,
        stale_running_after_seconds=0,
    )
    try:
        run_id = journal.submit(agent_id="a", input={}).run_id
        model.submit(run_id, input={}, priority=0)
        claim = journal.claim_next(worker_id="w1", start=True)
        assert claim is not None
        model.claim("w1", 30, start=True)
        approval_id = journal.request_approval(claim, tool_name="deploy")
        model.request_approval(run_id, "w1", claim.epoch)
        model.approval_given(run_id, approval_id)
        journal.resolve_approval(approval_id, decision="approve", actor="bob")
        model.resolve_approval(approval_id, "approve")
        for seconds in (0, 60):  # one attempt, then a claim whose lease runs out: no attempt left
            clock.advance(seconds)
            model.advance(seconds)
            recover(journal, config, can_replay=lambda _: False)
            model.recover(replay=False, grace=0, max_attempts=1)
            if seconds == 0:
                journal.claim_next(worker_id="w2")
                model.claim("w2", 30)
        assert [e.type for e in journal.history(run_id)] == model.runs[run_id].events
        assert journal.get_run(run_id).error == model.runs[run_id].error == m.EXHAUSTED
    finally:
        journal.close()
