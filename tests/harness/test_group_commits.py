"""The harness saves together what happens together: submissions, claims, completions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runjournal import InvalidInput, StoreUnavailable

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


def _count_saves(h: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of runs of every transaction the journal saves from now on."""
    saves: list[int] = []
    store_save = h.journal._store.save

    def save(*runs: Any, **kwargs: Any) -> Any:
        saves.append(len(runs))
        return store_save(*runs, **kwargs)

    monkeypatch.setattr(h.journal._store, "save", save)
    return saves


def test_concurrent_asubmits_of_one_turn_share_one_transaction(make_harness: MakeHarness, monkeypatch) -> None:
    async def main() -> None:
        h = make_harness(workspace())
        saves = _count_saves(h, monkeypatch)
        runs = await asyncio.gather(*(h.asubmit({"message": f"m{i}"}) for i in range(50)))
        assert saves == [50], "the submits were not one transaction"
        assert len({r.run_id for r in runs}) == 50 and {r.state for r in runs} == {"queued"}
        assert [r.input for r in runs] == [{"message": f"m{i}"} for i in range(50)]  # each caller its own run
        assert [e.type for e in global_log(h.journal)] == ["Created", "Queued"] * 50

    asyncio.run(main())


def test_a_bad_request_in_a_group_gets_its_own_error_and_the_others_their_runs(
    make_harness: MakeHarness, monkeypatch
) -> None:
    async def main() -> None:
        h = make_harness(workspace())
        saves = _count_saves(h, monkeypatch)
        answers = await asyncio.gather(
            h.asubmit({"message": "a"}), h.asubmit({"message": object()}), h.asubmit({"message": "c"}),
            return_exceptions=True)
        assert isinstance(answers[1], InvalidInput)
        assert [a.input for a in (answers[0], answers[2])] == [{"message": "a"}, {"message": "c"}]
        assert saves == [1, 1], "after a refused group, each request is saved on its own"
        assert len(global_log(h.journal)) == 4  # nothing of the bad request

    asyncio.run(main())


def test_a_store_fault_fails_every_caller_of_the_group_and_appends_nothing(
    make_harness: MakeHarness, monkeypatch
) -> None:
    async def main() -> None:
        h = make_harness(workspace())
        outage = StoreUnavailable(h.journal.url, "OperationalError")

        def unavailable(*_: Any, **__: Any) -> Any:
            raise outage

        monkeypatch.setattr(h.journal, "submit_many", unavailable)
        answers = await asyncio.gather(*(h.asubmit({"message": str(i)}) for i in range(3)), return_exceptions=True)
        assert answers == [outage] * 3
        assert global_log(h.journal) == []

    asyncio.run(main())


def test_concurrent_runs_submit_in_one_transaction_and_all_complete(make_harness: MakeHarness) -> None:
    async def main() -> None:
        h = make_harness(workspace(concurrency={"max_concurrent_runs": 4}))
        results = await asyncio.gather(*(h.run({"message": f"m{i}"}) for i in range(20)))
        assert [r.output for r in results] == [{"text": f"echo: m{i}"} for i in range(20)]
        assert h._submits.commits == [20]

    asyncio.run(main())


def test_an_asubmit_with_an_idempotency_key_returns_the_first_run(make_harness: MakeHarness) -> None:
    async def main() -> None:
        h = make_harness(workspace())
        first = await h.asubmit({"message": "hi"}, idempotency_key="k1")
        again = await h.asubmit({"message": "hi"}, idempotency_key="k1")
        assert again.run_id == first.run_id and len(global_log(h.journal)) == 2

    asyncio.run(main())
