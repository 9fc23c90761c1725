"""A worker expires approvals past their workspace deadline: the agent resumes as rejected, or the run fails."""

from __future__ import annotations

import asyncio

from .conftest import DEPLOYER, workspace


def _deployer(**approvals: object) -> dict[str, object]:
    return {**DEPLOYER, "approvals": approvals}


def test_a_worker_expires_an_overdue_approval_and_the_agent_resumes_rejected(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace({"deployer": _deployer(expires_in_seconds=0.2, assignees=["bob"])}))
        asked = await h.run({"message": "deploy"}, agent_id="deployer")
        assert asked.state == "waiting_for_approval"
        approval = h.journal.pending_approvals()[0]
        assert approval.assignees == ["bob"] and approval.deadline is not None
        await asyncio.sleep(1.2)  # past the deadline, and past the worker's once-a-second pass over them
        await h.work(until_idle=True)
        run = h.journal.get_run(asked.run_id)
        assert run.state == "completed" and "rejected" in run.output["text"]
        types = [e.type for e in h.journal.history(asked.run_id)]
        assert types.count("ApprovalExpired") == 1 and "ApprovalResolved" not in types

    asyncio.run(go())


def test_an_expiry_policy_of_fail_fails_the_run(make_harness) -> None:
    async def go() -> None:
        h = make_harness(workspace({"deployer": _deployer(expires_in_seconds=0.2, on_expiry="fail")}))
        asked = await h.run({"message": "deploy"}, agent_id="deployer")
        await asyncio.sleep(1.2)
        await h.work(until_idle=True)
        run = h.journal.get_run(asked.run_id)
        assert run.state == "failed" and "expired undecided" in run.error

    asyncio.run(go())
