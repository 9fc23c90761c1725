"""Harness test helpers: workspaces built in code, harnesses on a fresh journal, the log replayed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentAdapter, AgentRequest, Chunk
from runjournal.adapters.clock import Clock

from runjournal import Harness, Journal, RecordedEvent, Workspace
from runjournal.app.unit_of_work import recorded

ECHO = {"adapter": "scripted", "script": [{"say": "echo: {message}"}]}
DEPLOYER = {
    "adapter": "scripted",
    "script": [
        {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True},
        {"say": "Deployed"},
    ],
}


def workspace(agents: dict[str, Any] | None = None, **sections: Any) -> Workspace:
    """A validated workspace: ``agents`` (default: echo and deployer) plus any other sections.

    Without a routing section, runs that name no agent go to ``echo`` when there is one.
    """
    agents = agents or {"echo": ECHO, "deployer": DEPLOYER}
    if "routing" not in sections and "echo" in agents:
        sections["routing"] = {"default_agent": "echo"}
    return Workspace.from_dict({"agents": agents, **sections})


def types(journal: Journal, run_id: str) -> list[str]:
    """The event types of one run, in order."""
    return [e.type for e in journal.history(run_id)]


def event(journal: Journal, run_id: str, type_: str, index: int = -1) -> RecordedEvent:
    """The ``index``-th event of ``type_`` in a run's history (the last by default)."""
    return [e for e in journal.history(run_id) if e.type == type_][index]


def global_log(journal: Journal) -> list[RecordedEvent]:
    """Every stored event of every run, replayed from the notification log in position order."""
    mapper = journal._store.mapper  # noqa: SLF001 - the stored log itself, not a view of it
    return [recorded(mapper.to_domain_event(n), n.id) for page in journal.notifications() for n in page]


MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness() -> Iterator[MakeHarness]:
    """Build harnesses on fresh journals (memory by default); their journals are closed afterwards."""
    journals: list[Journal] = []

    def make(
        ws: Workspace | None = None,
        *,
        url: str = "memory://",
        clock: Clock | None = None,
        adapters: dict[str, AgentAdapter] | None = None,
        journal: Journal | None = None,
        worker_id: str = "w1",
        agents: Any = None,
    ) -> Harness:
        if journal is None:
            journal = Journal.open(url, clock=clock)
            journals.append(journal)
        return Harness(journal, ws or workspace(), worker_id=worker_id, adapters=adapters, agents=agents)

    yield make
    for journal in journals:
        journal.close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(record.getMessage()))


@pytest.fixture
def runjournal_logs() -> Iterator[list[dict[str, Any]]]:
    """The structured log entries (decoded) of every ``runjournal.*`` logger during the test."""
    records = _Records()
    root = logging.getLogger("runjournal")  # above any ``propagate = False`` the CLI may have set
    root.addHandler(records)
    yield records.entries
    root.removeHandler(records)


class Gated:
    """Says "before", waits for its gate, then says "after" (a long-running agent under the test's control)."""

    supports_replay = False

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        self.started.append(request.run_id)
        yield Chunk.say("before ")
        await self.gate.wait()
        yield Chunk.say("after")
