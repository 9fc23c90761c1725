"""Structured logs: one line per transition, JSON when stderr is not a terminal.

The level comes from ``$RUNJOURNAL_LOG_LEVEL`` (default ``warning``, so
commands stay quiet); set it to ``info`` to see every transition.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_configured = False


def configure(level: str | None = None) -> None:
    """Set up structlog once: console lines on a terminal, JSON lines otherwise, on stderr."""
    global _configured  # noqa: PLW0603 - one process-wide logging set-up
    name = (level or os.environ.get("RUNJOURNAL_LOG_LEVEL") or "warning").upper()
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, name, logging.WARNING)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


def logger(name: str) -> Any:
    """A bound logger (configuring logging on first use)."""
    if not _configured:
        configure()
    return structlog.get_logger(name)
