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
KEPT_COMMITS = 1000  # the sizes of the latest transactions kept, for benches and tests (memory stays bounded)


class SubmitGroup:
    """Collects the submits of one event-loop turn and saves them together."""

    def __init__(self, journal: Journal, submitted: Callable[[list[RunSnapshot]], None]) -> None:
        self._journal = journal
        self._submitted = submitted  # told of every run saved, after its commit
        self._pending: list[tuple[dict[str, Any], asyncio.Future[RunSnapshot]]] = []
        self.commits: list[int] = []  # runs per transaction, the latest KEPT_COMMITS of them

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
                _answer(future, error=e)
            return
        self._saved(runs)
        for (_, future), run in zip(group, runs, strict=True):
            _answer(future, run)

    def _save_one(self, request: dict[str, Any], future: asyncio.Future[RunSnapshot]) -> None:
        try:
            run = self._journal.submit(**request)
        except Exception as e:  # noqa: BLE001 - the caller's own answer
            _answer(future, error=e)
            return
        self._saved([run])
        _answer(future, run)

    def _saved(self, runs: list[RunSnapshot]) -> None:
        self.commits.append(len(runs))
        if len(self.commits) > 2 * KEPT_COMMITS:
            del self.commits[:-KEPT_COMMITS]
        self._submitted(runs)


def _answer(future: asyncio.Future[RunSnapshot], run: RunSnapshot | None = None, *, error: Exception | None = None) -> None:
    """Answer a caller, unless it gave up (cancelled): its run is saved all the same."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert run is not None
        future.set_result(run)
