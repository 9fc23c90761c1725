"""Agent adapters: the contract (Chunk, AgentRequest, AgentAdapter) and the built-in agents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import (
    CHUNK_KINDS,
    AgentAdapter,
    AgentFailed,
    AgentLoadError,
    AgentRequest,
    CanInvoke,
    Chunk,
    ChunkKind,
    adapter_can_invoke,
    adapter_kind,
    collect,
)
from .python import PythonAgent, to_chunk
from .scripted import ScriptedAgent
from .tape import Recorded, ReplayDiverged, Tape

def _langgraph(**options: Any) -> AgentAdapter:
    """A LangGraph graph as an agent: imported only when a workspace names one (the ``langgraph`` extra)."""
    try:
        from ..langgraph.agent import LangGraphAgent
    except ImportError as e:
        raise AgentLoadError(f"adapter 'langgraph' needs LangGraph: pip install 'runjournal[langgraph]' ({e})") from None
    return LangGraphAgent(**options)


ADAPTERS: dict[str, Callable[..., AgentAdapter]] = {
    "scripted": ScriptedAgent,
    "python": PythonAgent,
    "langgraph": _langgraph,
}


def build_adapter(kind: str, **options: Any) -> AgentAdapter:
    """An adapter of the registered ``kind`` built with ``options``; ValueError if unknown."""
    try:
        factory = ADAPTERS[kind]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown agent adapter {kind!r} (known: {known})") from None
    return factory(**options)


__all__ = [
    "ADAPTERS",
    "CHUNK_KINDS",
    "AgentAdapter",
    "AgentFailed",
    "AgentLoadError",
    "AgentRequest",
    "CanInvoke",
    "Chunk",
    "ChunkKind",
    "PythonAgent",
    "Recorded",
    "ReplayDiverged",
    "ScriptedAgent",
    "Tape",
    "adapter_can_invoke",
    "adapter_kind",
    "build_adapter",
    "collect",
    "to_chunk",
]
