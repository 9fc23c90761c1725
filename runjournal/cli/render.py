"""Rendering for the CLI: rich tables for people, JSON for machines. No logic lives here.

Every string shown to people may come from a user, an agent or a web page
(actors, thread ids, outputs, errors, tool names), so it goes through
``visible``: control characters, ANSI escapes and bidirectional overrides are
shown escaped (``\\x1b[2K``), and rich markup (``[bold]``) is shown as text.
JSON output escapes them already.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported when something is rendered, not with the command
    from rich.console import Console
    from rich.table import Table

    from ..app.models import RecordedEvent, RunSnapshot

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


# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> str:
    """Text that shows as what it holds: control characters escaped, rich markup shown literally."""
    from rich.markup import escape

    text = value if isinstance(value, str) else str(value)
    return escape(_UNSAFE.sub(_escaped, text))


def plain(value: Any) -> str:
    """As ``visible``, for output printed with ``markup=False``: control characters escaped, lines kept."""
    text = value if isinstance(value, str) else str(value)
    return "\n".join(_UNSAFE.sub(_escaped, line) for line in text.split("\n"))


def dumps(value: Any) -> str:
    """JSON for machines: one object per call, stable key order."""
    return json.dumps(value, default=str, sort_keys=True)


def state(text: str) -> str:
    """A state name, coloured."""
    style = STATE_STYLES.get(text, "white")
    return f"[{style}]{text}[/{style}]"


ID_COLUMNS = frozenset({"run", "latest run", "approval", "parent"})  # never cut: each verb takes them back
ID_WIDTH = 36


def id_column(table: Table, name: str) -> None:
    """A column of ids: whole on any terminal (the other columns wrap instead), so they can be copied."""
    table.add_column(name, no_wrap=True, min_width=ID_WIDTH + (3 if name == "approval" else 0))


def _short(value: Any, width: int = 48) -> str:
    """A value on one line, cut to ``width``, safe to show (see ``visible``)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return visible(text if len(text) <= width else text[: width - 1] + "…")


def event_line(e: RecordedEvent) -> str:
    """One event on one line, as `follow` prints it: version, time, type, actor, key fields."""
    details = _details(e)
    return visible(f"v{e.version} {e.timestamp.strftime('%H:%M:%S.%f')[:-3]} {e.type} by {e.actor}"
                   + (f"  {details}" if details else ""))


def _details(e: RecordedEvent) -> str:
    """An event's key fields, and for a step what it was and where it was served from."""
    details = ", ".join(f"{k}={_short(e.data[k])}" for k in KEY_FIELDS if e.data.get(k) is not None)
    return (details + _step_details(e)).lstrip(", ")


def history_table(run_id: str, events: Sequence[RecordedEvent]) -> Table:
    """A run's events, one row each."""
    from rich.table import Table

    table = Table(title=f"history of run {visible(run_id)}", title_justify="left")
    for column in ("v", "time", "event", "actor", "details"):
        table.add_column(column, no_wrap=column != "details")
    for e in events:
        details = _details(e)
        table.add_row(str(e.version), e.timestamp.strftime("%H:%M:%S.%f")[:-3], visible(e.type), visible(e.actor), details)
    return table


def runs_table(title: str, runs: Sequence[RunSnapshot]) -> Table:
    """Runs, one row each."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    id_column(table, "run")
    for column in ("agent", "priority", "state", "version", "output / error"):
        table.add_column(column)
    for r in runs:
        result = visible(r.error) if r.error else _short(r.output) if r.output is not None else ""
        table.add_row(visible(r.run_id), visible(r.agent_id), str(r.priority), state(r.state), str(r.version), result)
    return table


def _step_details(e: RecordedEvent) -> str:
    """What a step was (the tool or model it records) and, when served from a record, whose."""
    content = e.data.get("content") if e.type == "StepRecorded" else None
    if not isinstance(content, dict):
        return ""
    name = content.get("tool") or content.get("model")
    text = f", {'tool' if 'tool' in content else 'model'}={_short(name)}" if isinstance(name, str) else ""
    checkpoint = content.get("checkpoint")
    if isinstance(checkpoint, dict):  # a graph's super-step (see adapters/langgraph/agent.py)
        text += f", checkpoint step {_short(checkpoint.get('step'))}"
        if isinstance(content.get("updates"), dict) and content["updates"]:
            text += f", nodes={_short(','.join(map(str, content['updates'])))}"
    served = content.get("served_from")
    if isinstance(served, dict):
        text += f", served from {_short(served.get('run_id'))} v{_short(served.get('version'))}"
    return text


def run_panel(console: Console, run: RunSnapshot, recovery: str | None) -> None:
    """One run in detail (and what recovery would do with it)."""
    console.print(f"run      {run.run_id}")
    console.print(f"state    {state(run.state)}  (version {run.version}, epoch {run.epoch})")
    console.print(f"agent    {visible(run.agent_id)}{_asked(run)}   thread {visible(run.thread_id)}   "
                  f"priority {run.priority}")
    if run.invocation:
        console.print(f"invoked  {_short(run.invocation, 120)}")
    if run.worker_id and run.lease_expires_at is not None and not run.is_terminal:
        console.print(f"lease    {visible(run.worker_id)} until {run.lease_expires_at}")
    if run.pending_approval:
        a = run.pending_approval
        console.print(f"approval {visible(a['approval_id'])} for {visible(a['tool_name'])} "
                      f"{_short(a.get('tool_args'), 120)}")
    if run.output is not None:
        console.print(f"output   {_short(run.output, 120)}")
    if run.error:
        console.print(f"error    [red]{visible(run.error)}[/red]")
    if run.parent_run_id:
        how = "fork of" if run.fork is not None else "retry of"
        console.print(f"{how} {visible(run.parent_run_id)} (version {run.parent_version})")
    if recovery is not None:
        attempts = f"  (attempts {run.recovery_attempts})" if run.recovery_attempts else ""
        console.print(f"recovery {visible(recovery)}{attempts}")


def _asked(run: RunSnapshot) -> str:
    """How the agent was chosen, when it was not asked for by name: "(routed; python)"."""
    parts = ["routed"] if run.requested_agent_id not in (None, run.agent_id) else []
    parts += [visible(run.execution_mode)] if run.execution_mode else []
    return f" ({'; '.join(parts)})" if parts else ""


def result_lines(console: Console, result: Any) -> None:
    """A submitted run, or where a run came to rest."""
    console.print(f"run {result.run_id} ({visible(result.agent_id)}): {state(result.state)}")
    output = getattr(result, "output", None)
    if output is not None:
        console.print(f"output: {_short(output, 200)}")
    if getattr(result, "error", None):
        console.print(f"error: [red]{visible(result.error)}[/red]")
    approval = getattr(result, "approval_id", None)
    if approval:
        console.print(f"waiting for approval {visible(approval)}: runjournal approve {visible(approval)}")


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        if column in ID_COLUMNS:
            id_column(table, column)
        else:
            table.add_column(column)
    for row in rows:
        table.add_row(*(visible(v) if v is not None else "" for v in row))
    return table


def threads_table(rows: Sequence[Any]) -> Table:
    """Thread summaries."""
    return _table("threads", ("thread", "agent", "latest run", "status", "runs", "messages", "updated"),
                  [(r.thread_id, r.agent_id, r.latest_run_id, r.status, r.run_count, r.message_count,
                    r.updated_at[:19]) for r in rows])


def found_runs_table(rows: Sequence[Any]) -> Table:
    """Runs a query found: whole ids, state, agent, when, and the error of a failed one."""
    return _table("runs", ("run", "state", "agent", "created", "updated", "by", "error"),
                  [(r.run_id, r.state, r.agent_id, r.created_at[:19], r.updated_at[:19], r.created_by,
                    _short(r.error, 60) if r.error else None) for r in rows])


def queue_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Claimable runs with their positions."""
    return _table("queue", ("#", "run", "priority", "state"),
                  [(r["position"], r["run_id"], r["priority"], r["state"]) for r in rows])


def approvals_table(rows: Sequence[Any], now: datetime) -> Table:
    """Approvals, pending or decided: how old, when due, for whom, what, and how decided."""
    return _table("approvals", ("approval", "tool", "args", "digest", "age", "deadline", "assignees", "status",
                                "decided by", "edit"),
                  [(r.approval_id, r.tool_name, _short(r.tool_args), r.args_digest[:12], _age(r.requested_at, now),
                    _deadline(r.deadline, now) if r.deadline and r.status == "pending" else None,
                    ", ".join(r.assignees or []) or None, r.status,
                    f"{r.decided_by} at {r.decided_at[:19]}" if r.decided_by and r.decided_at else None,
                    _short(r.edit_diff) if r.edit_diff else None) for r in rows])


def _age(since: str, now: datetime) -> str:
    """How long ago an ISO time was, in the largest whole unit: 45s, 12m, 3h, 2d."""
    seconds = max(0, int((now - datetime.fromisoformat(since)).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _deadline(deadline: str, now: datetime) -> str:
    """A deadline as its time, and how far it is (or how long it has been overdue)."""
    due = datetime.fromisoformat(deadline)
    left = _age(now.isoformat(), due) if due > now else None
    return f"{deadline[:19]} (in {left})" if left else f"{deadline[:19]} (overdue {_age(deadline, now)})"


def replay_lines(console: Console, report: Any) -> None:
    """A replay's outcome: identical, or where it first diverged and how."""
    head = f"replayed run {report.run_id} ({visible(report.agent_id)}): {report.executions} executions, " \
           f"{report.compared} recorded items reproduced, nothing called, nothing appended"
    console.print(visible(head), markup=False)
    if report.identical:
        console.print("[green]identical[/green]")
        return
    d = report.divergence
    console.print(f"[red]diverged[/red] at version {d.version}")
    console.print(visible(f"  recorded: {_short(d.recorded, 200) if d.recorded is not None else '(nothing more)'}"),
                  markup=False)
    console.print(visible(f"  now:      {_short(d.now, 200) if d.now is not None else '(nothing more)'}"), markup=False)


def lineage_lines(console: Console, root: Any, focus: str) -> None:
    """A lineage tree, one run per line; ``focus`` (the run asked about) is marked."""

    def line(node: Any, lead: str, branch: str) -> None:
        how = {"retry": f"retry of v{node.parent_version}", "fork": f"fork at v{node.parent_version}"}.get(
            node.lineage, "root")
        mark = "  <-" if node.run_id == focus else ""
        console.print(visible(f"{lead}{branch}{node.run_id}  {how}  {node.agent_id}  {node.state}  "
                              f"(by {node.created_by}, {node.created_at[:19]}){mark}"), markup=False)
        below = lead + ("   " if branch == "└─ " else "│  " if branch else "")
        for i, child in enumerate(node.children):
            line(child, below, "└─ " if i == len(node.children) - 1 else "├─ ")

    line(root, "", "")


def recovery_summary(report: Any) -> str:
    """One line for a recovery report."""
    return (f"{len(report.expired)} expired leases, {len(report.resumed)} resumed, "
            f"{len(report.failed)} failed, {report.left} left to the workers")


def diff_lines(console: Console, versions: tuple[int, int], changes: dict[str, Any]) -> None:
    """What changed between two versions of a run."""
    console.print(f"changes from version {versions[0]} to {versions[1]}:")
    for key, change in changes.items():
        console.print(f"  {visible(key)}: {_short(change['from'], 60)} -> {_short(change['to'], 60)}")


def verify_lines(console: Console, report: dict[str, Any]) -> None:
    """A verify result, for people."""
    console.print(f"checked {report['events_checked']} events of {report['runs_checked']} runs")
    if report["ok"]:
        console.print("[green]ok[/green]: every chain verifies")
    proven = report.get("checkpoint")
    if proven and proven["ok"]:
        signer = f", signed by key {proven['signed_by']}" if proven.get("signed_by") else ""
        console.print(f"[green]ok[/green]: the log ({proven['tree_size']} events) extends the checkpoint of "
                      f"{proven['checkpoint_size']} events{signer}")
    if "views_rows_checked" in report and report["ok"]:
        console.print(f"[green]ok[/green]: {report['views_rows_checked']} view rows equal a rebuild from the log")
    for problem in report["problems"]:
        console.print(f"[red]broken[/red]: {visible(problem)}")
