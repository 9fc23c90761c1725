"""Replay: run a run's agent again against its recorded history, call nothing, append nothing, compare.

A run's log is cut into executions, each begun by ``Started`` or ``Resumed`` (which
carries the decision the agent resumed with). Each execution is asked again of the agent,
with a strict tape of what that execution recorded: every tool and model call the agent
makes through its request is served from the log, and a call the log does not hold is a
divergence, never a call. What the agent yields is folded as the worker folds it (text in
stretches, one step per chunk, a repeated identical tool result once) and compared, item by
item, with what the execution recorded. The first difference is reported with the version
of the event that recorded otherwise; an execution its worker never finished (its lease
ran out, it was cancelled) is compared as far as it got.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..adapters.agents import AgentAdapter, AgentRequest, Chunk, Recorded, ReplayDiverged, Tape
from ..app.journal import Journal
from ..app.models import RecordedEvent
from .execution import error_text, render_tool_failure, tool_identity, tool_result_content

BEGINS = ("Started", "Resumed")


class Divergence(BaseModel):
    """Where a replay first differed from the record."""

    model_config = ConfigDict(frozen=True)

    version: int  # the event that recorded otherwise (or the one after the record's last item)
    recorded: Any  # what the log holds there (None: the record ended)
    now: Any  # what the agent did now (None: it did nothing more)


class ReplayReport(BaseModel):
    """A replay's outcome: identical, or the first divergence."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    agent_id: str
    identical: bool
    executions: int  # executions replayed (a Started or a Resumed each)
    compared: int  # recorded items the agent reproduced before the end or the divergence
    divergence: Divergence | None = None


@dataclass(frozen=True)
class _Item:
    """One thing an execution recorded, as compared: its kind and what it holds."""

    kind: str
    value: Any
    version: int = 0

    def same(self, other: _Item) -> bool:
        return self.kind == other.kind and _canonical(self.value) == _canonical(other.value)

    def shown(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _unserved(content: Any) -> Any:
    """A step's content without where it was served from: a fork's steps compare as what they are."""
    if isinstance(content, Mapping) and "served_from" in content:
        return {k: v for k, v in content.items() if k != "served_from"}
    return content


def executions(events: Sequence[RecordedEvent]) -> list[list[RecordedEvent]]:
    """The run's events cut at each Started / Resumed (each list starts with one)."""
    found: list[list[RecordedEvent]] = []
    for e in events:
        if e.type in BEGINS:
            found.append([e])
        elif found:
            found[-1].append(e)
    return found


def recorded_items(execution: Sequence[RecordedEvent]) -> tuple[list[_Item], bool]:
    """(what one execution recorded, in order; whether the agent brought it to its end).

    An execution its worker stopped (a cancel, a lease that ran out, a policy denial or
    another failure of the harness's, not the agent's) did not reach its end.
    """
    items: list[_Item] = []
    for e in execution[1:]:
        d = e.data
        if e.type == "StepRecorded":
            items.append(_Item(d["kind"], _unserved(d["content"]), e.version))
        elif e.type == "ApprovalRequested":
            items.append(_Item("approval", {"tool_name": d["tool_name"], "tool_args": d["tool_args"]}, e.version))
            return items, True
        elif e.type == "Completed":
            text = d["output"].get("text") if isinstance(d["output"], Mapping) else d["output"]
            items.append(_Item("answer", text, e.version))
            return items, True
        elif e.type in ("Failed", "ResumeFailed") and d.get("stage"):  # the agent's own failure
            items.append(_Item("failed", d["error"], e.version))
            return items, True
        elif e.type in ("Failed", "Cancelled", "LeaseExpired", "ResumeFailed"):
            return items, False
    return items, False


class _Fold:
    """What the worker would record of a stream of chunks (execution.py's rules, without a store)."""

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self._texts: list[str] = []
        self._stretch: tuple[str, list[str]] | None = None
        self._last_tool: str | None = None
        self._tool_errors: list[str] = []

    def flush(self) -> None:
        """Record the streamed text not recorded yet, as one step."""
        if self._stretch is not None:
            kind, pieces = self._stretch
            self.items.append(_Item(kind, {"text": "".join(pieces)}))
            self._stretch = None

    def _text(self, kind: str, text: str) -> None:
        if self._stretch is not None and self._stretch[0] != kind:
            self.flush()
        if self._stretch is None:
            self._stretch = (kind, [])
        self._stretch[1].append(text)

    def add(self, chunk: Chunk) -> bool:
        """Fold one chunk; False once the execution rests (an interrupt)."""
        if chunk.kind == "content":
            self._texts.append(str(chunk.content))
            self._text("output", str(chunk.content))
        elif chunk.kind == "reasoning":
            self._text("reasoning", str(chunk.content))
        elif chunk.kind == "step":
            self.flush()
            self.items.append(_Item("step", chunk.content))
        elif chunk.kind == "tool_result":
            key = tool_identity(chunk)  # the worker's rule: the same call's same result, repeated, is one
            if key != self._last_tool:
                self._last_tool = key
                if chunk.is_error:
                    self._tool_errors.append(render_tool_failure(chunk.tool_name, chunk.content))
                self.flush()
                self.items.append(_Item("tool_result", tool_result_content(chunk)))
        elif chunk.kind == "interrupt":
            self.flush()
            self.items.append(_Item("approval", {"tool_name": chunk.tool_name or "(unnamed tool)",
                                                 "tool_args": chunk.tool_args or {}}))
            return False
        return True

    def end(self, error: str | None) -> None:
        """The stream ended: its trailing text is the answer (a failure: the error)."""
        if error is not None:
            self.flush()
            self.items.append(_Item("failed", error))
            return
        if not self._texts and self._tool_errors:  # nothing said: the failures are the answer
            self._texts.append("\n\n".join(self._tool_errors))
            self._text("output", self._texts[0])
        if self._stretch is not None and self._stretch[0] != "output":
            self.flush()
        self._stretch = None
        self.items.append(_Item("answer", "".join(self._texts)))


def _request(journal: Journal, run: Any, begin: RecordedEvent, tape: Tape) -> AgentRequest:
    """What the agent was asked at the start of this execution (messages: the thread's before the run)."""
    invocation = run.invocation or {}
    earlier = {r.run_id for r in journal.runs(thread_id=run.thread_id) if r.created_at < run.created_at.isoformat()}
    messages = tuple({"role": m.role, "content": m.content} for m in journal.messages(run.thread_id)
                     if m.run_id in earlier)
    resumed = begin.type == "Resumed"
    return AgentRequest(
        run_id=run.run_id, thread_id=run.thread_id, agent_id=run.agent_id, input=run.input, messages=messages,
        resume=begin.data.get("decision") if resumed else None,
        resume_kind=begin.data.get("resume_kind") if resumed else None,
        context=invocation.get("context"), inputs=invocation.get("inputs"),
        attachments=tuple(invocation.get("attachments") or ()), tape=tape,
    )


async def _replayed(adapter: AgentAdapter, request: AgentRequest, timeout: float) -> tuple[_Fold, ReplayDiverged | None]:
    """What the agent yields now, folded; and the call it asked for that the record does not hold, if it did."""
    fold = _Fold()
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            async for chunk in adapter.stream(request):
                if not fold.add(chunk):
                    return fold, None
    except ReplayDiverged as e:
        fold.flush()  # what was said before the call: the worker records it with the call's result
        return fold, e
    except Exception as e:  # noqa: BLE001 - the agent's failure is what it did now; compared with the record
        error = f"timed out after {timeout:g} s" if isinstance(e, TimeoutError) else error_text(e)
    fold.end(error)
    return fold, None


async def replay_run(journal: Journal, run_id: str, adapter: AgentAdapter, *, timeout: float = 300.0) -> ReplayReport:
    """Replay ``run_id``'s agent against its record (nothing called, nothing appended): identical or where not."""
    run = journal.get_run(run_id)
    runs = executions(journal.history(run.run_id))
    compared = 0
    for execution in runs:
        recorded, finished = recorded_items(execution)
        steps = [Recorded(run.run_id, e.version, e.data["kind"], _unserved(e.data["content"]))
                 for e in execution if e.type == "StepRecorded"]
        fold, asked = await _replayed(adapter, _request(journal, run, execution[0], Tape(steps, strict=True)), timeout)
        now = fold.items
        matched = _matched(recorded, now)
        if asked is not None and matched == len(now):  # it reproduced everything until a call the log lacks
            if not finished and asked.recorded is None and matched == len(recorded):
                compared += matched  # the worker never got further: neither can the replay
                continue
            version = asked.recorded.version if asked.recorded is not None else _next_version(recorded, matched,
                                                                                                execution)
            return _report(run, len(runs), compared + matched,
                           Divergence(version=version, recorded=_shown(asked.recorded), now=asked.asked))
        if matched == len(recorded) and (matched == len(now) or not finished):
            compared += matched  # identical, or identical as far as a stopped execution got
            continue
        mine = recorded[matched] if matched < len(recorded) else None
        theirs = now[matched] if matched < len(now) else None
        version = mine.version if mine is not None else _next_version(recorded, matched, execution)
        return _report(run, len(runs), compared + matched, Divergence(
            version=version, recorded=mine.shown() if mine else None, now=theirs.shown() if theirs else None))
    return _report(run, len(runs), compared, None)


def _matched(recorded: Sequence[_Item], now: Sequence[_Item]) -> int:
    """How many items from the start the replay reproduced."""
    count = 0
    for mine, theirs in zip(recorded, now, strict=False):
        if not mine.same(theirs):
            break
        count += 1
    return count


def _next_version(recorded: Sequence[_Item], matched: int, execution: Sequence[RecordedEvent]) -> int:
    """The version after the last item reproduced: where the record says something else happened."""
    last = recorded[matched - 1].version if matched else execution[0].version
    return last + 1


def _shown(step: Recorded | None) -> Any:
    return None if step is None else {"kind": step.kind, "value": step.content}


def _report(run: Any, executions_: int, compared: int, divergence: Divergence | None) -> ReplayReport:
    return ReplayReport(run_id=run.run_id, agent_id=run.agent_id, identical=divergence is None,
                        executions=executions_, compared=compared, divergence=divergence)
