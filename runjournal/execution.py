"""Running one claimed run: stream the agent, record what it does, finish the run.

Everything that matters is appended before it is acted on: steps and tool
results as ``StepRecorded``, an interrupt as ``ApprovalRequested`` (which frees
the slot), the end as ``Completed`` / ``Failed`` / ``Cancelled``. A worker whose
lease was taken over gets ``LeaseLost`` on its next append and stops quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .adapters.agents.base import AgentAdapter, AgentFailed, AgentRequest, Chunk, adapter_can_invoke
from .domain import InvalidTransition, LeaseLost
from .journal import Journal
from .models import Claim
from .routing import tool_denial
from .streaming import StreamEvent

CANCELLING = "cancelling"
COMPLETING = "completing"  # the agent finished; Completed is saved by the harness, grouped


@dataclass(frozen=True)
class ExecutionSettings:
    """The workspace settings one execution needs."""

    lease_seconds: float
    heartbeat_seconds: float
    invoke_timeout_seconds: float
    deny_tools: tuple[str, ...] = ()


class Execution:
    """One claim, from start to a resting state (terminal or waiting for approval)."""

    def __init__(
        self,
        journal: Journal,
        claim: Claim,
        adapter: AgentAdapter,
        request: AgentRequest,
        settings: ExecutionSettings,
        emit: Callable[[StreamEvent], None],
    ) -> None:
        self.journal = journal
        self.claim = claim
        self.adapter = adapter
        self.request = request
        self.settings = settings
        self.emit = emit
        self.cancel_requested = asyncio.Event()
        self._texts: list[str] = []
        self.output: Any = None
        self._last_tool: str | None = None

    async def run(self) -> str:
        """Drive the run; returns the state it rests in ("lease_lost" if it was taken over)."""
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            return await self._run()
        except LeaseLost:
            return "lease_lost"
        finally:
            heartbeat.cancel()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                self.claim = self.journal.heartbeat(self.claim, lease_seconds=self.settings.lease_seconds)
            except LeaseLost:
                return
            if self.journal.get_run(self.claim.run_id).state == CANCELLING:
                self.cancel_requested.set()

    def _cancelled(self, *, fresh: bool = False) -> bool:
        if not self.cancel_requested.is_set() and fresh:
            if self.journal.get_run(self.claim.run_id).state == CANCELLING:
                self.cancel_requested.set()
        return self.cancel_requested.is_set()

    async def _run(self) -> str:
        # No fresh read of the run first: it was claimed and started in the save just made.
        # The agent runs as its own task so that a cancel stops it even in the middle
        # of a long call, not only at its next chunk.
        work = asyncio.create_task(self._consume())
        stop = asyncio.create_task(self.cancel_requested.wait())
        done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            stop.cancel()
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return self._finish_cancel()

    async def _consume(self) -> str:
        produced = False
        try:
            async with asyncio.timeout(self.settings.invoke_timeout_seconds):
                async for chunk in self.adapter.stream(self.request):
                    produced = True
                    if self._cancelled():
                        return self._finish_cancel()
                    if (rest := self._handle(chunk)) is not None:
                        return rest
        except TimeoutError:
            return self._fail(f"timed out after {self.settings.invoke_timeout_seconds:g} s")
        except (LeaseLost, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 - any agent error ends the run as failed, with its message
            if produced or not adapter_can_invoke(self.adapter) or self._cancelled(fresh=True):
                return self._fail(_error_text(e))
            if (rest := await self._invoke_once()) is not None:
                return rest
        if self._cancelled():
            return self._finish_cancel()
        # The harness saves this run's Completed together with the other runs that
        # finished in the same moment (a group commit): see Harness._complete.
        self.output = {"text": "".join(self._texts)}
        return COMPLETING

    def completion_refused(self, error: Exception) -> str:
        """The group commit refused this run's Completed: why, as the state it rests in."""
        if isinstance(error, LeaseLost):
            return "lease_lost"
        # A cancel written by another process meanwhile: Completed only follows running.
        if isinstance(error, InvalidTransition) and self._cancelled(fresh=True):
            return self._finish_cancel()
        raise error

    async def _invoke_once(self) -> str | None:
        """The fallback for a stream that failed before any output: one ``invoke``."""
        try:
            async with asyncio.timeout(self.settings.invoke_timeout_seconds):
                chunks = await self.adapter.invoke(self.request)  # type: ignore[attr-defined]
        except TimeoutError:
            return self._fail(f"timed out after {self.settings.invoke_timeout_seconds:g} s")
        except Exception as e:  # noqa: BLE001 - the fallback failed too: the run fails
            return self._fail(_error_text(e))
        for chunk in chunks:
            try:
                rest = self._handle(chunk)
            except InvalidTransition:
                if self._cancelled(fresh=True):  # cancelled while the agent answered
                    return self._finish_cancel()
                raise
            if rest is not None:
                return rest
        return None

    def _handle(self, chunk: Chunk) -> str | None:
        """Record and emit one chunk; returns a resting state when the run must stop here."""
        run_id = self.claim.run_id
        if chunk.kind == "content":
            self._texts.append(str(chunk.content))
            self.emit(StreamEvent(type="content", run_id=run_id, data={"text": str(chunk.content)}))
        elif chunk.kind == "reasoning":
            self.emit(StreamEvent(type="reasoning", run_id=run_id, data={"text": str(chunk.content)}))
        elif chunk.kind == "step":
            self.journal.record_step(self.claim, "step", chunk.content)
            self.emit(StreamEvent(type="step", run_id=run_id, data={"content": chunk.content}))
        elif chunk.kind == "tool_result":
            return self._tool_result(chunk)
        elif chunk.kind == "interrupt":
            return self._interrupt(chunk)
        return None

    def _tool_result(self, chunk: Chunk) -> str | None:
        if denial := tool_denial(chunk.tool_name, self.settings.deny_tools):
            return self._fail(denial)
        result = {"tool": chunk.tool_name, "args": chunk.tool_args, "output": chunk.content, "is_error": chunk.is_error}
        key = json.dumps([chunk.tool_name, chunk.content, chunk.is_error], sort_keys=True, default=str)
        if key == self._last_tool:
            return None  # identical consecutive tool results are recorded once
        self._last_tool = key
        self.journal.record_step(self.claim, "tool_result", result)
        self.emit(StreamEvent(type="tool_result", run_id=self.claim.run_id, data=result))
        return None

    def _interrupt(self, chunk: Chunk) -> str:
        if denial := tool_denial(chunk.tool_name, self.settings.deny_tools):
            return self._fail(denial)
        approval_id = self.journal.request_approval(
            self.claim,
            tool_name=chunk.tool_name or "(unnamed tool)",
            tool_args=chunk.tool_args or {},
            tool_call_id=chunk.tool_call_id,
            content=chunk.content,
            checkpoint_ref=chunk.checkpoint_ref,
        )
        data = {"approval_id": approval_id, "tool_name": chunk.tool_name, "tool_args": chunk.tool_args}
        self.emit(StreamEvent(type="approval", run_id=self.claim.run_id, data=data))
        return "waiting_for_approval"

    def _fail(self, error: str) -> str:
        """Fail the run, unless a cancel arrived meanwhile: then it ends cancelled, as asked."""
        if self._cancelled(fresh=True):
            return self._finish_cancel()
        self.journal.fail(self.claim, error=error)
        return "failed"

    def _finish_cancel(self) -> str:
        """Stop: output produced after the request is not recorded as the run's output."""
        self.journal.finish_cancel(self.claim)
        return "cancelled"


def _error_text(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, AgentFailed) else f"{type(error).__name__}: {text}"
