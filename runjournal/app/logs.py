"""Structured logs that never configure the host: one line per transition, through stdlib logging.

A library must not take over its host's logging, so runjournal's loggers are
structlog wrappers around standard ``logging`` loggers named ``runjournal.*``
(with a ``NullHandler`` on ``runjournal``): an application that embeds the
journal decides levels and handlers as for any other library, and structlog's
global configuration is never touched. Each record's message is the event as
one JSON object (or ``key=value`` text after ``configure(console=True)``).

Only the CLI calls ``configure``: it sends ``runjournal.*`` records to stderr
at ``$RUNJOURNAL_LOG_LEVEL`` (default ``warning``, so commands stay quiet).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

ROOT = "runjournal"
_render: dict[str, Any] = {"renderer": structlog.processors.JSONRenderer()}
logging.getLogger(ROOT).addHandler(logging.NullHandler())


def _rendered(logger: Any, method: str, event: dict[str, Any]) -> Any:
    return _render["renderer"](logger, method, event)


_PROCESSORS: tuple[Any, ...] = (
    structlog.stdlib.filter_by_level,  # drop disabled records before any work on them
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    _rendered,
)


def logger(name: str) -> Any:
    """A structlog logger over the stdlib logger ``name`` (no configuration anywhere)."""
    return structlog.wrap_logger(
        logging.getLogger(name), processors=list(_PROCESSORS), wrapper_class=structlog.stdlib.BoundLogger
    )


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
        _render["renderer"] = structlog.dev.ConsoleRenderer(colors=False)
