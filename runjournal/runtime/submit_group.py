"""Grouped submits: every submit awaited in one event-loop turn is saved in one transaction.

A caller gets its run only once the transaction holding it has committed, so
durability is that of ``Journal.submit``; what changes is that a hundred
concurrent callers cost one commit instead of a hundred. A request the journal
refuses (bad input) takes no one else down with it: the group is then saved one
request at a time, each caller getting its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..app.journal import Journal
from ..app.models import RunSnapshot
from ..domain import InvalidInput

MAX_GROUP = 500  # requests per transaction: a bounded commit, however many callers wait


class SubmitGroup:
    """Collects the submits of one event-loop turn and saves them together."""

    def __init__(self, journal: Journal, submitted: Callable[[list[RunSnapshot]], None]) -> None:
        self._journal = journal
        self._submitted = submitted  # told of every run saved, after its commit
        self._pending: list[tuple[dict[str, Any], asyncio.Future[RunSnapshot]]] = []
        self.commits: list[int] = []  # runs per transaction, for benches and health

    async def submit(self, request: dict[str, Any]) -> RunSnapshot:
        """Queue ``request`` (``Journal.submit`` keywords) with this turn's others; returns its run once saved."""
        future: asyncio.Future[RunSnapshot] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((request, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_GROUP):
            self._save(pending[start : start + MAX_GROUP])

    def _save(self, group: list[tuple[dict[str, Any], asyncio.Future[RunSnapshot]]]) -> None:
        try:
            runs = self._journal.submit_many([request for request, _ in group])
        except InvalidInput:  # nothing was saved: each request on its own, each with its own answer
            for request, future in group:
                self._save_one(request, future)
            return
        except Exception as e:  # noqa: BLE001 - a store fault is every caller's answer: nothing was saved
            for _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        self.commits.append(len(runs))
        self._submitted(runs)
        for (_, future), run in zip(group, runs, strict=True):
            if not future.done():  # a caller that gave up (cancelled) still has its run saved
                future.set_result(run)

    def _save_one(self, request: dict[str, Any], future: asyncio.Future[RunSnapshot]) -> None:
        try:
            run = self._journal.submit(**request)
        except Exception as e:  # noqa: BLE001 - the caller's own answer
            if not future.done():
                future.set_exception(e)
            return
        self.commits.append(1)
        self._submitted([run])
        if not future.done():
            future.set_result(run)
