"""LangGraph for runjournal (the optional extra ``runjournal[langgraph]``): a journal-backed checkpointer."""

from .checkpointer import JournalCheckpointer

__all__ = ["JournalCheckpointer"]
