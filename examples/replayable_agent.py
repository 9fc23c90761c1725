"""A research agent whose every model and tool call goes through its request, so runs of it fork and replay.

Use it from a workspace file beside it:

    agents:
      researcher:
        adapter: python
        callable: "replayable_agent:agent"

Each real call is also written to ``calls.log`` in the working folder: a call served from
a run's record (in a fork, or a replay) is not made, so it adds no line there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from runjournal.adapters.agents import AgentRequest

CALLS = Path("calls.log")


def _made(call: str) -> None:
    with CALLS.open("a", encoding="utf-8") as log:
        log.write(call + "\n")


def draft(topic: str) -> str:
    """The model: here a stand-in that writes a line (a real agent calls its LLM)."""
    _made(f"draft {topic}")
    return f"notes on {topic}"


def search(q: str) -> dict[str, Any]:
    """The tool: here a stand-in (a real agent calls its search API)."""
    _made(f"search {q}")
    return {"hits": len(q)}


async def agent(request: AgentRequest) -> AsyncIterator[Any]:
    """Draft notes on the message, search for it, answer with both."""
    topic = request.message
    notes = await request.model("drafter", lambda: draft(topic), args={"topic": topic})
    yield notes
    found = await request.tool("search", {"q": topic}, search, call_id="search-1")
    yield found
    yield f"{notes.output}: {found.output['hits']} hits"
