"""The harness saves together what happens together: submissions, claims, completions."""

from __future__ import annotations

import asyncio

from .conftest import MakeHarness, global_log, workspace


def test_a_worker_fills_every_free_slot_in_one_save_and_bulk_submissions_share_one(make_harness: MakeHarness) -> None:
    async def main() -> None:
        h = make_harness(workspace(concurrency={"max_concurrent_runs": 4}))
        runs = h.submit_many([{"message": f"m{i}"} for i in range(8)])
        log = global_log(h.journal)
        assert [e.type for e in log] == ["Created", "Queued"] * 8  # one save, in order
        await h.work(until_idle=True)
        assert all(h.journal.get_run(r.run_id).state == "completed" for r in runs)
        log = global_log(h.journal)
        first_claims = [e for e in log[16:24]]
        assert [e.type for e in first_claims] == ["Dequeued", "Started"] * 4  # four slots, one save
        assert len({e.run_id for e in first_claims}) == 4

    asyncio.run(main())


def test_runs_finishing_together_are_completed_in_one_save(make_harness: MakeHarness) -> None:
    async def main() -> None:
        h = make_harness(workspace(concurrency={"max_concurrent_runs": 4}))
        h.submit_many([{"message": f"m{i}"} for i in range(4)])
        await h.work(until_idle=True)
        types = [e.type for e in global_log(h.journal)]
        completed = [i for i, t in enumerate(types) if t == "Completed"]
        assert len(completed) == 4
        assert completed == list(range(completed[0], completed[0] + 4))  # adjacent: saved together

    asyncio.run(main())
