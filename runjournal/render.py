"""Rendering for the CLI: rich tables for people, JSON for machines. No logic lives here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .models import RecordedEvent, RunSnapshot, VerifyReport

STATE_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "cancelling": "magenta",
    "waiting_for_approval": "yellow",
    "running": "cyan",
    "queued": "blue",
}
# Fields shown as the "key fields" of an event in a history table.
KEY_FIELDS = ("worker_id", "epoch", "priority", "kind", "tool_name", "decision", "resume_kind",
              "reason", "error", "output", "approval_id", "to_state")


def dumps(value: Any) -> str:
    """JSON for machines: one object per call, stable key order."""
    return json.dumps(value, default=str, sort_keys=True)


def state(text: str) -> str:
    """A state name, coloured."""
    style = STATE_STYLES.get(text, "white")
    return f"[{style}]{text}[/{style}]"


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def history_table(run_id: str, events: Sequence[RecordedEvent]) -> Table:
    """A run's events, one row each."""
    table = Table(title=f"history of run {run_id}", title_justify="left")
    for column in ("v", "time", "event", "actor", "details"):
        table.add_column(column, no_wrap=column != "details")
    for e in events:
        details = ", ".join(f"{k}={_short(e.data[k])}" for k in KEY_FIELDS if e.data.get(k) is not None)
        table.add_row(str(e.version), e.timestamp.strftime("%H:%M:%S.%f")[:-3], e.type, e.actor, details)
    return table


def runs_table(title: str, runs: Sequence[RunSnapshot]) -> Table:
    """Runs, one row each."""
    table = Table(title=title, title_justify="left")
    for column in ("run", "agent", "priority", "state", "version", "output / error"):
        table.add_column(column)
    for r in runs:
        result = r.error if r.error else _short(r.output) if r.output is not None else ""
        table.add_row(r.run_id[:8], r.agent_id, str(r.priority), state(r.state), str(r.version), result)
    return table


def run_panel(console: Console, run: RunSnapshot) -> None:
    """One run in detail."""
    console.print(f"run      {run.run_id}")
    console.print(f"state    {state(run.state)}  (version {run.version}, epoch {run.epoch})")
    console.print(f"agent    {run.agent_id}   thread {run.thread_id}   priority {run.priority}")
    if run.worker_id and not run.is_terminal:
        console.print(f"worker   {run.worker_id}  lease until {run.lease_expires_at}")
    if run.pending_approval:
        console.print(f"approval {run.pending_approval['approval_id']} for {run.pending_approval['tool_name']}")
    if run.output is not None:
        console.print(f"output   {_short(run.output, 120)}")
    if run.error:
        console.print(f"error    [red]{run.error}[/red]")


def verify_lines(report: VerifyReport) -> list[str]:
    """A verify report, for people."""
    lines = [f"checked {report.events_checked} events of {report.runs_checked} runs"]
    if report.ok:
        lines.append("[green]ok[/green]: every chain verifies")
    for p in report.problems:
        lines.append(f"[red]broken[/red]: run {p.run_id} version {p.version}: {p.problem}")
    return lines
