"""A resume the agent fails is recorded and retried, not final (reference L1895-1899, L2322-2344).

The failure is a ``ResumeFailed``: the run goes back to ``resuming`` with the same
decision, its waiters get ``ResumeFailedError``, and a worker retries it (resume kind
``startup-recovery``) until ``max_recovery_attempts`` retries are spent; the failure
after the last retry fails the run with the agent's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentFailed, AgentRequest, Chunk

from runjournal import Claim, Harness, InvalidInput, Journal, ResumeFailedError

from .conftest import event, types, workspace


class FailsOnResume:
    """Asks to deploy; resumed, it fails ``failures`` times (``None``: always), then says "deployed"."""

    supports_replay = True

    def __init__(self, failures: int | None) -> None:
        self.failures = failures
        self.resumes: list[Any] = []

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        if request.resume is None:
            yield Chunk.interrupt("deploy", {"env": "prod"}, call_id="c1", message="deploy to prod?")
            return
        self.resumes.append((request.resume_kind, request.decision))
        if self.failures is None or len(self.resumes) <= self.failures:
            raise AgentFailed(f"deploy API down ({len(self.resumes)})")
        yield Chunk.say("deployed")


def _harness(make_harness, agent: FailsOnResume, **recovery: Any) -> Harness:
    ws = workspace({"deployer": {"adapter": "scripted", "script": [{"say": "unused"}]}},
                   routing={"default_agent": "deployer"}, recovery=recovery)
    return make_harness(ws, adapters={"deployer": agent})


@pytest.fixture
def journal():
    journal = Journal.open("memory://")
    yield journal
    journal.close()


async def _approve_and_wait(h: Harness) -> tuple[str, list[ResumeFailedError], Any]:
    """Pause a run, approve it, and wait until it rests: (run id, errors raised to the caller, result)."""
    paused = await h.run({"message": "deploy"})
    assert paused.state == "waiting_for_approval"
    errors: list[ResumeFailedError] = []
    try:
        return paused.run_id, errors, await h.resume(approval_id=paused.approval_id, decision="approve", actor="al")
    except ResumeFailedError as e:
        errors.append(e)
    while True:
        try:
            return paused.run_id, errors, await h.wait(paused.run_id)
        except ResumeFailedError as e:
            errors.append(e)


def test_a_failed_resume_raises_to_the_caller_and_is_recorded(make_harness):
    agent = FailsOnResume(failures=None)
    h = _harness(make_harness, agent, max_recovery_attempts=2)

    async def first_failure() -> tuple[str, ResumeFailedError]:
        paused = await h.run({"message": "deploy"})
        with pytest.raises(ResumeFailedError) as info:
            await h.resume(approval_id=paused.approval_id, decision="approve", actor="al")
        return paused.run_id, info.value

    run_id, error = asyncio.run(first_failure())

    assert (error.run_id, error.attempt, error.retries) == (run_id, 1, 2)
    assert "deploy API down (1)" in str(error) and "retry 1 of 2" in str(error)
    failed = event(h.journal, run_id, "ResumeFailed", index=0)
    assert (failed.data["error"], failed.data["attempt"], failed.data["stage"]) == ("deploy API down (1)", 1, "stream")
    assert (failed.actor, failed.data["resume_kind"]) == ("worker:w1", "startup-recovery")


def _resumed_claim(journal: Journal) -> Claim:
    """A deployer run approved by al and resumed by worker w1."""
    journal.submit(agent_id="deployer", input={"message": "deploy"})
    claim = journal.claim_next(worker_id="w1", start=True)
    assert claim is not None
    approval_id = journal.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
    journal.resolve_approval(approval_id, decision="approve", actor="al")
    claim = journal.claim_next(worker_id="w1", start=True)
    assert claim is not None and claim.resume is not None
    return claim


def test_a_failed_resume_leaves_the_run_resuming_with_its_decision_and_intent(journal):
    claim = _resumed_claim(journal)

    run = journal.fail(claim, error="deploy API down", stage="invoke", retries=2)

    assert (run.state, run.recovery_attempts, run.error) == ("resuming", 1, "deploy API down")
    assert run.pending_resume["resume_kind"] == "startup-recovery"
    assert run.pending_resume["decision"]["decision"] == "approve"
    assert run.lease_expires_at is None
    assert [r.run_id for r in journal.queue()] == [run.run_id]  # claimable again
    journal.catch_up()
    intent = next(i for i in journal.recovery_intents() if i.run_id == run.run_id)
    assert (intent.intent, intent.attempts, intent.resume_kind) == ("resume", 1, "startup-recovery")
    assert intent.resume_payload["decision"] == "approve"
    row = next(r for r in journal.runs() if r.run_id == run.run_id)
    assert (row.state, row.error) == ("resuming", "deploy API down")


def test_a_failure_that_is_not_a_resume_is_final_whatever_the_retries(journal):
    journal.submit(agent_id="echo", input="x")
    claim = journal.claim_next(worker_id="w1", start=True)

    assert journal.fail(claim, error="boom", stage="stream", retries=3).state == "failed"


def test_fail_refuses_a_negative_number_of_retries(journal):
    claim = _resumed_claim(journal)
    end = journal.max_position()
    with pytest.raises(InvalidInput, match="retries: must be a whole number >= 0"):
        journal.fail(claim, error="boom", retries=-1)
    assert journal.max_position() == end


def test_a_resume_is_retried_until_it_succeeds_with_the_same_decision(make_harness):
    agent = FailsOnResume(failures=2)
    h = _harness(make_harness, agent, max_recovery_attempts=3)

    run_id, errors, result = asyncio.run(_approve_and_wait(h))

    assert (result.state, result.output, result.error) == ("completed", {"text": "deployed"}, None)
    assert [e.attempt for e in errors] == [1, 2]
    assert agent.resumes == [("cross-restart", "approve"), ("startup-recovery", "approve"),
                             ("startup-recovery", "approve")]
    assert types(h.journal, run_id)[-9:] == [
        "Dequeued", "Resumed", "ResumeFailed", "Dequeued", "Resumed", "ResumeFailed",
        "Dequeued", "Resumed", "Completed",
    ]
    assert h.journal.get_run(run_id).recovery_attempts == 2
    assert h.failures == 2 and h.health().adapter_failures == 2


def test_the_failure_after_the_last_retry_fails_the_run_with_the_agents_error(make_harness):
    agent = FailsOnResume(failures=None)
    h = _harness(make_harness, agent, max_recovery_attempts=2)

    run_id, errors, result = asyncio.run(_approve_and_wait(h))

    assert (result.state, result.error) == ("failed", "deploy API down (3)")
    assert len(agent.resumes) == 3  # the resume, then max_recovery_attempts retries
    assert [e.attempt for e in errors] == [1, 2]
    assert types(h.journal, run_id).count("ResumeFailed") == 2
    failed = event(h.journal, run_id, "Failed")
    assert (failed.data["previous_state"], failed.data["stage"]) == ("running", "stream")
    assert h.journal.recovery_intents() == []


def test_with_recovery_off_a_failed_resume_is_final(make_harness):
    agent = FailsOnResume(failures=None)
    h = _harness(make_harness, agent, enabled=False)

    run_id, errors, result = asyncio.run(_approve_and_wait(h))

    assert (result.state, result.error, errors) == ("failed", "deploy API down (1)", [])
    assert "ResumeFailed" not in types(h.journal, run_id)


def test_startup_recovery_does_not_count_a_retry_twice(make_harness):
    """A worker that died after a failed resume: the next one's recovery appends no RecoveryAttempted."""
    agent = FailsOnResume(failures=0)
    h = _harness(make_harness, agent, max_recovery_attempts=1)
    claim = _resumed_claim(h.journal)
    h.journal.fail(claim, error="deploy API down", stage="stream", retries=1)

    report = asyncio.run(h.recover())
    asyncio.run(h.work(until_idle=True))

    assert (report.resumed, report.failed) == ([], {})
    run = h.journal.get_run(claim.run_id)
    assert (run.state, run.recovery_attempts, run.error) == ("completed", 1, None)
    assert agent.resumes == [("startup-recovery", "approve")]
    assert "RecoveryAttempted" not in types(h.journal, claim.run_id)
