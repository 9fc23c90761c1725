"""The asyncio runtime: slots, priorities, leases, approvals, cancellation, streaming.

One worker loop per harness claims the best claimable runs into at most
``max_concurrent_runs`` slots, runs each as an ``Execution`` and frees the slot
when the run comes to rest. ``run`` / ``resume`` / ``stream`` submit or decide
and then wait for the loop; the loop keeps going while anyone waits (or for
good after ``start()``). All state lives in the journal; the loop's memory is
only which slots are busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from .adapters.agents import AgentAdapter, AgentRequest, build_adapter
from .adapters.clock import Clock
from .domain import InvalidInput, RunNotFound
from .execution import COMPLETING, Execution, ExecutionSettings
from .journal import Journal
from .models import Claim, RunSnapshot
from .recovery import RecoveryReport, recover
from .routing import Rule, agent_denial, route
from .streaming import Health, RunResult, StreamEvent
from .workspace import Workspace, load_workspace

RESTING = frozenset({"completed", "failed", "cancelled", "waiting_for_approval"})
_POLL_SECONDS = 0.05


def build_adapters(workspace: Workspace) -> dict[str, AgentAdapter]:
    """One adapter per agent of the workspace (python agents may live beside the workspace file)."""
    if workspace.path is not None:
        folder = str(Path(workspace.path).resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)
    adapters: dict[str, AgentAdapter] = {}
    for name, agent in workspace.agents.items():
        if agent.adapter == "scripted":
            steps = [s.model_dump(exclude_none=True, exclude_defaults=True) for s in agent.script or []]
            options: dict[str, Any] = {"script": steps}
        else:
            options = {"target": agent.callable}
        if agent.supports_replay is not None:
            options["supports_replay"] = agent.supports_replay
        adapters[name] = build_adapter(agent.adapter, **options)
    return adapters


class Harness:
    """Runs agents against a journal, as one worker."""

    def __init__(
        self,
        journal: Journal,
        workspace: Workspace,
        *,
        worker_id: str | None = None,
        adapters: dict[str, AgentAdapter] | None = None,
        owns_journal: bool = False,
    ) -> None:
        self.journal = journal
        self.workspace = workspace
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.adapters = adapters if adapters is not None else build_adapters(workspace)
        self._owns_journal = owns_journal
        self._rules = [Rule(re.compile(r.match), r.agent) for r in workspace.routing.rules]
        c, s = workspace.concurrency, workspace.streaming
        self.settings = ExecutionSettings(
            lease_seconds=c.lease_seconds,
            heartbeat_seconds=c.heartbeat_seconds,
            invoke_timeout_seconds=s.invoke_timeout_seconds,
            deny_tools=tuple(workspace.policy.deny_tools),
        )
        self._active: dict[str, tuple[asyncio.Task[str], Execution]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._listeners: list[Callable[[StreamEvent], None]] = []
        self._positions: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._serving = False
        self._wake = asyncio.Event()
        self._last_expiry = 0.0
        self.successes = 0
        self.failures = 0

    @classmethod
    def from_workspace(
        cls, path: str | Path = "runjournal.yaml", *, store: str | None = None, clock: Clock | None = None,
        worker_id: str | None = None,
    ) -> Harness:
        """A harness for a workspace file, on its store (or ``store``, or $RUNJOURNAL_URL)."""
        workspace = load_workspace(path)
        url = store or os.environ.get("RUNJOURNAL_URL") or workspace.storage.url
        return cls(Journal.open(url, clock=clock), workspace, worker_id=worker_id, owns_journal=True)

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
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for task, _ in list(self._active.values()):
            task.cancel()
        if self._active:
            await asyncio.gather(*(t for t, _ in self._active.values()), return_exceptions=True)
        self._active.clear()
        if self._owns_journal:
            self.journal.close()

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def recover(self) -> RecoveryReport:
        """Startup recovery (see ``recovery.py``); safe to run any number of times, anywhere."""
        return recover(self.journal, self.workspace.recovery, can_replay=self._can_replay)

    def _can_replay(self, agent_id: str) -> bool:
        adapter = self.adapters.get(agent_id)
        return bool(adapter is not None and adapter.supports_replay)

    # -- listeners ------------------------------------------------------------------

    def subscribe(self, callback: Callable[[StreamEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every stream event of this harness; returns an unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _emit(self, event: StreamEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _emit_positions(self) -> None:
        """Tell listeners the queue positions that changed (a run added ahead shifts the others)."""
        if not self._listeners:
            return
        rows = [r for r in self.journal.queue() if r.state == "queued"]
        positions = {r.run_id: i for i, r in enumerate(rows, start=1)}
        for run_id, position in positions.items():
            if self._positions.get(run_id) != position:
                data = {"position": position, "active_slots": len(self._active),
                        "max_concurrent_runs": self.workspace.concurrency.max_concurrent_runs}
                self._emit(StreamEvent(type="queue.position", run_id=run_id, data=data))
        self._positions = positions

    # -- submitting -------------------------------------------------------------------

    def submit(
        self, input: Any, *, agent_id: str | None = None, thread_id: str | None = None,  # noqa: A002
        priority: int = 0, actor: str | None = None, idempotency_key: str | None = None,
    ) -> RunSnapshot:
        """Route, check policy and queue a run (a denied run is recorded as failed at once)."""
        request = self._routed(input, agent_id=agent_id, thread_id=thread_id, priority=priority, actor=actor)
        run = self.journal.submit(**request, idempotency_key=idempotency_key)
        self._submitted([run])
        return run

    def submit_many(self, inputs: list[Any], **options: Any) -> list[RunSnapshot]:
        """Route and queue many runs in one save (the same options for all; no idempotency keys)."""
        runs = self.journal.submit_many([self._routed(i, **options) for i in inputs])
        self._submitted(runs)
        return runs

    def _routed(
        self, input: Any, *, agent_id: str | None = None, thread_id: str | None = None,  # noqa: A002
        priority: int = 0, actor: str | None = None,
    ) -> dict[str, Any]:
        agent = route(
            input,
            agents=list(self.adapters),
            explicit=agent_id,
            thread_agent=lambda: self._thread_agent(thread_id),
            rules=self._rules,
            default=self.workspace.routing.default_agent,
        )
        return {"agent_id": agent, "input": input, "thread_id": thread_id, "priority": priority, "actor": actor,
                "refuse": agent_denial(agent, self.workspace.policy.deny_agents)}

    def _submitted(self, runs: list[RunSnapshot]) -> None:
        for run in runs:
            self._emit(StreamEvent(type="state", run_id=run.run_id, data={"state": run.state, "agent_id": run.agent_id}))
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
        run = self.submit(input, **options)
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
            run = self.submit(input, **options)
            mine.add(run.run_id)
            for event in early:
                if event.run_id in mine:
                    yield event
            waiting = asyncio.ensure_future(self.wait(run.run_id))
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                return
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
                raise RunNotFound(f"(no pending approval on thread {thread_id})")
            approval_id = pending[-1].approval_id
        run = self.journal.resolve_approval(approval_id, decision=decision, edits=edits, actor=actor)
        self._emit(StreamEvent(type="state", run_id=run.run_id, data={"state": run.state}))
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

    # -- waiting and working -------------------------------------------------------------

    async def wait(self, run_id: str) -> RunResult:
        """Wait until a run rests (this harness's loop works meanwhile)."""
        run = self.journal.get_run(run_id)
        if run.state not in RESTING:
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

    def _settle(self, run_id: str, state: str) -> None:
        self._emit(StreamEvent(type="state", run_id=run_id, data={"state": state}))
        for future in self._waiters.pop(run_id, []):
            if not future.done():
                future.set_result(None)

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._loop())

    async def work(self, *, until_idle: bool = True) -> None:
        """Work as this harness's worker: until nothing is left to do, or until cancelled."""
        self._serving = self._serving or not until_idle
        self._ensure_loop()
        assert self._loop_task is not None
        await asyncio.shield(self._loop_task)

    async def _loop(self) -> None:
        while True:
            self._expire_leases()
            self._fill_slots()
            if not self._active:
                self._check_waiters()
                if not self._serving and not self._waiters:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _POLL_SECONDS)
                continue
            tasks = {task: run_id for run_id, (task, _) in self._active.items()}
            done, _ = await asyncio.wait(tasks, timeout=_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            completing = []
            for task in done:
                run_id = tasks[task]
                execution = self._active.pop(run_id)[1]
                state = self._outcome(run_id, task)
                if state == COMPLETING:
                    completing.append(execution)
                else:
                    self._rest(run_id, state)
            if completing:
                self._complete(completing)

    def _complete(self, executions: list[Execution]) -> None:
        """Save the Completed of every run that finished at once, in one transaction."""
        results = self.journal.complete_many([(e.claim, e.output) for e in executions])
        for execution, result in zip(executions, results, strict=True):
            state = "completed"
            if isinstance(result, Exception):
                try:
                    state = execution.completion_refused(result)
                except Exception as e:  # noqa: BLE001 - a bug must not stop the worker loop
                    state = self._harness_error(execution.claim.run_id, e)
            self._rest(execution.claim.run_id, state)

    def _expire_leases(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_expiry >= min(self.settings.heartbeat_seconds, 1.0):
            self._last_expiry = now
            # One indexed query for leases already expired; no scan of every lease first.
            grace = timedelta(seconds=self.workspace.recovery.stale_running_after_seconds)
            self.journal.expire_leases(can_replay=self._can_replay, running_grace=grace)

    def _fill_slots(self) -> None:
        limit = self.workspace.concurrency.max_concurrent_runs
        while (free := limit - len(self._active)) > 0:
            # Every free slot is claimed (and started) in one save: a group commit.
            claims = self.journal.claim_many(
                worker_id=self.worker_id, count=free, lease_seconds=self.settings.lease_seconds, start=True
            )
            if not claims:
                return
            for claim in claims:
                self._launch(claim)
        if self._listeners and self._positions:
            self._emit_positions()

    def _launch(self, claim: Claim) -> None:
        adapter = self.adapters.get(claim.agent_id)
        if adapter is None:  # the workspace changed since the run was queued
            self.journal.fail(claim, error=f"unknown agent {claim.agent_id!r} in this worker's workspace")
            self._settle(claim.run_id, "failed")
            return
        execution = Execution(self.journal, claim, adapter, self._request(claim, adapter), self.settings, self._emit)
        self._emit(StreamEvent(type="state", run_id=claim.run_id, data={"state": "running", "worker_id": self.worker_id}))
        self._active[claim.run_id] = (asyncio.create_task(execution.run()), execution)

    def _request(self, claim: Claim, adapter: AgentAdapter) -> AgentRequest:
        messages: tuple[dict[str, str], ...] = ()
        if getattr(adapter, "uses_history", True):
            messages = tuple(
                {"role": m.role, "content": m.content}
                for m in self.journal.messages(claim.thread_id)
                if m.run_id != claim.run_id
            )
        resume = claim.resume or {}
        return AgentRequest(
            run_id=claim.run_id, thread_id=claim.thread_id, agent_id=claim.agent_id, input=claim.input,
            messages=messages, resume=resume.get("decision"), resume_kind=resume.get("resume_kind"),
        )

    def _outcome(self, run_id: str, task: asyncio.Task[str]) -> str:
        try:
            return task.result()
        except Exception as e:  # noqa: BLE001 - a bug in the harness must not kill the worker loop
            return self._harness_error(run_id, e)

    def _harness_error(self, run_id: str, error: Exception) -> str:
        with contextlib.suppress(Exception):
            self.journal.fail_run(run_id, error=f"harness error: {type(error).__name__}: {error}",
                                  actor=f"worker:{self.worker_id}")
        return "failed"

    def _rest(self, run_id: str, state: str) -> None:
        """Count the outcome and wake whoever waits for the run."""
        if state == "failed":
            self.failures += 1
        elif state in ("completed", "waiting_for_approval"):
            self.successes += 1
        if state == "lease_lost":
            return  # another worker owns it now; its waiters are woken by the check below
        self._settle(run_id, state)

    def _check_waiters(self) -> None:
        for run_id in list(self._waiters):
            try:
                state = self.journal.get_run(run_id).state
            except RunNotFound:
                state = "failed"
            if state in RESTING:
                self._settle(run_id, state)

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Slots in use, queue depth, waiting approvals, adapter outcomes, oldest queued age."""
        queued = [r for r in self.journal.queue() if r.state == "queued"]
        oldest = None
        if queued:
            first = min(queued, key=lambda r: r.position)
            created = self.journal.get_run(first.run_id).created_at
            oldest = max(0.0, (self.journal.clock.now() - created).total_seconds())
        return Health(
            worker_id=self.worker_id,
            active_slots=len(self._active),
            max_concurrent_runs=self.workspace.concurrency.max_concurrent_runs,
            queued=len(queued),
            waiting_for_approval=len(self.journal.pending_approvals()),
            adapter_successes=self.successes,
            adapter_failures=self.failures,
            oldest_queued_age_seconds=oldest,
        )
