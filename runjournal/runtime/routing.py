"""Which agent runs a request, whether policy allows it, and which agents a worker serves.

Order: an explicit agent (``auto`` is none), else the thread's agent, else the first routing rule
whose regex matches the message, else the default agent. An agent that is not
defined is an ``UnknownAgent`` error before anything is appended.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..domain import InvalidInput, UnknownAgent


@dataclass(frozen=True)
class Rule:
    """Route messages matching ``pattern`` to ``agent``."""

    pattern: re.Pattern[str]
    agent: str


def message_of(request: Any) -> str:
    """The text routing rules match: the request's ``message``, else the request itself."""
    if isinstance(request, Mapping) and isinstance(request.get("message"), str):
        return str(request["message"])
    return request if isinstance(request, str) else ""


def route(
    request: Any,
    *,
    agents: Sequence[str],
    explicit: str | None,
    thread_agent: Callable[[], str | None],
    rules: Sequence[Rule],
    default: str | None,
) -> str:
    """The agent for a request; raises ``UnknownAgent`` when none fits."""
    chosen = explicit or thread_agent()
    if chosen is None:
        text = message_of(request)
        chosen = next((r.agent for r in rules if r.pattern.search(text)), default)
    if chosen is None or chosen not in agents:
        raise UnknownAgent(chosen or "(none: no rule matched and no default_agent is set)", tuple(agents))
    return chosen


def agent_denial(agent_id: str, deny_agents: Sequence[str]) -> str | None:
    """Why policy refuses an agent, or None."""
    if agent_id in deny_agents:
        return f"Policy evaluation blocked agent {agent_id}: listed in policy.deny_agents"
    return None


def tool_denial(tool_name: str | None, deny_tools: Sequence[str]) -> str | None:
    """Why policy refuses a tool call, or None."""
    if tool_name is not None and tool_name in deny_tools:
        return f"Policy evaluation blocked tool {tool_name}: listed in policy.deny_tools"
    return None


def served_agents(agents: Collection[str] | None, known: Collection[str]) -> tuple[str, ...]:
    """The agents a worker claims runs of: ``agents`` (each one it has), else every agent it has."""
    if agents is None:
        return tuple(sorted(known))
    if isinstance(agents, str) or not agents:
        raise InvalidInput("agents", f"name one or more agents of the workspace (got {agents!r})")
    for agent_id in agents:
        if agent_id not in known:
            raise UnknownAgent(agent_id, tuple(known))
    return tuple(sorted(set(agents)))
