"""Small builders shared by the journal tests."""

from __future__ import annotations

from runjournal import Claim, Journal


def running_claim(j: Journal) -> Claim:
    """Submit a run, claim it and start it: the claim of a running run."""
    j.submit(agent_id="a", input={})
    claim = j.claim_next(worker_id="w")
    assert claim is not None
    j.start(claim)
    return claim


def finished_run(j: Journal, message: str) -> str:
    """Submit a run and see it through to ``completed``; its id."""
    run = j.submit(agent_id="echo", input={"message": message})
    claim = j.claim_next(worker_id="w1")
    assert claim is not None
    j.start(claim)
    j.complete(claim, output={"text": "done"})
    return run.run_id


def legacy_run_without_request(j: Journal, agent_id: str = "a", *, priority: int = 0, actor: str = "old-release") -> str:
    """A queued run with no persisted request, as stores written before submit refused ``input=None`` hold; its id."""
    from uuid import uuid4

    from runjournal.models import SubmitInput

    req = SubmitInput.model_construct(agent_id=agent_id, input=None, thread_id=None, priority=priority,
                                      idempotency_key=None, actor=actor, parent_run_id=None, parent_version=None)
    run = j._new_run(uuid4(), req, None)
    j._save(run)
    return str(run.id)
