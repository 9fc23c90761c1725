"""A cancel wins over whatever the agent does next: a later chunk, a long call, a timeout or an error."""

from __future__ import annotations

import asyncio
import time

from runjournal.adapters.agents import Chunk

from .conftest import MakeHarness, types, workspace


class GatedAgent:
    """Says one thing, waits for the test, then records a step."""

    supports_replay = False

    def __init__(self) -> None:
        self.said = asyncio.Event()
        self.go_on = asyncio.Event()

    async def stream(self, request):  # noqa: ANN001, ANN201
        yield Chunk.say("first")
        self.said.set()
        await self.go_on.wait()
        yield Chunk.step({"after": "cancel"})
        yield Chunk.say("second")


def test_a_cancel_written_by_another_process_ends_the_run_cancelled_not_failed(make_harness: MakeHarness) -> None:
    async def main() -> None:
        agent = GatedAgent()
        h = make_harness(workspace({"gated": {"adapter": "scripted", "script": [{"say": "x"}]}}),
                         adapters={"gated": agent})
        run = h.submit({"message": "go"}, agent_id="gated")
        waiting = asyncio.ensure_future(h.wait(run.run_id))
        await agent.said.wait()
        h.journal.cancel(run.run_id, actor="operator")  # as the CLI would, bypassing this harness
        agent.go_on.set()
        result = await waiting
        assert result.state == "cancelled"
        assert types(h.journal, run.run_id)[-2:] == ["CancelRequested", "Cancelled"]
        assert result.output is None

    asyncio.run(main())


def test_a_cancel_stops_an_agent_in_the_middle_of_a_long_call(make_harness: MakeHarness) -> None:
    async def main() -> None:
        slow = {"adapter": "scripted", "script": [{"say": "before"}, {"sleep": 30}, {"say": "after"}]}
        h = make_harness(workspace({"slow": slow}))
        seen = asyncio.Event()
        h.subscribe(lambda e: seen.set() if e.type == "content" else None)
        run = h.submit({"message": "go"}, agent_id="slow")
        waiting = asyncio.ensure_future(h.wait(run.run_id))
        await seen.wait()
        started = time.monotonic()
        await h.cancel(run.run_id, reason="enough")
        result = await waiting
        assert result.state == "cancelled" and time.monotonic() - started < 5
        assert "Completed" not in types(h.journal, run.run_id)

    asyncio.run(main())


class GatedCrash(GatedAgent):
    """Says one thing, waits for the test, then crashes."""

    async def stream(self, request):  # noqa: ANN001, ANN201
        yield Chunk.say("first")
        self.said.set()
        await self.go_on.wait()
        raise RuntimeError("crashed after the cancel")


def test_an_agent_error_after_a_cancel_ends_cancelled_not_failed(make_harness: MakeHarness) -> None:
    async def main() -> None:
        agent = GatedCrash()
        h = make_harness(workspace({"gated": {"adapter": "scripted", "script": [{"say": "x"}]}}),
                         adapters={"gated": agent})
        run = h.submit({"message": "go"}, agent_id="gated")
        waiting = asyncio.ensure_future(h.wait(run.run_id))
        await agent.said.wait()
        h.journal.cancel(run.run_id, actor="operator")
        agent.go_on.set()
        assert (await waiting).state == "cancelled"
        assert "Failed" not in types(h.journal, run.run_id)

    asyncio.run(main())


def test_a_cancel_from_another_journal_stops_a_running_agent_long_before_its_next_heartbeat(
        make_harness: MakeHarness, tmp_path) -> None:
    """The worker watches its running runs' states: the agent never gets to go on, though its lease is renewed
    only every 60 s (the bound below is that heartbeat, not a timing aim)."""
    from runjournal import Journal

    async def main() -> None:
        agent = GatedAgent()
        url = f"sqlite:///{tmp_path / 'j.db'}"
        h = make_harness(workspace({"gated": {"adapter": "scripted", "script": [{"say": "x"}]}},
                                   concurrency={"lease_seconds": 120, "heartbeat_seconds": 60}),
                         url=url, adapters={"gated": agent})
        run = h.submit({"message": "go"}, agent_id="gated")
        waiting = asyncio.ensure_future(h.wait(run.run_id))
        await agent.said.wait()
        with Journal.open(url) as other:  # another process's journal: this harness is not told
            other.cancel(run.run_id, actor="operator")
        result = await asyncio.wait_for(waiting, timeout=30)  # well inside the 60 s heartbeat
        assert result.state == "cancelled"
        assert not agent.go_on.is_set() and "StepRecorded" not in types(h.journal, run.run_id)[-3:]

    asyncio.run(main())
