"""Keeping a run's lease: its heartbeat, and the signal that asks the run to stop.

Both are futures the execution awaits beside its agent, so most runs (those that
end before their first beat) cost one task, the agent's, and a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Heartbeat:
    """A run's lease renewals, every ``seconds``: a timer until the first beat, a task only after it.

    Most runs end before their first beat; they never pay for a task. ``ended`` resolves
    when the beats stop: with None once the lease is another's, with the error that
    stopped them otherwise (which ends the run). With ``seconds`` 0 there are no beats.
    """

    def __init__(self, seconds: float, beat: Callable[[], bool]) -> None:
        self._seconds = seconds
        self._beat = beat
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[None] = loop.create_future()
        self._task: asyncio.Task[None] | None = None
        self._timer = loop.call_later(seconds, self._start) if seconds else None

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._beats())
        self._task.add_done_callback(self._ended)

    async def _beats(self) -> None:
        while self._beat():
            await asyncio.sleep(self._seconds)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.ended.done():
            return
        error = task.exception()
        if error is None:
            self.ended.set_result(None)
        else:
            self.ended.set_exception(error)

    def stop(self) -> None:
        """No more beats (the run is over)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        if not self.ended.done():
            self.ended.cancel()


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
