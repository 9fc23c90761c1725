"""Riding out a store that is unavailable for a while: one backoff policy for the worker and its runs.

A write the store refused (a full disk, a locked file, a dropped connection) is
tried again with jittered exponential backoff until it goes through or the outage
has lasted ``store_outage_seconds``; then the error is raised with how long it
lasted. The happy path builds none of this: ``through_outage`` first calls the
write once, and only a failure of that call starts the retries, as their first
attempt (so it is logged and counted like the others).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_random_exponential

from ..app.logs import logger
from ..domain import StoreUnavailable

FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 5.0

T = TypeVar("T")
_log = logger("runjournal.harness")


async def through_outage(
    attempt: Callable[[], Awaitable[T]], *, seconds: float, who: dict[str, Any], stopped: str
) -> T:
    """``attempt()``, tried again while it raises ``StoreUnavailable``, for up to ``seconds``.

    ``who`` names the worker (and run) in the log; ``stopped`` says what gives up when the
    outage outlasts ``seconds`` (it ends the raised error's detail).
    """
    started = asyncio.get_running_loop().time()
    try:
        return await attempt()
    except StoreUnavailable as e:
        first_failure: list[StoreUnavailable] = [e]

    async def again() -> T:
        if first_failure:  # the failure that began the outage is the retries' first attempt
            raise first_failure.pop()
        return await attempt()

    def backing_off(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else None
        _log.warning("store unavailable, backing off", **who, attempt=state.attempt_number,
                     store=getattr(error, "store", None), cause=getattr(error, "cause", None),
                     retry_in_seconds=None if sleep is None else round(sleep, 3))

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(StoreUnavailable),
        wait=wait_random_exponential(multiplier=FIRST_BACKOFF_SECONDS, max=MAX_BACKOFF_SECONDS),
        stop=stop_after_delay(seconds),
        before_sleep=backing_off,
        reraise=True,
    )
    try:
        return await retrying(again)
    except StoreUnavailable as e:  # only once the outage outlasted ``seconds``
        lasted = asyncio.get_running_loop().time() - started
        raise StoreUnavailable(
            e.store, e.cause,
            detail=f"{e.detail or e.cause}; still unavailable after {lasted:.1f} s "
            f"(store_outage_seconds={seconds:g}), {stopped}",
        ) from e
