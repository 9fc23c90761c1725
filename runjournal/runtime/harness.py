"""The asyncio runtime's public face: submit, run, stream, resume, cancel, wait, health.

A harness is one worker (``worker.py``: the loop that claims runs into at most
``max_concurrent_runs`` slots and runs each as an ``Execution``) with the verbs of
an application on top: ``run`` / ``resume`` / ``stream`` submit or decide, and then
wait for the loop, which keeps going while anyone waits (or for good after ``start()``).
Routing and policy (``routing.py``) decide which agent a submitted run goes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

from ..adapters.agents import AgentAdapter, adapter_kind
from ..adapters.clock import Clock
from ..app.journal import Journal
from ..app.models import RunSnapshot
from ..config.workspace import Workspace
from ..domain import AUTO_AGENT, RESTING_STATES, ApprovalNotFound, InvalidInput, RunNotFound, UnknownAgent
from ..domain.errors import TamperDetected
from .recovery import RecoveryReport
from .replay import ReplayReport
from .routing import Rule, agent_denial, route
from .streaming import Health, RunResult, StreamEvent
from .submit_group import SubmitGroup
from .worker import Worker


class Harness(Worker):
    """Runs agents against a journal, as one worker."""

    def __init__(
        self,
        journal: Journal,
        workspace: Workspace,
        *,
        worker_id: str | None = None,
        adapters: dict[str, AgentAdapter] | None = None,
        owns_journal: bool = False,
        store_outage_seconds: float | None = None,
        agents: Collection[str] | None = None,
    ) -> None:
        if adapters is None:  # the composition root builds what a workspace names
            from ..bootstrap import build_adapters

            adapters = build_adapters(workspace)
        super().__init__(journal, workspace, adapters, agents=agents, worker_id=worker_id,
                         store_outage_seconds=store_outage_seconds)
        self._owns_journal = owns_journal
        self._rules = [Rule(re.compile(r.match), r.agent) for r in workspace.routing.rules]
        self._submits = SubmitGroup(journal, self._submitted)

    @property
    def listener_errors(self) -> int:
        """Errors raised by ``subscribe()`` listeners: logged, counted, never fatal."""
        return self.listeners.errors

    @classmethod
    def from_workspace(
        cls, path: str | Path | Workspace = "runjournal.yaml", *, store: str | None = None, clock: Clock | None = None,
        worker_id: str | None = None, store_outage_seconds: float | None = None,
        agents: Collection[str] | None = None,
    ) -> Harness:
        """A harness for a workspace file (or one already read), on its store (or ``store``, or $RUNJOURNAL_URL).

        The same as ``runjournal.bootstrap.open_harness``, where the wiring lives.
        """
        from ..bootstrap import open_harness

        return open_harness(path, store=store, clock=clock, worker_id=worker_id,
                            store_outage_seconds=store_outage_seconds, agents=agents)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> RecoveryReport:
        """Recover, then keep working in the background until ``close()``."""
        report = await self.recover()
        self._serving = True
        self._ensure_loop()
        return report

    async def close(self) -> None:
        """Stop the worker loop; runs it still holds are found again through their leases."""
        self._serving = False
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            # A loop that died of an error has told its waiters and logged it already.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
            self._loop_task = None
        for task, _ in list(self._active.values()):
            task.cancel()
        if self._active:
            await asyncio.gather(*(t for t, _ in self._active.values()), return_exceptions=True)
        self._active.clear()
        await self.heartbeats.close()
        self._completing.clear()  # unsaved Completed: their leases run out and the runs are found again
        if self._owns_journal:
            self.journal.close()

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- listeners ------------------------------------------------------------------

    def subscribe(self, callback: Callable[[StreamEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every stream event of this harness; returns an unsubscribe.

        A callback that raises is logged and counted (``health().listener_errors``);
        it never changes a run, stops the worker or keeps other listeners from the event.
        """
        return self.listeners.add(callback)

    # -- submitting -------------------------------------------------------------------

    def submit(
        self, input: Any, *, agent_id: str | None = None, thread_id: str | None = None,  # noqa: A002
        priority: int = 0, actor: str | None = None, idempotency_key: str | None = None,
        context: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
        attachments: list[Any] | None = None,
    ) -> RunSnapshot:
        """Route, check policy and queue a run (a denied run is recorded as failed at once).

        ``agent_id=None`` or ``"auto"`` lets routing choose; the run records what was asked.
        ``context``, ``inputs`` and ``attachments`` are kept beside the input and reach the
        agent's ``AgentRequest``.
        """
        request = self._routed(input, agent_id=agent_id, thread_id=thread_id, priority=priority, actor=actor,
                               context=context, inputs=inputs, attachments=attachments)
        run = self.journal.submit(**request, idempotency_key=idempotency_key)
        self._submitted([run])
        return run

    async def asubmit(self, input: Any, *, idempotency_key: str | None = None, **options: Any) -> RunSnapshot:  # noqa: A002
        """``submit``, saved in ONE transaction with every other ``asubmit`` of this event-loop turn.

        It returns once that transaction has committed. A request with an idempotency
        key reads before it writes, so it is saved on its own (as ``submit`` does).
        """
        if idempotency_key is not None:
            return self.submit(input, idempotency_key=idempotency_key, **options)
        return await self._submits.submit(self._routed(input, **options))

    def submit_many(self, inputs: list[Any], **options: Any) -> list[RunSnapshot]:
        """Route and queue many runs in one save (the same options for all; no idempotency keys)."""
        runs = self.journal.submit_many([self._routed(i, **options) for i in inputs])
        self._submitted(runs)
        return runs

    def _routed(
        self, input: Any, *, agent_id: str | None = None, thread_id: str | None = None,  # noqa: A002
        priority: int = 0, actor: str | None = None, context: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None, attachments: list[Any] | None = None,
    ) -> dict[str, Any]:
        requested = agent_id or AUTO_AGENT
        agent = route(
            input,
            agents=list(self.adapters),
            explicit=None if requested == AUTO_AGENT else requested,
            thread_agent=lambda: self._thread_agent(thread_id),
            rules=self._rules,
            default=self.workspace.routing.default_agent,
        )
        parts = {"context": context, "inputs": inputs, "attachments": attachments}
        invocation = {k: v for k, v in parts.items() if v is not None} or None
        return {"agent_id": agent, "requested_agent_id": requested, "execution_mode": adapter_kind(self.adapters[agent]),
                "input": input, "invocation": invocation, "thread_id": thread_id, "priority": priority,
                "actor": actor, "refuse": agent_denial(agent, self.workspace.policy.deny_agents)}

    def _submitted(self, runs: list[RunSnapshot]) -> None:
        for run in runs:
            self.listeners.emit("state", run.run_id, {"state": run.state, "agent_id": run.agent_id})
        self._emit_positions()
        self._wake.set()

    def _thread_agent(self, thread_id: str | None) -> str | None:
        if thread_id is None:
            return None
        try:
            return self.journal.thread(thread_id).agent_id
        except RunNotFound:
            return None

    async def run(self, input: Any, **options: Any) -> RunResult:  # noqa: A002
        """Submit a run and wait until it rests (terminal, or waiting for approval)."""
        run = await self.asubmit(input, **options)
        return await self.wait(run.run_id)

    async def stream(self, input: Any, **options: Any) -> AsyncIterator[StreamEvent]:  # noqa: A002
        """Submit a run and yield its stream events until it rests."""
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        mine: set[str] = set()
        early: list[StreamEvent] = []

        def listen(event: StreamEvent) -> None:
            (queue.put_nowait if event.run_id in mine else early.append)(event)

        unsubscribe = self.subscribe(listen)
        try:
            run = await self.asubmit(input, **options)
            mine.add(run.run_id)
            for event in early:
                if event.run_id in mine:
                    yield event
            async for event in _events_until(queue, asyncio.ensure_future(self.wait(run.run_id))):
                yield event
        finally:
            unsubscribe()

    async def resume(
        self, *, approval_id: str | None = None, thread_id: str | None = None, decision: str = "approve",
        edits: Any = None, actor: str | None = None,
    ) -> RunResult:
        """Record a decision on a pending approval (by id, or the thread's) and wait for the run to rest."""
        if approval_id is None:
            if thread_id is None:
                raise InvalidInput("approval_id", "resume requires either thread_id or approval_id")
            pending = [a for a in self.journal.pending_approvals() if a.thread_id == thread_id]
            if not pending:
                raise ApprovalNotFound(thread_id=thread_id)
            approval_id = pending[-1].approval_id
        with contextlib.suppress(RunNotFound):  # an unknown approval is resolve_approval's to report
            agent_id = self.journal.get_run(approval_id.rsplit(".a", 1)[0]).agent_id
            if agent_id not in self.agents:  # this worker could never resume it: nothing is recorded
                raise UnknownAgent(agent_id, self.agents)
        run = self.journal.resolve_approval(approval_id, decision=decision, edits=edits, actor=actor)
        self.listeners.emit("state", run.run_id, {"state": run.state})
        self._wake.set()
        return await self.wait(run.run_id)

    async def cancel(self, run_id: str, *, reason: str | None = None, actor: str | None = None) -> RunSnapshot:
        """Cancel a run; one this harness is running stops at its next chunk."""
        run = self.journal.cancel(run_id, reason=reason, actor=actor)
        if run_id in self._active:
            self._active[run_id][1].cancel_requested.set()
        if run.is_terminal:
            self._settle(run_id, run.state)
        return run

    async def replay(self, run_id: str) -> ReplayReport:
        """Run ``run_id``'s agent again against its record: every call served from the log, none made, nothing
        appended; identical, or the first divergence (see replay.py)."""
        from .replay import replay_run

        agent_id = self.journal.get_run(run_id).agent_id
        if agent_id not in self.adapters:
            raise UnknownAgent(agent_id, list(self.adapters))
        return await replay_run(self.journal, run_id, self.adapters[agent_id],
                                timeout=self.settings.invoke_timeout_seconds)

    # -- waiting and working -------------------------------------------------------------

    async def wait(self, run_id: str) -> RunResult:
        """Wait until a run rests (this harness's loop works meanwhile)."""
        run = self.journal.get_run(run_id)
        # Woken when an execution of the run ends; by then a decision or a newer claim may have
        # moved the run on (approved at once, and resumed): wait again until it does rest.
        while run.state not in RESTING_STATES:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(run_id, []).append(future)
            self._ensure_loop()
            await future
            run = self.journal.get_run(run_id)
        return RunResult(
            run_id=run.run_id, thread_id=run.thread_id, agent_id=run.agent_id, state=run.state,
            output=run.output, error=run.error,
            approval_id=(run.pending_approval or {}).get("approval_id"),
        )

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Slots in use, queue depth, waiting approvals, adapter outcomes, oldest queued age, listener errors,
        quarantined runs and runs the views refused."""
        quarantined = self.journal.quarantined_ids()
        queued = self.journal.queue()  # queued and resuming runs: every run waiting for a slot
        oldest = None
        if queued:
            first = min(queued, key=lambda r: r.position)
            try:
                created = self.journal.get_run(first.run_id).created_at
                oldest = max(0.0, (self.journal.clock.now() - created).total_seconds())
            except TamperDetected as e:  # found here first: quarantined like anywhere else
                self._quarantine(e)
                quarantined.add(e.run_id)
        return Health(
            quarantined=len(quarantined),
            refused_by_views=len(self.journal.refused_runs()),
            worker_id=self.worker_id,
            active_slots=self._slots_held(),
            max_concurrent_runs=self.workspace.concurrency.max_concurrent_runs,
            queued=len(queued),
            waiting_for_approval=len(self.journal.pending_approvals()),
            adapter_successes=self.successes,
            adapter_failures=self.failures,
            oldest_queued_age_seconds=oldest,
            listener_errors=self.listener_errors,
            journal_listener_errors=getattr(self.journal, "listener_errors", 0),
        )


async def _events_until(
    queue: asyncio.Queue[StreamEvent], waiting: asyncio.Future[RunResult]
) -> AsyncIterator[StreamEvent]:
    """A run's queued events until ``waiting`` resolves; its error, if it fails, is raised after them."""
    getter: asyncio.Future[StreamEvent] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            watched: set[asyncio.Future[Any]] = {getter, waiting}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            while not queue.empty():
                yield queue.get_nowait()
            waiting.result()  # a worker that died raises here instead of ending the stream as if done
            return
    finally:
        if getter is not None:
            getter.cancel()
        waiting.cancel()  # a consumer that stopped early no longer waits for the run
