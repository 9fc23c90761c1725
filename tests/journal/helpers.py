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
