"""What a run recorded, served back to its agent: tool results and model outputs, in order, no call made.

An agent that calls its tools and models through ``AgentRequest.tool`` and
``AgentRequest.model`` gets, for each call, the output the log holds for it when
the log holds it: matched by tool call id, else by position among the calls of
that kind, and only when the name and arguments are the same. A fork serves its
parent's record up to the fork, then calls live from the first call the record
does not hold (``strict=False``). A replay serves its own run's record and never
calls anything: a call the record does not hold is a ``ReplayDiverged``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...domain.errors import RunjournalError


@dataclass(frozen=True, slots=True)
class Recorded:
    """One step of a run's record: the event that holds it and what it holds."""

    run_id: str
    version: int
    kind: str  # the StepRecorded kind: "tool_result", "step", "reasoning", "output"
    content: Any

    @property
    def source(self) -> dict[str, Any]:
        """Where a served output came from, as recorded beside it."""
        return {"run_id": self.run_id, "version": self.version}


class ReplayDiverged(RunjournalError):
    """Raised when a replayed agent asks for a call its run's record does not hold (nothing was called)."""

    code = "replay_diverged"

    def __init__(self, asked: Mapping[str, Any], recorded: Recorded | None) -> None:
        self.asked = dict(asked)
        self.recorded = recorded
        held = (f"version {recorded.version} recorded {_text(recorded.content)}" if recorded is not None
                else "the record holds no more calls")
        super().__init__(f"the agent asked for {_text(self.asked)}; {held}")


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: what the log stores is compared with what the agent asks now."""
    return _text(a) == _text(b)


@dataclass
class Tape:
    """The calls of a record, each served at most once, in order."""

    steps: Sequence[Recorded]
    strict: bool = False  # a replay: never call, a miss is a divergence
    live: bool = False  # a fork past the end of its record (or its first miss): every call is made
    _tools: list[Recorded] = field(init=False)
    _models: list[Recorded] = field(init=False)
    _next_tool: int = field(default=0, init=False)
    _next_model: int = field(default=0, init=False)
    _used: set[int] = field(default_factory=set, init=False)  # indexes of the tool results served

    def __post_init__(self) -> None:
        self._tools = [s for s in self.steps if s.kind == "tool_result" and isinstance(s.content, Mapping)]
        self._models = [s for s in self.steps
                        if s.kind == "step" and isinstance(s.content, Mapping) and "model" in s.content]

    def tool(self, name: str, args: Mapping[str, Any], call_id: str | None) -> Recorded | None:
        """The recorded result of this call, or None when it must be made (raises in a strict replay)."""
        if self.live:
            return None
        at = next((i for i, s in enumerate(self._tools) if i not in self._used and call_id is not None
                   and s.content.get("call_id") == call_id), self._next_tool)
        found = self._peek(self._tools, at)
        if found is not None and found.content.get("tool") == name and _same(found.content.get("args"), args):
            self._used.add(at)
            while self._next_tool in self._used:
                self._next_tool += 1
            return found
        self._miss({"tool": name, "args": dict(args), **({"call_id": call_id} if call_id else {})}, found)
        return None

    def model(self, name: str, args: Any) -> Recorded | None:
        """The recorded output of this model call, or None when it must be made (raises in a strict replay)."""
        asked = {"model": name, "args": args}
        if self.live:
            return None
        found = self._peek(self._models, self._next_model)
        if found is not None and found.content.get("model") == name and _same(found.content.get("args"), args):
            self._next_model += 1
            return found
        self._miss(asked, found)
        return None

    def _miss(self, asked: Mapping[str, Any], recorded: Recorded | None) -> None:
        if self.strict:
            raise ReplayDiverged(asked, recorded)
        self.live = True  # the record no longer describes this run: from here on, everything is live
        return None

    @staticmethod
    def _peek(items: Sequence[Recorded], at: int) -> Recorded | None:
        return items[at] if at < len(items) else None
