"""LangGraph for runjournal (the optional extra ``runjournal[langgraph]``): a graph as an agent, and a
journal-backed checkpointer. Imported by name only: ``digest`` needs no LangGraph."""

from __future__ import annotations

from typing import Any

__all__ = ["JournalCheckpointer", "LangGraphAgent"]


def __getattr__(name: str) -> Any:
    if name == "JournalCheckpointer":
        from .checkpointer import JournalCheckpointer

        return JournalCheckpointer
    if name == "LangGraphAgent":
        from .agent import LangGraphAgent

        return LangGraphAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
