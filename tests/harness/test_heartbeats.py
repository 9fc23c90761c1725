"""One heartbeat loop per worker: every lease it holds renewed in one save per beat, a cancel from elsewhere noticed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runjournal.app.models import Claim
from runjournal.runtime.heartbeat import CancelSignal, Heartbeats

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


# -- the loop itself, with a renewal the test writes ---------------------------------------------


def _claim(run_id: str) -> Claim:
    return Claim.model_construct(run_id=run_id, worker_id="w1", epoch=1, lease_expires_at=datetime.now(UTC),
                                 agent_id="job", thread_id="t", input=None)


def _renewed(claims: Any) -> list[Any]:
    return [SimpleNamespace(lease_expires_at=datetime.now(UTC), state="running") for _ in claims]


def test_a_beat_slower_than_its_period_still_lets_the_runs_go_on() -> None:
    calls = 0

    def slow_renew(claims: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls >= 50:  # a loop that never yields would get here at once: end it so the test can fail
            raise RuntimeError("beat again and again without yielding")
        time.sleep(0.03)  # a save slower than the 0.02 s period
        return _renewed(claims)

    async def main() -> int:
        heartbeats = Heartbeats(0.02, slow_renew)
        lease = heartbeats.keep(_claim("r1"), CancelSignal())
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.02)
            ticks += 1
        lease.stop()
        await heartbeats.close()
        return ticks

    ticks = asyncio.run(main())
    assert ticks == 10 and 1 <= calls < 50


def test_a_heartbeat_left_pending_by_an_event_loop_that_closed_beats_again_in_the_next() -> None:
    renewals: list[str] = []

    def renew(claims: Any) -> list[Any]:
        renewals.extend(c.run_id for c in claims)
        return _renewed(claims)

    heartbeats = Heartbeats(0.01, renew)

    async def hold(run_id: str) -> None:
        lease = heartbeats.keep(_claim(run_id), CancelSignal())
        while run_id not in renewals:
            await asyncio.sleep(0.005)
        if run_id == "second":
            lease.stop()

    first = asyncio.new_event_loop()
    first.run_until_complete(asyncio.wait_for(hold("first"), HANG))
    first.close()  # closed with the heartbeat task still pending, as an embedding application may do

    asyncio.run(asyncio.wait_for(hold("second"), HANG))  # hangs (and fails) if no new task beats
    asyncio.run(heartbeats.close())  # a loop that is not the task's: nothing to await, no error
    assert "second" in renewals


def test_a_heartbeat_that_dies_of_a_bug_ends_every_run_it_kept() -> None:
    def broken(claims: Any) -> list[Any]:
        return []  # fewer results than claims: the loop itself fails

    async def main() -> list[BaseException | None]:
        heartbeats = Heartbeats(0.01, broken)
        leases = [heartbeats.keep(_claim(r), CancelSignal()) for r in ("a", "b")]
        await asyncio.wait([lease.ended for lease in leases], timeout=HANG)
        return [lease.ended.exception() for lease in leases]

    errors = asyncio.run(main())
    assert all(isinstance(e, ValueError) for e in errors)  # zip(strict=True): told, not silent
