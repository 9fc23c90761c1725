"""The listeners of one worker's stream events: each called in turn, none able to hurt the run.

A listener only watches; the log is the truth. One that raises is logged and
counted, and the others still get the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..app.logs import logger
from .streaming import StreamEvent, StreamType

_log = logger("runjournal.harness")


class Listeners:
    """Stream-event callbacks, with a count of the errors they raised."""

    def __init__(self, worker_id: str) -> None:
        self._worker_id = worker_id
        self._callbacks: list[Callable[[StreamEvent], None]] = []
        self.errors = 0

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def add(self, callback: Callable[[StreamEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the way to stop."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def emit(self, kind: StreamType, run_id: str, data: dict[str, Any]) -> None:
        """Give the event to every listener; one that raises is logged and counted.

        The event is built only when someone listens: most runs have no listener.
        """
        if not self._callbacks:
            return
        event = StreamEvent(type=kind, run_id=run_id, data=data)
        for listener in list(self._callbacks):
            try:
                listener(event)
            except Exception as e:  # noqa: BLE001 - the log is the truth; a listener only watches it
                self.errors += 1
                _log.error("listener failed", listener=_name(listener), stream_event=event.type,
                           run_id=event.run_id, worker_id=self._worker_id, error=f"{type(e).__name__}: {e}",
                           exc_info=e)


def _name(listener: Callable[..., Any]) -> str:
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    return f"{getattr(listener, '__module__', None) or type(listener).__module__}.{name}"
