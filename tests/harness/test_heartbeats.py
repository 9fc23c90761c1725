"""One heartbeat loop per worker: every lease it holds renewed in one save per beat, a cancel from elsewhere noticed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runjournal import Harness, Journal

from .conftest import ECHO, Gated, types, workspace

HANG = 10.0  # a hang detector, not a timing assertion


class CountingJournal(Journal):
    """A journal that notes how many claims each heartbeat save carried, and any one-run heartbeat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.beats: list[int] = []
        self.single_beats = 0

    def heartbeat_many(self, claims: Any, **kwargs: Any) -> Any:
        self.beats.append(len(claims))
        return super().heartbeat_many(claims, **kwargs)

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        self.single_beats += 1
        return super().heartbeat(*args, **kwargs)


def gated_harness(journal: Journal, gated: Gated, slots: int) -> Harness:
    ws = workspace({"job": ECHO}, concurrency={"max_concurrent_runs": slots, "heartbeat_seconds": 0.02})
    return Harness(journal, ws, worker_id="w1", adapters={"job": gated})


def test_every_lease_a_worker_holds_is_renewed_in_one_save_per_beat() -> None:
    journal = CountingJournal.open("memory://")
    gated = Gated()
    h = gated_harness(journal, gated, slots=3)

    async def main() -> list[Any]:
        run_ids = [h.submit(f"m{i}", agent_id="job").run_id for i in range(3)]
        waiting = [asyncio.ensure_future(h.wait(r)) for r in run_ids]
        async with asyncio.timeout(HANG):
            while not all(types(journal, r).count("LeaseRenewed") >= 2 for r in run_ids):
                await asyncio.sleep(0.01)
        gated.gate.set()
        try:
            return await asyncio.wait_for(asyncio.gather(*waiting), HANG)
        finally:
            await h.close()

    try:
        results = asyncio.run(main())
    finally:
        journal.close()

    assert [r.state for r in results] == ["completed"] * 3
    assert journal.single_beats == 0
    assert max(journal.beats) == 3  # all three leases in one save
    renewals = sum(types(journal, r.run_id).count("LeaseRenewed") for r in results)
    assert len(journal.beats) < renewals  # fewer saves than renewals: beats are shared


def test_a_cancel_written_by_another_process_is_noticed_at_the_next_beat(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    journal, elsewhere = Journal.open(url), Journal.open(url)
    gated = Gated()  # never opened: only the heartbeat can learn of the cancel
    h = gated_harness(journal, gated, slots=1)

    async def main() -> Any:
        run_id = h.submit("x", agent_id="job").run_id
        waiting = asyncio.ensure_future(h.wait(run_id))
        async with asyncio.timeout(HANG):
            while not gated.started:
                await asyncio.sleep(0.01)
        elsewhere.cancel(run_id, reason="stop it", actor="operator")  # another process: this journal's cache knows nothing
        try:
            return await asyncio.wait_for(waiting, HANG)
        finally:
            await h.close()

    try:
        result = asyncio.run(main())
    finally:
        journal.close()
        elsewhere.close()

    assert result.state == "cancelled"
    with Journal.open(url) as reader:
        history = types(reader, result.run_id)
    assert history[-1] == "Cancelled" and "CancelRequested" in history and "Failed" not in history
