"""A store that fails: the worker backs off and goes on, or stops with a clear error; nobody waits for good.

The faults come from ``FaultyJournal``, a journal whose chosen commands raise
(``StoreUnavailable`` unless told otherwise) before they touch the store, for
their first N calls or for good, like a disk that is full for a while; or, with
``committed=True``, after their save went through, like a connection lost while
the commit's answer was on its way.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentRequest
from runjournal.adapters.clock import ManualClock
from runjournal.runtime.run_writes import RunWrites

from runjournal import Harness, Journal, LeaseLost, StoreError, StoreUnavailable, WorkspaceError

from .conftest import DEPLOYER, ECHO, global_log, types, workspace
from .conftest import Gated as SharedGated

HANG = 10.0  # a hang detector, not a timing assertion: every test here settles well within it
TERMINAL = {"Completed", "Failed", "Cancelled"}
LEASE, STALE = 5, 2


def disk_full() -> Exception:
    return StoreUnavailable("memory://", "disk full", detail="database or disk is full")


class FaultyJournal(Journal):
    """A journal whose chosen commands fail before reaching the store."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._injections: dict[str, tuple[int | None, Callable[[], Exception]]] = {}
        self._after_commit: set[str] = set()
        self.injected: Counter[str] = Counter()

    def inject(self, command: str, times: int | None = None, error: Callable[[], Exception] = disk_full,
               *, committed: bool = False) -> None:
        """Make ``command`` raise ``error()`` for its next ``times`` calls (None: until ``heal``).

        ``committed``: raise after the command's save went through instead of before it.
        """
        self._injections[command] = (times, error)
        if committed:
            self._after_commit.add(command)

    def heal(self) -> None:
        """The store is back: no command fails any more."""
        self._injections.clear()
        self._after_commit.clear()

    def _call(self, command: str, call: Callable[[], Any]) -> Any:
        if command not in self._after_commit:
            self._maybe_fail(command)
            return call()
        result = call()
        self._maybe_fail(command)
        return result

    def _maybe_fail(self, command: str) -> None:
        if command not in self._injections:
            return
        times, error = self._injections[command]
        if times is not None:
            if times <= 0:
                return
            self._injections[command] = (times - 1, error)
        self.injected[command] += 1
        raise error()

    def claim_many(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("claim_many")
        return super().claim_many(*args, **kwargs)

    def complete_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("complete_and_claim")
        return super().complete_and_claim(*args, **kwargs)

    def expire_leases(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("expire_leases")
        return super().expire_leases(*args, **kwargs)

    def heartbeat_many(self, claims: Any, **kwargs: Any) -> Any:  # the worker's beat for all its runs
        try:
            self._maybe_fail("heartbeat")
        except LeaseLost as e:  # refused per claim, as the journal refuses it for real
            return [e for _ in claims]
        return super().heartbeat_many(claims, **kwargs)

    def record_steps(self, *args: Any, **kwargs: Any) -> Any:  # record_step comes through here too
        return self._call("record_step", lambda: super(FaultyJournal, self).record_steps(*args, **kwargs))

    def request_approval(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("request_approval", lambda: super(FaultyJournal, self).request_approval(*args, **kwargs))

    def fail(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("fail", lambda: super(FaultyJournal, self).fail(*args, **kwargs))

    def messages(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("messages")
        return super().messages(*args, **kwargs)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def journal(clock: ManualClock) -> Iterator[FaultyJournal]:
    j = FaultyJournal.open("memory://", clock=clock)
    yield j  # type: ignore[misc]
    j.close()


def harness(journal: Journal, agents: dict[str, Any] | None = None, *, outage: float = 60.0,
            adapters: dict[str, Any] | None = None, **concurrency: Any) -> Harness:
    """A harness whose leases only run out when the test moves the clock (and are checked every 50 ms)."""
    settings = {"lease_seconds": LEASE, "heartbeat_seconds": 0.05, **concurrency}
    ws = workspace(agents or {"echo": ECHO}, concurrency=settings,
                   recovery={"stale_running_after_seconds": STALE})
    return Harness(journal, ws, worker_id="w1", adapters=adapters, store_outage_seconds=outage)


def ends(journal: Journal, run_id: str) -> list[str]:
    """The terminal events of a run (exactly one for a run that ended)."""
    return [t for t in types(journal, run_id) if t in TERMINAL]


def logged(entries: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["event"] == event]


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(HANG):
        while not predicate():
            await asyncio.sleep(0.005)


class Gated(SharedGated):
    """The shared gated agent, reading no thread history: only the commands under test reach the store."""

    uses_history = False


async def remembers(request: AgentRequest) -> AsyncIterator[Any]:
    yield f"{len(request.messages)} earlier messages"


# -- the worker loop ---------------------------------------------------------------------------


def test_claims_and_completions_refused_for_a_while_are_retried_and_every_run_ends_once(journal, runjournal_logs):
    journal.inject("expire_leases", 1)
    journal.inject("claim_many", 2)
    journal.inject("complete_and_claim", 1)
    h = harness(journal, max_concurrent_runs=2)

    async def main() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(*(h.run({"message": str(i)}) for i in range(5))), HANG)

    results = asyncio.run(main())

    assert [(r.state, r.output) for r in results] == [("completed", {"text": f"echo: {i}"}) for i in range(5)]
    assert journal.injected == {"expire_leases": 1, "claim_many": 2, "complete_and_claim": 1}
    for r in results:
        assert ends(journal, r.run_id) == ["Completed"]
        assert types(journal, r.run_id).count("Started") == 1
    backoffs = logged(runjournal_logs, "store unavailable, backing off")
    assert len(backoffs) == 4
    assert all(b["cause"] == "disk full" and b["level"] == "warning" for b in backoffs)
    assert h.health().active_slots == 0


def test_a_completed_that_waits_for_the_store_keeps_its_slot_and_is_saved_once(journal):
    journal.inject("complete_and_claim", 3)
    h = harness(journal, max_concurrent_runs=1)

    async def main() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(h.run("a"), h.run("b")), HANG)

    a, b = asyncio.run(main())

    assert (a.state, b.state) == ("completed", "completed")
    assert journal.injected["complete_and_claim"] == 3
    assert ends(journal, a.run_id) == ends(journal, b.run_id) == ["Completed"]
    log = [(e.run_id, e.type) for e in global_log(journal)]
    # One slot: b is claimed only once a's Completed is saved, not while it waits for the store.
    assert log.index((b.run_id, "Dequeued")) > log.index((a.run_id, "Completed"))


def test_a_store_that_stays_down_stops_the_worker_with_a_clear_error_and_fails_every_waiter(journal, runjournal_logs):
    journal.inject("claim_many")
    h = harness(journal, outage=0.2)

    ids = [h.submit(str(i)).run_id for i in range(3)]

    async def main() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(*map(h.wait, ids), return_exceptions=True), HANG)

    outcomes = asyncio.run(main())

    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    error = outcomes[0]
    assert error.cause == "disk full"
    assert "still unavailable after" in str(error)
    assert "store_outage_seconds=0.2" in str(error)
    assert "worker w1 stopped" in str(error)
    assert isinstance(error.__cause__, StoreUnavailable)
    for run_id in ids:
        assert types(journal, run_id) == ["Created", "Queued"]  # nothing half done
    assert len(logged(runjournal_logs, "worker loop stopped")) == 1


def test_work_raises_the_outage_error_when_the_store_stays_down(journal):
    journal.inject("claim_many")
    h = harness(journal, outage=0.1)
    h.submit("x")

    with pytest.raises(StoreUnavailable, match="worker w1 stopped"):
        asyncio.run(asyncio.wait_for(h.work(until_idle=True), HANG))


def test_a_stream_raises_the_outage_error_after_the_events_it_saw(journal):
    journal.inject("claim_many")
    h = harness(journal, outage=0.1)
    seen: list[str] = []

    async def main() -> None:
        async for event in h.stream("x"):
            seen.append(event.type)

    with pytest.raises(StoreUnavailable, match="worker w1 stopped"):
        asyncio.run(asyncio.wait_for(main(), HANG))
    assert seen[0] == "state"


def test_a_store_error_that_will_not_pass_stops_the_worker_at_once(journal):
    journal.inject("claim_many", error=lambda: StoreError("cannot read the events of store memory://"))
    h = harness(journal)  # a 60 s outage budget: a retry here would show as a hang

    with pytest.raises(StoreError, match="cannot read the events") as caught:
        asyncio.run(asyncio.wait_for(h.run("x"), HANG))
    assert not isinstance(caught.value, StoreUnavailable)
    assert journal.injected["claim_many"] == 1


def test_completions_lost_to_an_outage_are_run_again_once_the_store_is_back(journal, clock):
    journal.inject("complete_and_claim")
    h = harness(journal, outage=0.1)
    run_id = h.submit("x").run_id

    with pytest.raises(StoreUnavailable):
        asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))
    assert types(journal, run_id)[-1] == "Started"  # not completed, and not failed either
    assert h.health().active_slots == 0

    journal.heal()
    clock.advance(LEASE + STALE + 1)  # the worker that held it looks dead now: it is run again
    result = asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))

    assert (result.state, result.output) == ("completed", {"text": "echo: x"})
    assert ends(journal, run_id) == ["Completed"]
    assert types(journal, run_id)[-4:] == ["LeaseExpired", "Dequeued", "Resumed", "Completed"]


def test_a_claim_that_cannot_be_launched_is_left_to_its_lease_and_run_again(journal, clock):
    journal.inject("messages", 1)
    recall = {"adapter": "python", "callable": f"{__name__}:remembers", "supports_replay": True}
    h = harness(journal, {"recall": recall})

    async def main() -> Any:
        run_id = h.submit("x", agent_id="recall").run_id
        waiting = asyncio.ensure_future(h.wait(run_id))
        await until(lambda: journal.injected["messages"] == 1)
        clock.advance(LEASE + STALE + 1)
        return await asyncio.wait_for(waiting, HANG)

    result = asyncio.run(main())

    assert (result.state, result.output) == ("completed", {"text": "0 earlier messages"})
    assert ends(journal, result.run_id) == ["Completed"]
    assert "LeaseExpired" in types(journal, result.run_id)


# -- the per-run task --------------------------------------------------------------------------


def test_a_run_whose_writes_outlast_the_outage_limit_fails_its_waiter_and_is_run_again_later(journal, clock):
    journal.inject("record_step")
    journal.inject("fail")
    stepper = {"adapter": "scripted", "script": [{"step": {"phase": "plan"}}, {"say": "done"}]}
    h = harness(journal, {"stepper": stepper}, outage=0.2)
    run_id = h.submit("x", agent_id="stepper").run_id

    with pytest.raises(StoreUnavailable, match=f"disk full.*still unavailable after.*run {run_id} left to its lease"):
        asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))
    assert ends(journal, run_id) == []  # nothing could be saved: left to its lease
    assert journal.injected["record_step"] > 1  # tried again before giving up
    assert h.health().adapter_failures == 1

    journal.heal()
    clock.advance(LEASE + STALE + 1)
    result = asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))
    assert (result.state, result.output) == ("completed", {"text": "done"})
    assert ends(journal, run_id) == ["Completed"]


STEPPER = {"adapter": "scripted", "script": [{"step": {"phase": "plan"}}, {"say": "done"}]}


@pytest.mark.parametrize("committed", [False, True], ids=["refused", "committed-but-unanswered"])
def test_a_step_the_store_fails_for_a_while_is_recorded_once_and_the_agent_is_not_run_again(
    journal, runjournal_logs, committed
):
    """A store fault is not the run's failure: the write waits for the store, and a save that went
    through though it raised is found in the log, not made twice."""
    journal.inject("record_step", 3, committed=committed)
    h = harness(journal, {"stepper": STEPPER})
    run_id = h.submit("x", agent_id="stepper").run_id

    result = asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))

    assert (result.state, result.output) == ("completed", {"text": "done"})
    assert journal.injected["record_step"] == (1 if committed else 3)  # a committed save is found, not made again
    history = types(journal, run_id)
    assert history.count("StepRecorded") == 1 and history.count("Started") == 1  # one execution, one step
    assert ends(journal, run_id) == ["Completed"]
    backoffs = [b for b in logged(runjournal_logs, "store unavailable, backing off") if b.get("run_id") == run_id]
    assert [b["attempt"] for b in backoffs] == ([1] if committed else [1, 2, 3])


def test_an_approval_request_whose_save_went_through_unanswered_is_asked_once(journal):
    journal.inject("request_approval", 1, committed=True)
    h = harness(journal, {"deployer": DEPLOYER})
    run_id = h.submit("ship it", agent_id="deployer").run_id

    result = asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))

    assert result.state == "waiting_for_approval"
    assert types(journal, run_id).count("ApprovalRequested") == 1
    assert [a.approval_id for a in journal.pending_approvals()] == [f"{run_id}.a1"]


def test_an_approval_request_answered_before_its_lost_answer_came_back_is_still_found(journal):
    """The log says whether the request landed, not the run's state: a decision may have moved it on."""
    journal.submit(agent_id="deployer", input={"message": "ship it"})
    claim = journal.claim_next(worker_id="w1")
    journal.start(claim)

    def answered_then_lost() -> Exception:  # committed; another process approves at once; the answer is lost
        journal.resolve_approval(f"{claim.run_id}.a1", decision="approve", actor="bot")
        return disk_full()

    journal.inject("request_approval", 1, error=answered_then_lost, committed=True)
    writes = RunWrites(journal, store_outage_seconds=5)
    approval_id = asyncio.run(asyncio.wait_for(writes.request_approval(claim, tool_name="deploy", tool_args={}), HANG))

    assert approval_id == f"{claim.run_id}.a1"
    assert types(journal, claim.run_id).count("ApprovalRequested") == 1


def test_a_run_claimed_again_while_an_older_execution_of_it_waits_out_the_store_is_run_once(journal):
    """The request landed though it raised, and was approved at once: the worker claims the run again
    while the first execution still backs off. The older one is stopped; the run ends once."""
    h = harness(journal, {"deployer": DEPLOYER})
    run_id = h.submit("ship it", agent_id="deployer").run_id

    def answered_then_lost() -> Exception:
        journal.resolve_approval(f"{run_id}.a1", decision="approve", actor="bot")
        return disk_full()

    journal.inject("request_approval", 1, error=answered_then_lost, committed=True)

    async def main() -> Any:
        result = await asyncio.wait_for(h.wait(run_id), HANG)
        await until(lambda: h.health().active_slots == 0)  # no execution left behind, holding a slot
        return result

    result = asyncio.run(main())
    assert result.state == "completed"
    history = types(journal, run_id)
    assert history.count("ApprovalRequested") == 1 and ends(journal, run_id) == ["Completed"]


def test_a_failure_whose_save_was_refused_for_a_while_is_recorded_once(journal):
    journal.inject("fail", 2)
    h = harness(journal, {"broken": {"adapter": "scripted", "script": [{"say": "partial"}, {"fail": "quota exceeded"}]}})
    run_id = h.submit("x", agent_id="broken").run_id

    result = asyncio.run(asyncio.wait_for(h.wait(run_id), HANG))

    assert (result.state, result.error) == ("failed", "quota exceeded")
    assert ends(journal, run_id) == ["Failed"] and journal.injected["fail"] == 2


# -- the heartbeat -----------------------------------------------------------------------------


def renewals(journal: Journal, run_id: str) -> int:
    return types(journal, run_id).count("LeaseRenewed")


def test_a_heartbeat_refused_by_the_store_is_tried_again_on_the_next_beat(journal, runjournal_logs):
    journal.inject("heartbeat", 2)
    gated = Gated()
    h = harness(journal, {"job": ECHO}, adapters={"job": gated}, heartbeat_seconds=0.01)

    async def main() -> Any:
        run_id = h.submit("x", agent_id="job").run_id
        waiting = asyncio.ensure_future(h.wait(run_id))
        await until(lambda: renewals(journal, run_id) >= 1)  # the lease is renewed after the two refusals
        gated.gate.set()
        return await asyncio.wait_for(waiting, HANG)

    result = asyncio.run(main())

    assert (result.state, result.output) == ("completed", {"text": "before after"})
    assert journal.injected["heartbeat"] == 2
    assert len(logged(runjournal_logs, "heartbeat refused by the store, retrying on the next beat")) == 2
    assert ends(journal, result.run_id) == ["Completed"]
    assert "LeaseExpired" not in types(journal, result.run_id)


class Replayable(Gated):
    supports_replay = True


def test_a_lease_that_ran_out_during_an_outage_is_given_up_not_failed(journal, clock):
    """The heartbeat meets a run whose lease expired meanwhile (queued again): the run is re-run, not failed."""
    journal.inject("heartbeat")  # the store refuses every renewal until healed
    agent = Replayable()  # one slot: nothing claims the run again before the renewal meets it queued
    h = harness(journal, {"job": ECHO}, adapters={"job": agent}, heartbeat_seconds=0.01, max_concurrent_runs=1)

    async def main() -> Any:
        run_id = h.submit("x", agent_id="job").run_id
        waiting = asyncio.ensure_future(h.wait(run_id))
        await until(lambda: journal.injected["heartbeat"] >= 1)
        clock.advance(LEASE + STALE + 1)  # the lease runs out; the worker loop expires it: queued again
        await until(lambda: "LeaseExpired" in types(journal, run_id))
        journal.heal()  # the next renewal is refused by the table: LeaseRenewed in state queued
        agent.gate.set()
        return await asyncio.wait_for(waiting, HANG)

    result = asyncio.run(main())

    assert (result.state, result.output) == ("completed", {"text": "before after"})
    assert ends(journal, result.run_id) == ["Completed"]
    assert "Failed" not in types(journal, result.run_id)


def test_a_heartbeat_that_dies_of_a_bug_stops_the_agent_and_fails_the_run(journal):
    journal.inject("heartbeat", error=lambda: RuntimeError("renewal bug"))
    gated = Gated()  # never opened: only the heartbeat's death can end this run
    h = harness(journal, {"job": ECHO}, adapters={"job": gated}, heartbeat_seconds=0.01)

    result = asyncio.run(asyncio.wait_for(h.run("x", agent_id="job"), HANG))

    assert result.state == "failed"
    assert result.error == "harness error: RuntimeError: renewal bug"
    assert ends(journal, result.run_id) == ["Failed"]
    assert journal.injected["heartbeat"] == 1
    assert h.health().active_slots == 0


def test_a_heartbeat_that_finds_its_lease_lost_stops_quietly(journal):
    journal.inject("heartbeat", error=lambda: LeaseLost("r", "w1", 1, holder="w2"))
    gated = Gated()
    h = harness(journal, {"job": ECHO}, adapters={"job": gated}, heartbeat_seconds=0.01)

    async def main() -> Any:
        waiting = asyncio.ensure_future(h.run("x", agent_id="job"))
        await until(lambda: journal.injected["heartbeat"] == 1)
        gated.gate.set()
        return await asyncio.wait_for(waiting, HANG)

    result = asyncio.run(main())

    # The fake store still holds this worker's lease, so the run ends here; a real takeover ends it as lease_lost.
    assert (result.state, result.output) == ("completed", {"text": "before after"})
    assert ends(journal, result.run_id) == ["Completed"]


def test_the_outage_limit_comes_from_the_workspace() -> None:
    """``concurrency.store_outage_seconds`` sets how long a worker waits out a store outage."""
    with Journal.open("memory://") as journal:
        h = Harness(journal, workspace(concurrency={"store_outage_seconds": 7.5}), adapters={})
        assert h.store_outage_seconds == 7.5
        assert Harness(journal, workspace(), adapters={}).store_outage_seconds == 60
    with pytest.raises(WorkspaceError, match=r"concurrency\.store_outage_seconds"):
        workspace(concurrency={"store_outage_seconds": 0})
