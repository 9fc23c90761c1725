"""ScriptedAgent: a deterministic agent that walks a list of steps (for demos and tests).

Its tool calls go through ``AgentRequest.tool``, as a replayable agent's do: a fork
or a replay is served the recorded results. A tool call with ``requires_approval`` pauses the run. Resumed with ``approve`` or
``edit``, the agent reports the tool's result and plays the rest of the script; with
``reject`` it answers the step's ``rejected`` text (default: the tool was rejected and
not run) and stops there, since the steps after a call are written for its success.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ...domain import DECISIONS
from .base import AgentFailed, AgentRequest, Chunk, collect

STEP_KEYS = ("say", "reasoning", "step", "tool_call", "fail", "sleep")
DEFAULT_RESULT: dict[str, Any] = {"ok": True}


def _step_key(index: int, step: object) -> str:
    if isinstance(step, Mapping):
        for key in STEP_KEYS:
            if key in step:
                if key == "tool_call" and not isinstance(step[key], Mapping):
                    break
                return key
    raise ValueError(
        f"script step {index}: expected a mapping with one of {', '.join(STEP_KEYS)} (got {step!r})"
    )


def _tool(step: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    call = step["tool_call"]
    return str(call["name"]), dict(call.get("args") or {})


def _rejected(step: Mapping[str, Any], name: str, message: str) -> str:
    text = step.get("rejected")
    if text is None:
        return f"Tool {name} was rejected. It was not run."
    return str(text).replace("{message}", message)


def _result(step: Mapping[str, Any]) -> Any:
    result = step.get("result")
    return dict(DEFAULT_RESULT) if result is None else result


def _returns(result: Any) -> Any:
    """The script's stand-in for a tool: it returns the step's result, whatever it is called with."""
    return lambda **_args: result


class ScriptedAgent:
    """An agent that plays a script: says, reasoning, steps, tool calls, failures and sleeps."""

    kind = "scripted"

    def __init__(
        self, script: Sequence[Mapping[str, Any]], *, supports_replay: bool = True
    ) -> None:
        self.script: tuple[Mapping[str, Any], ...] = tuple(script)
        self._keys = [_step_key(i, step) for i, step in enumerate(self.script)]
        self.supports_replay = supports_replay
        self.uses_history = False  # a script never reads the thread: skip loading it

    @classmethod
    def from_steps(cls, *steps: Mapping[str, Any], supports_replay: bool = True) -> ScriptedAgent:
        """A ScriptedAgent from steps given as arguments."""
        return cls(steps, supports_replay=supports_replay)

    def __repr__(self) -> str:
        return f"ScriptedAgent({len(self.script)} steps)"

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        """Play the script from the start, or from the checkpoint being resumed with a decision."""
        start = 0
        if request.decision is not None:
            start = self._checkpoint(request)
            yield await self._resumed(start, request)
            if request.decision == "reject":
                return  # the rest of the script assumes the call ran: none of it may run
            start += 1
        for index in range(start, len(self.script)):
            step, key = self.script[index], self._keys[index]
            if key == "sleep":
                await asyncio.sleep(float(step["sleep"]))
            elif key == "fail":
                raise AgentFailed(str(step["fail"]))
            elif key == "say":
                yield Chunk.say(str(step["say"]).replace("{message}", request.message))
            elif key == "reasoning":
                yield Chunk.think(str(step["reasoning"]).replace("{message}", request.message))
            elif key == "step":
                yield Chunk.step(step["step"])
            else:
                name, args = _tool(step)
                if step.get("requires_approval"):
                    yield Chunk.interrupt(
                        name,
                        args,
                        call_id=f"call-{index}",
                        message=f"Tool {name} requires approval.",
                        checkpoint_ref=f"step:{index}",
                    )
                    return  # the harness pauses the run until someone decides
                yield await request.tool(name, args, _returns(_result(step)), call_id=f"call-{index}")

    async def invoke(self, request: AgentRequest) -> list[Chunk]:
        """Play the script and return all its chunks at once."""
        return await collect(self.stream(request))

    def _checkpoint(self, request: AgentRequest) -> int:
        ref = (request.resume or {}).get("checkpoint_ref")
        prefix, _, number = str(ref).partition(":")
        if prefix != "step" or not number.isdigit():
            raise AgentFailed(f"cannot resume scripted agent: bad checkpoint_ref {ref!r}")
        index = int(number)
        if index >= len(self.script) or self._keys[index] != "tool_call":
            raise AgentFailed(f"cannot resume scripted agent at {ref!r}: not a tool call step")
        return index

    async def _resumed(self, index: int, request: AgentRequest) -> Chunk:
        resume = request.resume or {}
        decision = resume.get("decision")
        if decision not in DECISIONS:
            raise AgentFailed(
                f"unknown decision {decision!r} (expected one of {', '.join(DECISIONS)})"
            )
        step = self.script[index]
        name, args = _tool(step)
        if decision == "reject":
            return Chunk.say(_rejected(step, name, request.message))
        if decision == "edit" and resume.get("edited_args") is not None:
            args = dict(resume["edited_args"])
        call_id = resume.get("tool_call_id") or f"call-{index}"
        return await request.tool(name, args, _returns(_result(step)), call_id=call_id)
