"""The asyncio runtime: slots, priorities, leases, approvals, cancellation, streaming.

One worker loop per harness claims the best claimable runs into at most
``max_concurrent_runs`` slots, runs each as an ``Execution`` and frees the slot
when the run comes to rest. ``run`` / ``resume`` / ``stream`` submit or decide
and then wait for the loop; the loop keeps going while anyone waits (or for
good after ``start()``). All state lives in the journal; the loop's memory is
only which slots are busy.

Failures stay where they belong: a listener that raises is logged and counted,
never more; while the store is unavailable the loop backs off and goes on (up
to ``store_outage_seconds``); a background task that dies fails whoever waits
on it with its error instead of leaving them waiting for good.

Over 400 lines for now: the worker loop (claiming into slots, collecting outcomes, the
grouped Completed save) is to become its own module under ``runjournal/runtime/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Collection
from datetime import timedelta
from pathlib import Path
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from ..adapters.agents import AgentAdapter, AgentRequest, adapter_kind
from ..adapters.clock import Clock
from ..app.journal import Journal
from ..app.logs import logger
from ..app.models import Claim, RunSnapshot
from ..config.workspace import Workspace
from ..domain import (
    AUTO_AGENT,
    RESTING_STATES,
    ApprovalNotFound,
    InvalidInput,
    ResumeFailedError,
    RunNotFound,
    RunState,
    StoreUnavailable,
    UnknownAgent,
)
from ..domain.errors import TamperDetected
from .execution import Execution, ExecutionSettings
from .outcome import Outcome
from .recovery import RecoveryReport, recover
from .routing import Rule, agent_denial, route
from .streaming import Health, RunResult, StreamEvent

_POLL_SECONDS = 0.05
_UNLIMITED_BATCH = 64  # with max_concurrent_runs: 0, claims per save until the queue is empty
_BACKOFF_MAX_SECONDS = 5.0

_log = logger("runjournal.harness")


def _listener_name(listener: Callable[..., Any]) -> str:
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    return f"{getattr(listener, '__module__', None) or type(listener).__module__}.{name}"


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
        store_outage_seconds: float | None = None,
        agents: Collection[str] | None = None,
    ) -> None:
        self.journal = journal
        self.workspace = workspace
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        if adapters is None:  # the composition root builds what a workspace names
            from ..bootstrap import build_adapters

            adapters = build_adapters(workspace)
        self.adapters = adapters
        self.agents = served_agents(agents, self.adapters)
        self._owns_journal = owns_journal
        self._rules = [Rule(re.compile(r.match), r.agent) for r in workspace.routing.rules]
        self.settings = ExecutionSettings.of(workspace)
        # How long the worker keeps backing off while the store is unavailable before it
        # stops with the error. Read from the workspace once it has the setting.
        if store_outage_seconds is None:
            store_outage_seconds = workspace.concurrency.store_outage_seconds
        if store_outage_seconds < 0:
            raise InvalidInput("store_outage_seconds", f"must be >= 0 (got {store_outage_seconds:g})")
        self.store_outage_seconds = float(store_outage_seconds)
        self._active: dict[str, tuple[asyncio.Task[Outcome], Execution]] = {}
        self._completing: list[Execution] = []  # finished runs whose Completed is not saved yet
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._listeners: list[Callable[[StreamEvent], None]] = []
        self._positions: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._serving = False
        self._wake = asyncio.Event()
        self._last_expiry = 0.0
        self.successes = 0
        self.failures = 0
        self.listener_errors = 0

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
        self._completing.clear()  # unsaved Completed: their leases run out and the runs are found again
        if self._owns_journal:
            self.journal.close()

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def recover(self) -> RecoveryReport:
        """Startup recovery (see ``recovery.py``); safe to run any number of times, anywhere.

        A run whose events fail their check on load is quarantined and recovery runs
        again without it (it is idempotent, and recovery intents leave quarantined runs out).
        """
        found: set[str] = set()
        while True:
            try:
                return recover(self.journal, self.workspace.recovery, can_replay=self._can_replay)
            except TamperDetected as e:
                if e.run_id in found:  # quarantined already, yet met again: do not loop
                    raise
                found.add(e.run_id)
                self._quarantine(e)

    def _can_replay(self, agent_id: str) -> bool:
        adapter = self.adapters.get(agent_id)
        return bool(adapter is not None and adapter.supports_replay)

    # -- listeners ------------------------------------------------------------------

    def subscribe(self, callback: Callable[[StreamEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every stream event of this harness; returns an unsubscribe.

        A callback that raises is logged and counted (``health().listener_errors``);
        it never changes a run, stops the worker or keeps other listeners from the event.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _emit(self, event: StreamEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as e:  # noqa: BLE001 - the log is the truth; a listener only watches it
                self.listener_errors += 1
                _log.error("listener failed", listener=_listener_name(listener), stream_event=event.type,
                           run_id=event.run_id, worker_id=self.worker_id, error=f"{type(e).__name__}: {e}",
                           exc_info=e)

    def _emit_positions(self) -> None:
        """Tell listeners the queue positions that changed (a run added ahead shifts the others)."""
        if not self._listeners:
            return
        # Every run waiting for a slot, in claim order: a resuming run waits in the same line as
        # queued ones, so a queued run is never told "position 1" while a resuming one goes first.
        rows = self.journal.queue()
        positions = {r.run_id: i for i, r in enumerate(rows, start=1)}
        for row in rows:
            position = positions[row.run_id]
            if self._positions.get(row.run_id) != position:
                data = {"position": position, "priority": row.priority, "state": row.state,
                        "active_slots": self._slots_held(),
                        "max_concurrent_runs": self.workspace.concurrency.max_concurrent_runs}
                self._emit(StreamEvent(type="queue.position", run_id=row.run_id, data=data))
        self._positions = positions

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
        if run.state not in RESTING_STATES:
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
        self._wake_waiters(run_id)

    def _wake_waiters(self, run_id: str, error: BaseException | None = None) -> None:
        """Wake whoever waits for a run: to read where it rests, or with the error that stopped it."""
        for future in self._waiters.pop(run_id, []):
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._loop())
            self._loop_task.add_done_callback(_retrieve)

    async def work(self, *, until_idle: bool = True) -> None:
        """Work as this harness's worker: until nothing is left to do, until cancelled, or until it dies.

        It dies of an error that is not a store outage, or of an outage that lasts past
        ``store_outage_seconds``; that error is raised here and to everyone waiting.
        """
        self._serving = self._serving or not until_idle
        self._ensure_loop()
        assert self._loop_task is not None
        await asyncio.shield(self._loop_task)

    async def _loop(self) -> None:
        """The worker loop; if it dies, everyone waiting on it gets its error."""
        try:
            await self._cycle_until_idle()
        except Exception as e:
            self._loop_died(e)
            raise

    async def _cycle_until_idle(self) -> None:
        while await self._cycle_through_outage():
            pass

    async def _cycle_through_outage(self) -> bool:
        """One cycle, tried again with jittered exponential backoff while the store is unavailable.

        Each cycle gets its own budget: one that gets through has ended the outage.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_random_exponential(multiplier=_POLL_SECONDS, max=_BACKOFF_MAX_SECONDS),
            stop=stop_after_delay(self.store_outage_seconds),
            before_sleep=self._backing_off,
            reraise=True,
        )
        started = asyncio.get_running_loop().time()
        try:
            return bool(await retrying(self._cycle))
        except StoreUnavailable as e:  # only once the outage outlasted store_outage_seconds
            lasted = asyncio.get_running_loop().time() - started
            raise StoreUnavailable(
                e.store, e.cause,
                detail=f"{e.detail or e.cause}; still unavailable after {lasted:.1f} s "
                f"(store_outage_seconds={self.store_outage_seconds:g}), worker {self.worker_id} stopped",
            ) from e

    def _backing_off(self, attempt: RetryCallState) -> None:
        error = attempt.outcome.exception() if attempt.outcome else None
        sleep = attempt.next_action.sleep if attempt.next_action else None
        _log.warning("store unavailable, backing off", worker_id=self.worker_id, attempt=attempt.attempt_number,
                     store=getattr(error, "store", None), cause=getattr(error, "cause", None),
                     retry_in_seconds=None if sleep is None else round(sleep, 3))

    async def _cycle(self) -> bool:
        """One turn of the loop: expire, claim, collect, complete; False when idle and unwanted."""
        self._expire_leases()
        self._fill_slots()
        if self._active:
            await self._collect()
        elif not self._completing:
            self._check_waiters()
            if not self._serving and not self._waiters:
                return False
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_SECONDS)
        self._save_completions()
        return True

    async def _collect(self) -> None:
        """Take in the runs that came to rest; the finished ones wait for their grouped Completed."""
        tasks = {task: run_id for run_id, (task, _) in self._active.items()}
        done, _ = await asyncio.wait(tasks, timeout=_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            run_id = tasks[task]
            execution = self._active.pop(run_id)[1]
            outcome = self._outcome(execution.claim, task)
            if outcome is Outcome.COMPLETING:
                self._completing.append(execution)
            elif outcome is Outcome.RESUME_FAILED:
                self._resume_failed(execution)
            else:
                self._rest(run_id, outcome)

    def _loop_died(self, error: Exception) -> None:
        """Fail every waiter with the loop's error and stop the runs it held (their leases find them again)."""
        _log.error("worker loop stopped", worker_id=self.worker_id, error=f"{type(error).__name__}: {error}",
                   waiting_runs=len(self._waiters), active_runs=len(self._active))
        for run_id in list(self._waiters):
            self._wake_waiters(run_id, error)
        for task, _ in self._active.values():
            task.cancel()
        self._active.clear()
        self._completing.clear()

    def _save_completions(self) -> None:
        """Save the Completed of every run that finished, in one transaction (a group commit).

        While the store is unavailable the runs stay here, holding their slots, and
        the save is tried again on the next turn of the loop.
        """
        if not self._completing:
            return
        executions = self._completing
        results = self.journal.complete_many([(e.claim, e.output) for e in executions])
        self._completing = []
        unavailable: StoreUnavailable | None = None
        for execution, result in zip(executions, results, strict=True):
            if isinstance(result, StoreUnavailable):
                self._completing.append(execution)
                unavailable = result
            else:
                self._rest(execution.claim.run_id, self._completed(execution, result))
        if unavailable is not None:
            raise unavailable

    def _completed(self, execution: Execution, result: object) -> Outcome | None:
        """How a finished run ended, given what its Completed save returned."""
        if not isinstance(result, Exception):
            return Outcome.COMPLETED
        try:
            return execution.completion_refused(result)
        except Exception as e:  # noqa: BLE001 - a bug must not stop the worker loop
            return self._harness_error(execution.claim, e)

    def _expire_leases(self) -> None:
        if not self.workspace.recovery.enabled:  # the switch covers the loop's pass too
            return
        now = asyncio.get_running_loop().time()
        if now - self._last_expiry >= min(self.settings.heartbeat_seconds or 1.0, 1.0):
            self._last_expiry = now
            # One indexed query for leases already expired; no scan of every lease first.
            grace = timedelta(seconds=self.workspace.recovery.stale_running_after_seconds)
            self.journal.expire_leases(can_replay=self._can_replay, running_grace=grace)

    def _fill_slots(self) -> None:
        limit = self.workspace.concurrency.max_concurrent_runs
        while (free := limit - self._slots_held() if limit else _UNLIMITED_BATCH) > 0:
            # Every free slot is claimed (and started) in one save: a group commit.
            claims = self.journal.claim_many(
                worker_id=self.worker_id, count=free, lease_seconds=self.settings.lease_seconds, start=True,
                agents=self.agents,  # a run of another agent is left for a worker that has it
            )
            if not claims:
                return
            self._launch_all(claims)
        if self._listeners and self._positions:
            self._emit_positions()

    def _slots_held(self) -> int:
        # A finished run whose Completed is not saved yet still holds its slot.
        return len(self._active) + len(self._completing)

    def _launch_all(self, claims: list[Claim]) -> None:
        """Launch every claim; one the store kept from launching is left to its lease, as if its worker died."""
        unavailable: StoreUnavailable | None = None
        for claim in claims:
            try:
                self._launch(claim)
            except StoreUnavailable as e:
                _log.warning("run not launched, left to its lease", run_id=claim.run_id, worker_id=self.worker_id,
                             store=e.store, cause=e.cause)
                unavailable = e
        if unavailable is not None:
            raise unavailable

    def _launch(self, claim: Claim) -> None:
        adapter = self.adapters[claim.agent_id]  # claims are of this worker's agents only
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
        invocation = claim.invocation or {}
        return AgentRequest(
            run_id=claim.run_id, thread_id=claim.thread_id, agent_id=claim.agent_id, input=claim.input,
            messages=messages, resume=resume.get("decision"), resume_kind=resume.get("resume_kind"),
            context=invocation.get("context"), inputs=invocation.get("inputs"),
            attachments=tuple(invocation.get("attachments") or ()),
        )

    def _outcome(self, claim: Claim, task: asyncio.Task[Outcome]) -> Outcome | None:
        try:
            return task.result()
        except Exception as e:  # noqa: BLE001 - a bug in the harness must not kill the worker loop
            return self._harness_error(claim, e)

    def _harness_error(self, claim: Claim, error: Exception) -> Outcome | None:
        """A run's task died of ``error``: record it as the run's failure, or else fail its waiters with it.

        A store fault is not the run's failure (a save of the run was refused): it is never
        recorded as one; the run is left to its lease, as if its worker died, and run again.
        The failure is fenced by the claim: a worker whose lease ran out fails nothing.
        """
        run_id = claim.run_id
        if isinstance(error, StoreUnavailable):
            self._leave_to_lease(run_id, error, not_recorded="a store fault is not the run's failure")
            return None
        if isinstance(error, TamperDetected):  # nothing more is appended to, or done for, such a run
            self._quarantine(error)
            self._wake_waiters(run_id, error)
            return None
        try:
            self.journal.fail(claim, error=f"harness error: {type(error).__name__}: {error}")
        except Exception as e:  # noqa: BLE001 - whatever stops the Failed, the waiters must hear of the error
            self._leave_to_lease(run_id, error, not_recorded=f"{type(e).__name__}: {e}")
            return None
        return Outcome.FAILED

    def _leave_to_lease(self, run_id: str, error: Exception, *, not_recorded: str) -> None:
        """Give up on a run without recording why: its lease runs out, and its waiters get ``error``."""
        _log.error("run task died; run left to its lease", run_id=run_id, worker_id=self.worker_id,
                   error=f"{type(error).__name__}: {error}", not_recorded=not_recorded)
        self.failures += 1
        self._wake_waiters(run_id, error)

    def _rest(self, run_id: str, outcome: Outcome | None) -> None:
        """Count the outcome and wake whoever waits for the run (None: its waiters were told already)."""
        if outcome is None:
            return
        if outcome is Outcome.FAILED:
            self.failures += 1
        elif outcome.succeeded:
            self.successes += 1
        if outcome is Outcome.LEASE_LOST:
            return  # another worker owns it now; its waiters are woken by the check below
        self._settle(run_id, outcome.value)  # every other outcome is the state the run rests in

    def _resume_failed(self, execution: Execution) -> None:
        """The agent failed a resume that will be retried: its waiters hear the error, a worker retries it."""
        self.failures += 1
        run = self.journal.get_run(execution.claim.run_id)
        error = ResumeFailedError(run.run_id, run.error or str(execution.error), attempt=run.recovery_attempts,
                                  retries=self.settings.resume_retries)
        self._emit(StreamEvent(type="state", run_id=run.run_id, data={"state": run.state, "error": run.error}))
        self._wake_waiters(run.run_id, error)
        self._wake.set()

    def _check_waiters(self) -> None:
        for run_id in list(self._waiters):
            try:
                state = self.journal.get_run(run_id).state
            except RunNotFound:
                state = RunState.FAILED
            except TamperDetected as e:  # never waited on again: its waiters get the finding
                self._wake_waiters(run_id, e)
                continue
            if state in RESTING_STATES:
                self._settle(run_id, state)

    def _quarantine(self, error: TamperDetected) -> None:
        """Set a run aside whose events failed their check; the worker goes on with the rest."""
        if error.run_id not in self.journal.quarantined_ids():
            self.journal.quarantine(error, by=f"worker:{self.worker_id}")
        _log.error("run quarantined", run_id=error.run_id, version=error.version, what=error.what,
                   worker_id=self.worker_id)

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


def served_agents(agents: Collection[str] | None, known: Collection[str]) -> tuple[str, ...]:
    """The agents a worker claims runs of: ``agents`` (each one it has), else every agent it has."""
    if agents is None:
        return tuple(sorted(known))
    if isinstance(agents, str) or not agents:
        raise InvalidInput("agents", f"name one or more agents of the workspace (got {agents!r})")
    for agent_id in agents:
        if agent_id not in known:
            raise UnknownAgent(agent_id, tuple(known))
    return tuple(sorted(set(agents)))


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


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a worker loop's error as seen: its waiters and the log have it already."""
    if not task.cancelled():
        task.exception()
