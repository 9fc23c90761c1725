"""Random command sequences: the state always equals the fold of the stored events."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from runjournal import Journal, RunjournalError
from runjournal.adapters.clock import ManualClock
from runjournal.domain.transitions import RunState, allowed_targets

WORKERS = ("w1", "w2")


def fold(history) -> str:
    """The state a run's events lead to, read off the transition table alone."""
    state = None
    for event in history:
        if event.type == "Created":
            assert state is None
            state = RunState.CREATED
            continue
        targets = allowed_targets(state, event.type)
        assert targets, f"stored forbidden transition {state} -> {event.type}"
        target = event.data.get("to_state")
        state = RunState(target) if target else next(iter(targets))
        assert state in targets
    return str(state)


class JournalMachine(RuleBasedStateMachine):
    """Drives a journal with any command in any order, refusals included."""

    @initialize()
    def open(self) -> None:
        self.clock = ManualClock()
        self.journal = Journal.open("memory://", clock=self.clock)
        self.runs: list[str] = []
        self.claims: list = []
        self.approvals: list[str] = []

    def teardown(self) -> None:
        if hasattr(self, "journal"):
            self.journal.close()

    def _try(self, command, *args, **kwargs):
        before = self.journal.max_position()
        try:
            return command(*args, **kwargs)
        except RunjournalError:
            assert self.journal.max_position() == before, "a refused command appended"
            return None

    @rule(priority=st.integers(-2, 2))
    def submit(self, priority: int) -> None:
        run = self.journal.submit(agent_id="a", input={"n": len(self.runs)}, priority=priority)
        self.runs.append(run.run_id)

    @rule(worker=st.sampled_from(WORKERS), lease=st.sampled_from([5, 30]))
    def claim(self, worker: str, lease: int) -> None:
        claim = self.journal.claim_next(worker_id=worker, lease_seconds=lease)
        if claim is not None:
            self.claims.append(claim)

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), verb=st.sampled_from(["start", "heartbeat", "step", "approval", "complete", "fail", "finish_cancel"]))
    def worker_command(self, data, verb: str) -> None:
        claim = data.draw(st.sampled_from(self.claims))
        j = self.journal
        commands = {
            "start": lambda: j.start(claim),
            "heartbeat": lambda: j.heartbeat(claim),
            "step": lambda: j.record_step(claim, "step", {"i": 1}),
            "approval": lambda: self.approvals.append(j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})),
            "complete": lambda: j.complete(claim, output={"ok": True}),
            "fail": lambda: j.fail(claim, error="boom"),
            "finish_cancel": lambda: j.finish_cancel(claim),
        }
        self._try(commands[verb])

    @precondition(lambda self: self.approvals)
    @rule(data=st.data(), decision=st.sampled_from(["approve", "reject", "edit"]))
    def decide(self, data, decision: str) -> None:
        approval = data.draw(st.sampled_from(self.approvals))
        edits = {"env": "staging"} if decision == "edit" else None
        self._try(self.journal.resolve_approval, approval, decision=decision, edits=edits, actor="bob")

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def cancel(self, data) -> None:
        self._try(self.journal.cancel, data.draw(st.sampled_from(self.runs)), actor="carol")

    @rule(seconds=st.sampled_from([1, 10, 40]), replay=st.booleans())
    def time_passes(self, seconds: int, replay: bool) -> None:
        self.clock.advance(seconds)
        self.journal.expire_leases(can_replay=lambda _: replay)

    @invariant()
    def state_is_the_fold_of_the_log(self) -> None:
        for run_id in self.runs:
            history = self.journal.history(run_id)
            run = self.journal.get_run(run_id)
            assert run.state == fold(history)
            assert run.version == len(history) == history[-1].version

    @invariant()
    def every_chain_verifies_and_each_run_completes_at_most_once(self) -> None:
        report = self.journal.verify()
        assert report.ok, report.problems
        for run_id in self.runs:
            types = [e.type for e in self.journal.history(run_id)]
            assert types.count("Completed") <= 1
            assert sum(t in ("Completed", "Failed", "Cancelled") for t in types) <= 1


JournalMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestJournalMachine = JournalMachine.TestCase
