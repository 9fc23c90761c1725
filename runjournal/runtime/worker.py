"""One worker's loop: claim the best claimable runs into free slots, run each, save how they end.

Each turn expires approvals and leases whose time ran out, claims every free slot in one save, collects the
runs that came to rest and saves the Completed of all that finished in one transaction
(a group commit). While the store is unavailable a turn is tried again with jittered
exponential backoff, up to ``store_outage_seconds``; a loop that dies fails whoever waits
on it with its error. All state lives in the journal: the loop knows busy slots and waiters.

Over 400 lines: one loop and the outcomes it settles (completions, failures, quarantines,
waiters); each piece of a turn is a method of its own here, and what runs one claim is
``execution.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Collection
from datetime import timedelta

from ..adapters.agents import AgentAdapter
from ..app.journal import Journal
from ..app.logs import logger
from ..app.models import Claim
from ..config.workspace import Workspace
from ..domain import RESTING_STATES, InvalidInput, ResumeFailedError, RunNotFound, RunState, StoreUnavailable, TamperDetected
from .agent_request import agent_request
from .execution import Execution, ExecutionSettings
from .heartbeat import Heartbeats
from .listeners import Listeners
from .outage import through_outage
from .outcome import Outcome
from .recovery import RecoveryReport, recover
from .routing import served_agents

CANCEL_WATCH_SECONDS = 0.5  # how soon a cancel asked by another process stops a running run, at most
_POLL_SECONDS = 0.05
_UNLIMITED_BATCH = 64  # with max_concurrent_runs: 0, claims per save until the queue is empty

_log = logger("runjournal.harness")


class Worker:
    """A worker's loop over a journal: slots, leases, outcomes, and the waiters of its runs."""

    def __init__(
        self,
        journal: Journal,
        workspace: Workspace,
        adapters: dict[str, AgentAdapter],
        *,
        agents: Collection[str] | None = None,
        worker_id: str | None = None,
        store_outage_seconds: float | None = None,
    ) -> None:
        self.journal = journal
        self.workspace = workspace
        self.adapters = adapters
        for adapter in adapters.values():  # an agent that keeps state in the store (a graph's checkpoints) uses ours
            if callable(use := getattr(adapter, "use_journal", None)):
                use(journal)
        self.agents = served_agents(agents, adapters)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        # How long the worker (and each of its runs' writes) keeps backing off while the store is
        # unavailable before it stops with the error.
        if store_outage_seconds is None:
            store_outage_seconds = workspace.concurrency.store_outage_seconds
        if store_outage_seconds < 0:
            raise InvalidInput("store_outage_seconds", f"must be >= 0 (got {store_outage_seconds:g})")
        self.store_outage_seconds = float(store_outage_seconds)
        self.settings = ExecutionSettings.of(workspace, store_outage_seconds=self.store_outage_seconds)
        lease_seconds = self.settings.lease_seconds
        self.heartbeats = Heartbeats(self.settings.heartbeat_seconds,
                                     lambda claims: journal.heartbeat_many(claims, lease_seconds=lease_seconds))
        self.listeners = Listeners(self.worker_id)
        self._active: dict[str, tuple[asyncio.Task[Outcome], Execution]] = {}
        self._completing: list[Execution] = []  # finished runs whose Completed is not saved yet
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._positions: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._serving = False
        self._wake = asyncio.Event()
        self._last_expiry = 0.0
        self._last_cancel_watch = 0.0
        self.successes = 0
        self.failures = 0

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

    def _emit_positions(self) -> None:
        """Tell listeners the queue positions that changed (a run added ahead shifts the others)."""
        if not self.listeners:
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
                self.listeners.emit("queue.position", row.run_id, data)
        self._positions = positions

    def _settle(self, run_id: str, state: str) -> None:
        self.listeners.emit("state", run_id, {"state": state})
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
            while await self._cycle_through_outage():
                pass
        except Exception as e:
            self._loop_died(e)
            raise

    async def _cycle_through_outage(self) -> bool:
        """One cycle, tried again with jittered exponential backoff while the store is unavailable.

        Each cycle gets its own budget: one that gets through has ended the outage.
        """
        return bool(await through_outage(self._cycle, seconds=self.store_outage_seconds,
                                         who={"worker_id": self.worker_id}, stopped=f"worker {self.worker_id} stopped"))

    async def _cycle(self) -> bool:
        """One turn of the loop: expire, claim, collect, complete; False when idle and unwanted."""
        self._expire_due()
        self._fill_slots()
        if self._active:
            self._watch_cancels()
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
            try:
                outcome: Outcome | None = task.result()
            except Exception as e:  # noqa: BLE001 - a bug in the harness must not kill the worker loop
                outcome = self._harness_error(execution.claim, e)
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
        """Save the Completed of every run that finished and claim the slots they free, in one transaction.

        While the store is unavailable the runs stay here, holding their slots, and
        the save is tried again on the next turn of the loop.
        """
        if not self._completing:
            return
        executions = self._completing
        results, claims = self.journal.complete_and_claim(
            [(e.claim, e.output) for e in executions], worker_id=self.worker_id,
            count=self._free_slots(len(self._active)),  # a saved Completed frees its slot
            lease_seconds=self.settings.lease_seconds, start=True, agents=self.agents,
        )
        self._completing = []
        unavailable: StoreUnavailable | None = None
        for execution, result in zip(executions, results, strict=True):
            if isinstance(result, StoreUnavailable):
                self._completing.append(execution)
                unavailable = result
            else:
                self._rest(execution.claim.run_id, self._completed(execution, result))
        self._launch_all(claims)
        if unavailable is not None:
            raise unavailable

    def _completed(self, execution: Execution, refusal: Exception | None) -> Outcome | None:
        """How a finished run ended, given what refused its Completed (None: nothing did)."""
        if refusal is None:
            return Outcome.COMPLETED
        try:
            return execution.completion_refused(refusal)
        except Exception as e:  # noqa: BLE001 - a bug must not stop the worker loop
            return self._harness_error(execution.claim, e)

    def _expire_due(self) -> None:
        """Once a second: approvals whose deadline passed, and leases that ran out (when recovery is on)."""
        now = asyncio.get_running_loop().time()
        if now - self._last_expiry < min(self.settings.heartbeat_seconds or 1.0, 1.0):
            return
        self._last_expiry = now
        # Approvals whose deadline passed undecided: one indexed query, one save for all of them.
        if self.journal.expire_approvals():
            self._wake.set()  # an expiry that rejects leaves a run to resume
        if self.workspace.recovery.enabled:  # the switch covers the loop's pass over leases too
            # One indexed query for leases already expired; no scan of every lease first.
            grace = timedelta(seconds=self.workspace.recovery.stale_running_after_seconds)
            self.journal.expire_leases(can_replay=self._can_replay, running_grace=grace)

    def _watch_cancels(self) -> None:
        """Stop the runs another process asked to cancel: one indexed read of their states, twice a second.

        The heartbeat would see the cancel too, but only at the next renewal, seconds later.
        """
        now = asyncio.get_running_loop().time()
        if now - self._last_cancel_watch < CANCEL_WATCH_SECONDS:
            return
        self._last_cancel_watch = now
        states = self.journal.states_of(list(self._active))
        for run_id, state in states.items():
            if state == RunState.CANCELLING and run_id in self._active:
                self.journal.get_run(run_id)  # read afresh: the copy this worker holds is still running
                self._active[run_id][1].cancel_requested.set()

    def _fill_slots(self) -> None:
        while (free := self._free_slots(self._slots_held())) > 0:
            # Every free slot is claimed (and started) in one save: a group commit.
            claims = self.journal.claim_many(
                worker_id=self.worker_id, count=free, lease_seconds=self.settings.lease_seconds, start=True,
                agents=self.agents,  # a run of another agent is left for a worker that has it
            )
            if not claims:
                return
            self._launch_all(claims)
        if self.listeners and self._positions:
            self._emit_positions()

    def _free_slots(self, held: int) -> int:
        """Slots a claim may fill while ``held`` runs hold theirs (a batch at a time when slots are unlimited)."""
        limit = self.workspace.concurrency.max_concurrent_runs
        return limit - held if limit else _UNLIMITED_BATCH

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
        if (stale := self._active.pop(claim.run_id, None)) is not None:
            # An older execution of this run, still waiting out the store for a write that landed (an
            # approval request, decided since): the run has moved on under a newer claim. Its writes
            # are fenced; stop it, so it neither holds a slot nor tells the run's waiters of its end.
            stale[0].cancel()
        try:
            request = agent_request(self.journal, claim, adapter)
        except StoreUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. a fork whose parent's record no longer proves itself
            self._rest(claim.run_id, self._harness_error(claim, e))
            return
        execution = Execution(self.journal, claim, adapter, request, self.settings, self.listeners.emit,
                              self.heartbeats)
        self.listeners.emit("state", claim.run_id, {"state": "running", "worker_id": self.worker_id})
        self._active[claim.run_id] = (asyncio.create_task(execution.run()), execution)

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
        self.listeners.emit("state", run.run_id, {"state": run.state, "error": run.error})
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


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a worker loop's error as seen: its waiters and the log have it already."""
    if not task.cancelled():
        task.exception()
