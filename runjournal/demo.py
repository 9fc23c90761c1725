"""The guided demo: a few runs through the journal on the embedded SQLite store."""

from __future__ import annotations

from rich.console import Console

from . import render
from .journal import Journal

AGENT = "echo"
MESSAGES = (("hello", 0), ("summarise the incident", 5), ("what changed today?", 1))
WORKER = "demo-worker"


def echo_agent(message: str) -> list[tuple[str, dict[str, str]]]:
    """A trivial agent: one step, then it says the message back."""
    return [("step", {"thought": f"echoing {message!r}"}), ("message", {"text": f"echo: {message}"})]


def run_demo(journal: Journal, console: Console) -> list[str]:
    """Submit runs, work them through one worker, print what the log recorded; returns run ids."""
    console.print(f"[bold]runjournal demo[/bold] on {journal.url}\n")
    submitted = [
        journal.submit(agent_id=AGENT, input={"message": m}, priority=p, actor="demo") for m, p in MESSAGES
    ]
    for position, row in enumerate(journal.queue(), start=1):
        console.print(f"queued #{position}: run {row.run_id[:8]} (priority {row.priority})")
    console.print()
    while (claim := journal.claim_next(worker_id=WORKER, lease_seconds=30)) is not None:
        journal.start(claim)
        for kind, content in echo_agent(claim.input["message"]):
            journal.record_step(claim, kind, content)
        journal.complete(claim, output={"text": f"echo: {claim.input['message']}"})
        console.print(f"{WORKER} completed run {claim.run_id[:8]}: {claim.input['message']!r}")
    runs = [journal.get_run(r.run_id) for r in submitted]
    console.print()
    console.print(render.runs_table("runs", runs))
    console.print(render.history_table(runs[1].run_id, journal.history(runs[1].run_id)))
    for line in render.verify_lines(journal.verify()):
        console.print(line)
    console.print(f"\nInspect it: runjournal history {runs[1].run_id}")
    return [r.run_id for r in runs]
