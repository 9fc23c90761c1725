"""Running one claimed run: stream the agent, record what it does, finish the run.

Everything that matters is appended before it is acted on: steps and tool
results as ``StepRecorded``, an interrupt as ``ApprovalRequested`` (which frees
the slot), the end as ``Completed`` / ``Failed`` / ``Cancelled``. A worker whose
lease was taken over gets ``LeaseLost`` on its next append and stops quietly.

A write the store refuses for a transient fault waits for it, the agent with it,
and is never made twice (``run_writes.py``); an outage longer than
``store_outage_seconds`` leaves the run to its lease, as if its worker died.

The worker's heartbeat (``heartbeat.py``) renews the lease meanwhile; a beat the store refuses for a
transient fault is tried again on the next one. A heartbeat that dies of any
other error stops the agent and takes the run down with it (the harness then
fails the run), since a run whose lease nobody renews would be run twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..adapters.agents.base import (
    AgentAdapter,
    AgentFailed,
    AgentRequest,
    Chunk,
    adapter_can_invoke,
)
from ..app.journal import Journal
from ..app.models import Claim
from ..config.models import ApprovalsConfig
from ..config.workspace import Workspace
from ..domain import LEASED_STATES, InvalidTransition, LeaseLost, RunState, StoreUnavailable
from ..domain.errors import TamperDetected
from .heartbeat import CancelSignal, Heartbeats
from .outcome import Outcome
from .routing import tool_denial
from .run_writes import RunWrites
from .streaming import StreamType


@dataclass(frozen=True)
class ExecutionSettings:
    """The workspace settings one execution needs."""

    lease_seconds: float
    heartbeat_seconds: float
    invoke_timeout_seconds: float
    deny_tools: tuple[str, ...] = ()
    resume_retries: int = 0  # how often a resume the agent failed is retried (0: its failure is final)
    store_outage_seconds: float = 60.0  # how long a write the store refuses is tried again
    approvals: Mapping[str, ApprovalsConfig] = field(default_factory=dict)  # per agent: deadlines, assignees

    @classmethod
    def of(cls, workspace: Workspace, *, store_outage_seconds: float | None = None) -> ExecutionSettings:
        """The settings a workspace gives its executions (``store_outage_seconds``: the worker's, if it has its own)."""
        c, recovery = workspace.concurrency, workspace.recovery
        return cls(
            lease_seconds=c.lease_seconds,
            heartbeat_seconds=c.heartbeat_seconds,
            invoke_timeout_seconds=workspace.streaming.invoke_timeout_seconds,
            deny_tools=tuple(workspace.policy.deny_tools),
            # With recovery off, nothing retries: a failed resume is final.
            resume_retries=recovery.max_recovery_attempts if recovery.enabled else 0,
            store_outage_seconds=c.store_outage_seconds if store_outage_seconds is None else store_outage_seconds,
            approvals={name: agent.approvals for name, agent in workspace.agents.items()},
        )


class Execution:
    """One claim, from start to a resting state (terminal or waiting for approval)."""

    def __init__(
        self,
        journal: Journal,
        claim: Claim,
        adapter: AgentAdapter,
        request: AgentRequest,
        settings: ExecutionSettings,
        emit: Callable[[StreamType, str, dict[str, Any]], None],
        heartbeats: Heartbeats,
    ) -> None:
        self.journal = journal
        self.claim = claim
        self.adapter = adapter
        self.request = request
        self.settings = settings
        self.emit = emit
        self.heartbeats = heartbeats
        self.cancel_requested = CancelSignal()
        self._texts: list[str] = []
        self._tool_errors: list[str] = []  # each failed tool call, rendered: the output when nothing is said
        # Streamed text waiting to be recorded: (kind, pieces). Deltas are kept as one step per stretch
        # of the same kind, recorded when something else happens, so the log grows per step, not per token.
        self._stretch: tuple[str, list[str]] | None = None
        self.output: Any = None
        self._result: Any = None  # an ``output`` chunk's value: the run's result beside its text
        self._has_result = False
        self.error: str | None = None  # the agent's failure, once recorded
        self._last_tool: str | None = None
        self.writes = RunWrites(journal, settings.store_outage_seconds)

    async def run(self) -> Outcome:
        """Drive the run; returns how it ended."""
        lease = self.heartbeats.keep(self.claim, self.cancel_requested)
        try:
            return await self._run(lease.ended)
        except LeaseLost:
            return Outcome.LEASE_LOST
        except InvalidTransition:
            # A run another worker took over and ended refuses our events as transitions.
            if self._taken_over():
                return Outcome.LEASE_LOST
            raise
        finally:
            lease.stop()

    def _taken_over(self) -> bool:
        """True when the run's lease is no longer this claim's: it expired, or another worker has the run (or ended it)."""
        run = self.journal.get_run(self.claim.run_id)
        held = run.state in LEASED_STATES
        return not held or (run.worker_id, run.epoch) != (self.claim.worker_id, self.claim.epoch)

    def _cancelled(self, *, fresh: bool = False) -> bool:
        if not self.cancel_requested.is_set() and fresh:
            if self.journal.get_run(self.claim.run_id).state == RunState.CANCELLING:
                self.cancel_requested.set()
        return self.cancel_requested.is_set()

    async def _run(self, heartbeat: asyncio.Future[None]) -> Outcome:
        # No fresh read of the run first: it was claimed and started in the save just made.
        # The agent runs as its own task so that a cancel stops it even in the middle
        # of a long call, not only at its next chunk.
        work = asyncio.create_task(self._consume())
        try:
            finished = await _work_or_stop(work, self.cancel_requested.future, heartbeat)
        finally:
            # Also when the heartbeat died or the harness is closing: the agent never outlives its run.
            await _halt(work)
        return work.result() if finished else self._finish_cancel()

    async def _consume(self) -> Outcome:
        activity = False  # any chunk at all: after one, a failure is the run's, not a reason to invoke
        try:
            async with asyncio.timeout(self.settings.invoke_timeout_seconds):
                async for chunk in self.adapter.stream(self.request):
                    activity = True
                    if self._cancelled():
                        return self._finish_cancel()
                    if (rest := await self._handle(chunk)) is not None:
                        return rest
        except (LeaseLost, StoreUnavailable, TamperDetected, asyncio.CancelledError):
            # Not the agent's failure: a store fault, or a run whose log no longer checks
            # (quarantined by the harness), is the harness's to handle, not a reason to fail.
            raise
        except Exception as e:  # noqa: BLE001 - any agent error ends the run as failed, with its message
            # A stream that failed (or timed out) before any activity is answered by one
            # ``invoke`` when the agent has one; only a failure of that fails the run.
            if activity or not adapter_can_invoke(self.adapter) or self._cancelled(fresh=True):
                return await self._fail(self._agent_error(e), stage="stream")
            if (rest := await self._invoke_once()) is not None:
                return rest
        if self._cancelled():
            return self._finish_cancel()
        if not self._texts and self._tool_errors:  # nothing said: the failures are the answer
            await self._say("\n\n".join(self._tool_errors))
        if not self._texts and adapter_can_invoke(self.adapter) and not self._cancelled(fresh=True):
            if (rest := await self._invoke_for_text()) is not None:
                return rest
        await self._record(keep_output=True)
        # The harness saves this run's Completed together with the other runs that
        # finished in the same moment (a group commit): see Harness._complete.
        self.output = {"text": "".join(self._texts), **({"result": self._result} if self._has_result else {})}
        return Outcome.COMPLETING

    def _agent_error(self, error: Exception) -> str:
        if isinstance(error, TimeoutError):
            return f"timed out after {self.settings.invoke_timeout_seconds:g} s"
        return error_text(error)

    async def _invoke(self) -> list[Chunk] | Outcome:
        """One ``invoke`` with the run's request (its thread history included): its chunks, or the resting state
        when it failed (a timeout here fails the run)."""
        try:
            async with asyncio.timeout(self.settings.invoke_timeout_seconds):
                return list(await self.adapter.invoke(self.request))  # type: ignore[attr-defined]
        except (LeaseLost, StoreUnavailable, TamperDetected, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 - the fallback failed too: the run fails
            return await self._fail(self._agent_error(e), stage="invoke")

    def completion_refused(self, error: Exception) -> Outcome:
        """The group commit refused this run's Completed: how the run ended instead."""
        if isinstance(error, LeaseLost):
            return Outcome.LEASE_LOST
        # A cancel written by another process meanwhile: Completed only follows running.
        if isinstance(error, InvalidTransition) and self._cancelled(fresh=True):
            return self._finish_cancel()
        if isinstance(error, InvalidTransition) and self._taken_over():
            return Outcome.LEASE_LOST  # another worker took it over and ended it first
        raise error

    async def _invoke_once(self) -> Outcome | None:
        """The fallback for a stream that failed before any activity: every chunk of one ``invoke`` is handled."""
        chunks = await self._invoke()
        if isinstance(chunks, Outcome):
            return chunks
        for chunk in chunks:
            try:
                rest = await self._handle(chunk)
            except InvalidTransition:
                if self._cancelled(fresh=True):  # cancelled while the agent answered
                    return self._finish_cancel()
                raise
            if rest is not None:
                return rest
        return None

    async def _invoke_for_text(self) -> Outcome | None:
        """The fallback for a stream that ended saying nothing: the text of one ``invoke``.

        Only its content is taken: the stream's steps and tool results are recorded
        already, and recording the same calls again would tell a different story.
        """
        chunks = await self._invoke()
        if isinstance(chunks, Outcome):
            return chunks
        text = "".join(str(c.content) for c in chunks if c.kind == "content" and c.content is not None)
        if text:
            await self._say(text)
        return None

    async def _say(self, text: str) -> None:
        self._texts.append(text)
        await self._stream_text("output", text)
        self.emit("content", self.claim.run_id, {"text": text})

    async def _stream_text(self, kind: str, text: str) -> None:
        if self._stretch is not None and self._stretch[0] != kind:
            await self._record()
        if self._stretch is None:
            self._stretch = (kind, [])
        self._stretch[1].append(text)

    def _take_stretch(self, *, keep_output: bool = False) -> list[tuple[str, Any]]:
        """The streamed text not yet in the log, as the step to record (``kind`` reasoning or output), if any.

        ``keep_output``: a trailing stretch of output is left out, since ``Completed`` records
        the whole answer; recording its tail too would store it twice.
        """
        stretch, self._stretch = self._stretch, None
        if stretch is None or (keep_output and stretch[0] == "output"):
            return []
        kind, pieces = stretch
        return [(kind, {"text": "".join(pieces)})]

    async def _record(self, *steps: tuple[str, Any], keep_output: bool = False) -> None:
        """Record the pending streamed text, then ``steps``: one save for what belongs together."""
        if batch := [*self._take_stretch(keep_output=keep_output), *steps]:
            await self.writes.record_steps(self.claim, batch)

    async def _handle(self, chunk: Chunk) -> Outcome | None:
        """Record and emit one chunk; returns a resting state when the run must stop here."""
        run_id = self.claim.run_id
        if chunk.kind == "content":
            await self._say(str(chunk.content))
            return None
        if chunk.kind == "reasoning":
            await self._stream_text("reasoning", str(chunk.content))
            self.emit("reasoning", run_id, {"text": str(chunk.content)})
            return None
        if chunk.kind == "step":  # what was streamed before a chunk comes first in the log
            await self._record(("step", _with_source(chunk.content, chunk)))
            self.emit("step", run_id, {"content": chunk.content})
        elif chunk.kind == "tool_result":
            return await self._tool_result(chunk)
        elif chunk.kind == "interrupt":
            return await self._interrupt(chunk)
        elif chunk.kind == "tool_call":  # announced before the call: a denied tool is refused before it runs
            if denial := tool_denial(chunk.tool_name, self.settings.deny_tools):
                return await self._fail(denial)
        elif chunk.kind == "output":
            self._result, self._has_result = chunk.content, True
        return None

    async def _tool_result(self, chunk: Chunk) -> Outcome | None:
        if denial := tool_denial(chunk.tool_name, self.settings.deny_tools):
            return await self._fail(denial)
        result = _with_source(tool_result_content(chunk), chunk)
        key = tool_identity(chunk)
        if key == self._last_tool:
            await self._record()
            return None  # the same call's same result, repeated at once: recorded once
        self._last_tool = key
        if chunk.is_error:
            self._tool_errors.append(render_tool_failure(chunk.tool_name, chunk.content))
        await self._record(("tool_result", result))
        self.emit("tool_result", self.claim.run_id, result)
        return None

    async def _interrupt(self, chunk: Chunk) -> Outcome:
        if denial := tool_denial(chunk.tool_name, self.settings.deny_tools):
            return await self._fail(denial)
        await self._record()
        policy = self.settings.approvals.get(self.claim.agent_id)
        approval_id = await self.writes.request_approval(
            self.claim,
            tool_name=chunk.tool_name or "(unnamed tool)",
            tool_args=chunk.tool_args or {},
            tool_call_id=chunk.tool_call_id,
            content=chunk.content,
            checkpoint_ref=chunk.checkpoint_ref,
            output="".join(self._texts) or None,
            expires_in=policy.expires_in_seconds if policy else None,
            assignees=policy.assignees if policy else None,
            on_expiry=policy.on_expiry if policy else "reject",
        )
        data = {"approval_id": approval_id, "tool_name": chunk.tool_name, "tool_args": chunk.tool_args}
        self.emit("approval", self.claim.run_id, data)
        return Outcome.WAITING_FOR_APPROVAL

    async def _fail(self, error: str, *, stage: Literal["stream", "invoke"] | None = None) -> Outcome:
        """Fail the run, unless a cancel arrived meanwhile: then it ends cancelled, as asked.

        An agent's failure (``stage`` set) while resuming a decision leaves the run
        ``resuming``, to be retried, while it has retries left; a policy denial is final.
        """
        if self._cancelled(fresh=True):
            return self._finish_cancel()
        await self._record()  # what the agent said before it failed is part of the record
        retries = self.settings.resume_retries if stage is not None else 0
        self.error = error
        run = await self.writes.fail(self.claim, error=error, stage=stage, retries=retries)
        return Outcome.FAILED if run.is_terminal else Outcome.RESUME_FAILED

    def _finish_cancel(self) -> Outcome:
        """Stop: output produced after the request is not recorded as the run's output."""
        self.journal.finish_cancel(self.claim)
        return Outcome.CANCELLED


def _with_source(content: Any, chunk: Chunk) -> Any:
    """A step's content, naming the recorded event it repeats when it was served from one (see tape.py)."""
    if chunk.served_from is None or not isinstance(content, dict):
        return content
    return {**content, "served_from": dict(chunk.served_from)}


def tool_result_content(chunk: Chunk) -> dict[str, Any]:
    """What a tool_result step records of a chunk: the call and what it returned."""
    return {"tool": chunk.tool_name, "args": chunk.tool_args, "output": chunk.content, "is_error": chunk.is_error,
            **({"call_id": chunk.tool_call_id} if chunk.tool_call_id is not None else {})}


def tool_identity(chunk: Chunk) -> str:
    """What makes two tool results the same: the call (id, tool, canonical args) and its result."""
    return json.dumps(
        [chunk.tool_call_id, chunk.tool_name, chunk.tool_args or {}, chunk.content, chunk.is_error],
        sort_keys=True, separators=(",", ":"), default=str,
    )


async def _work_or_stop(work: asyncio.Task[Outcome], stop: asyncio.Future[None], heartbeat: asyncio.Future[None]) -> bool:
    """Wait for the agent (True) or a cancel (False); raises the heartbeat's error if it dies of one."""
    watched: set[asyncio.Future[Any]] = {work, stop, heartbeat}
    while True:
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if heartbeat in done:
            watched.discard(heartbeat)
            heartbeat.result()  # a lease lost ends the heartbeat quietly; any other error ends the run
        if work in done:
            return True
        if stop in done:
            return False


async def _halt(work: asyncio.Task[Outcome]) -> None:
    """Stop the agent's task and wait until it has stopped (a no-op once it is done)."""
    if work.done():
        if not work.cancelled():
            work.exception()  # seen, so that a run ended by its heartbeat logs no "never retrieved" error
        return
    work.cancel()
    await asyncio.wait({work})  # unlike awaiting it, never swallows a cancel of the caller
    if not work.cancelled():
        work.exception()  # whatever it raised while stopping, the run ends as cancelled


def render_tool_failure(tool_name: str | None, output: Any) -> str:
    """How a failed tool call reads in a run's output: the tool, then what it returned."""
    shown = output if isinstance(output, str) else json.dumps(output, sort_keys=True, default=str)
    return f"Tool {tool_name or '(unnamed tool)'} failed: {shown}"


def error_text(error: BaseException) -> str:
    """How an agent's exception reads as a run's error (an AgentFailed's message as it is)."""
    text = str(error) or type(error).__name__
    return text if isinstance(error, AgentFailed) else f"{type(error).__name__}: {text}"
