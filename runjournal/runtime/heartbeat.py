"""Keeping the leases of a worker's runs: one heartbeat loop for all of them, and the signal that asks a run to stop.

Every ``seconds`` the loop renews, in one save (``Journal.heartbeat_many``), the lease of
each run that has held it that long, and of those nearly due with them; a run that ends
before its first beat costs a future and a dict entry, no timer and no task. Each run
awaits its ``Lease.ended`` beside its agent: it resolves with None once the lease is
another's, with the error that refused the renewal otherwise (which ends the run). A
beat the store refuses for a transient fault is tried again on the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from ..app.logs import logger
from ..app.models import Claim, RunSnapshot
from ..domain import LeaseLost, RunState, StoreUnavailable

_log = logger("runjournal.execution")
Renew = Callable[[Sequence[Claim]], Sequence[Any]]  # claims -> per claim, a RunSnapshot or the error refusing it


class Lease:
    """One run's place in the worker's heartbeat."""

    def __init__(self, heartbeats: Heartbeats, claim: Claim, cancel: CancelSignal, due: float) -> None:
        self.claim = claim
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._heartbeats = heartbeats
        self._cancel = cancel
        self.due = due

    def stop(self) -> None:
        """No more beats (the run is over)."""
        self._heartbeats.drop(self)
        if not self.ended.done():
            self.ended.cancel()

    def renewed(self, run: RunSnapshot) -> None:
        """The lease was renewed: act on a cancel asked meanwhile (the claim's epoch, all a renewal
        needs of it, is unchanged)."""
        if run.state == RunState.CANCELLING:  # a cancel written by another process
            self._cancel.set()

    def end(self, error: BaseException | None) -> None:
        """No more beats: the lease is another's (None), or ``error`` refused its renewal."""
        self._heartbeats.drop(self)
        if self.ended.done():
            return
        if error is None:
            self.ended.set_result(None)
        else:
            self.ended.set_exception(error)


class Heartbeats:
    """The lease renewals of every run of one worker, every ``seconds`` (0: none)."""

    def __init__(self, seconds: float, renew: Renew) -> None:
        self._seconds = seconds
        self._renew = renew
        self._leases: dict[str, Lease] = {}
        self._task: asyncio.Task[None] | None = None

    def keep(self, claim: Claim, cancel: CancelSignal) -> Lease:
        """Renew ``claim``'s lease from ``seconds`` from now on, until its ``stop``."""
        loop = asyncio.get_running_loop()
        lease = Lease(self, claim, cancel, loop.time() + self._seconds)
        if self._seconds:
            self._leases[claim.run_id] = lease
            # A task of an event loop that has ended (one ``asyncio.run`` after another) beats no more.
            if self._task is None or self._task.done() or self._task.get_loop() is not loop:
                self._task = loop.create_task(self._beats())
        return lease

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease``."""
        if self._leases.get(lease.claim.run_id) is lease:
            del self._leases[lease.claim.run_id]

    async def close(self) -> None:
        """Stop the loop (the worker is closing)."""
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _beats(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._leases:
                now = loop.time()
                first = min(lease.due for lease in self._leases.values())
                if first > now:
                    await asyncio.sleep(first - now)
                    continue
                # Those due within half a period go with them: one save instead of two soon after.
                due = [lease for lease in self._leases.values() if lease.due <= now + self._seconds / 2]
                self._beat(due)
                # The next beat is a period after this one ENDED: a save slower than the period
                # must not make the loop beat again at once, never yielding to the runs.
                after = loop.time() + self._seconds
                for lease in due:
                    lease.due = after
        except Exception as e:  # noqa: BLE001 - a heartbeat that dies of a bug ends the runs it kept, never silently
            for lease in list(self._leases.values()):
                lease.end(e)
            raise

    def _beat(self, due: list[Lease]) -> None:
        try:
            results = self._renew([lease.claim for lease in due])
        except StoreUnavailable as e:
            _log.warning("heartbeat refused by the store, retrying on the next beat",
                         run_ids=[lease.claim.run_id for lease in due], worker_id=due[0].claim.worker_id,
                         store=e.store, cause=e.cause)
            return
        except Exception as e:  # noqa: BLE001 - a renewal that dies of a bug ends every run it was for
            for lease in due:
                lease.end(e)
            return
        for lease, result in zip(due, results, strict=True):
            if isinstance(result, LeaseLost):
                lease.end(None)  # quiet: the run's next append says so
            elif isinstance(result, BaseException):
                lease.end(result)
            else:
                lease.renewed(result)


class CancelSignal:
    """A cancel asked of a running run: set once, read any number of times, awaited as a future.

    A future, not an ``asyncio.Event`` waited on by a task of its own: one task less per run.
    """

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        """Ask the run to stop."""
        if not self.future.done():
            self.future.set_result(None)

    def is_set(self) -> bool:
        """True once a cancel was asked."""
        return self.future.done()
