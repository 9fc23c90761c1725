"""Structured logs that never configure the host: one line per transition, through stdlib logging.

A library must not take over its host's logging, so runjournal's loggers are
structlog wrappers around standard ``logging`` loggers named ``runjournal.*``
(with a ``NullHandler`` on ``runjournal``): an application that embeds the
journal decides levels and handlers as for any other library, and structlog's
global configuration is never touched. Each record's message is the event as
one JSON object (or ``key=value`` text after ``configure(console=True)``).

Only the CLI calls ``configure``: it sends ``runjournal.*`` records to stderr
at ``$RUNJOURNAL_LOG_LEVEL`` (default ``warning``, so commands stay quiet).

structlog is imported on the first record that is emitted, not before: a logger
is a small stand-in that answers level checks from the stdlib logger and drops a
call at a disabled level itself (as structlog's ``filter_by_level`` would), so a
command that logs nothing never pays for importing it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

ROOT = "runjournal"
# The renderer is built on the first record: JSON, or console text after configure() on a terminal.
_render: dict[str, Any] = {"renderer": None, "console": False}
logging.getLogger(ROOT).addHandler(logging.NullHandler())
# The level of each logging method, as structlog's filter_by_level reads it.
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
           "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL,
           "fatal": logging.CRITICAL}


def _rendered(logger: Any, method: str, event: dict[str, Any]) -> Any:
    renderer = _render["renderer"]
    if renderer is None:
        import structlog

        renderer = (structlog.dev.ConsoleRenderer(colors=False) if _render["console"]
                    else structlog.processors.JSONRenderer())
        _render["renderer"] = renderer
    return renderer(logger, method, event)


def _wrapped(stdlib: logging.Logger) -> Any:
    """The structlog logger over ``stdlib`` (no configuration anywhere)."""
    import structlog

    processors: list[Any] = [
        structlog.stdlib.filter_by_level,  # drop disabled records before any work on them
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _rendered,
    ]
    return structlog.wrap_logger(stdlib, processors=processors, wrapper_class=structlog.stdlib.BoundLogger)


def _dropped(*_args: Any, **_kw: Any) -> None:
    """A record at a disabled level: nothing to do."""


class _Logger:
    """A structlog ``BoundLogger`` over one stdlib logger, built on the first record emitted."""

    __slots__ = ("_stdlib", "_structlog")

    def __init__(self, name: str) -> None:
        self._stdlib = logging.getLogger(name)
        self._structlog: Any = None

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the stdlib's name, as BoundLogger offers it
        return self._stdlib.isEnabledFor(level)

    def __getattr__(self, name: str) -> Any:
        level = _LEVELS.get(name)
        if level is not None and (self._stdlib.disabled or level < self._stdlib.getEffectiveLevel()):
            return _dropped  # what filter_by_level does, without importing structlog
        if self._structlog is None:
            self._structlog = _wrapped(self._stdlib)
        return getattr(self._structlog, name)


def logger(name: str) -> Any:
    """A structlog logger over the stdlib logger ``name`` (no configuration anywhere)."""
    return _Logger(name)


def is_enabled(log: Any, level: int) -> bool:
    """True when ``log`` would emit a record at ``level`` now."""
    return bool(log.isEnabledFor(level))


def configure(level: str | None = None) -> None:
    """For the CLI only: ``runjournal.*`` records to stderr, console text on a terminal, JSON otherwise."""
    name = (level or os.environ.get("RUNJOURNAL_LOG_LEVEL") or "warning").upper()
    root = logging.getLogger(ROOT)
    for handler in [h for h in root.handlers if getattr(h, "_runjournal_cli", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._runjournal_cli = True  # type: ignore[attr-defined]  # so a second configure replaces it
    root.addHandler(handler)
    root.setLevel(getattr(logging, name, logging.WARNING))
    root.propagate = False  # the CLI owns the process: no second copy through the root logger
    if sys.stderr.isatty():
        _render["console"], _render["renderer"] = True, None
