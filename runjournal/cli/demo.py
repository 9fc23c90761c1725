"""The guided tour: a 2-slot harness on the embedded SQLite store, with priorities,
queue positions, an approval, a cancellation and one run's history."""

from __future__ import annotations

from rich.console import Console

from ..app.journal import Journal
from ..config.workspace import Workspace
from ..runtime.harness import Harness
from ..runtime.streaming import StreamEvent
from ..domain import TERMINAL_STATES
from . import render

DEMO_WORKSPACE = {
    "agents": {
        "echo": {"adapter": "scripted", "script": [{"step": {"thinking": "echo"}}, {"sleep": 0.05}, {"say": "echo: {message}"}]},
        "deployer": {
            "adapter": "scripted",
            "script": [
                {"reasoning": "Checking the release before deploying"},
                {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True,
                 "result": {"deployed": True}, "rejected": "Not deployed: the deploy to prod was rejected"},
                {"say": "Deployed to prod"},
            ],
        },
        "slow": {"adapter": "scripted", "script": [{"sleep": 30}, {"say": "finally"}]},
    },
    "routing": {"default_agent": "echo", "rules": [{"match": "deploy", "agent": "deployer"}]},
    "concurrency": {"max_concurrent_runs": 2, "lease_seconds": 30, "heartbeat_seconds": 10},
}
REQUESTS = (
    ("summarise the incident", 0, None),
    ("what changed today?", 0, None),
    ("a long report nobody needs", 0, "slow"),
    ("deploy to prod", 5, None),
    ("urgent: page the on-call", 9, None),
)


def _start(run_id: str) -> str:
    """The start of a run id the narration shows: the millisecond and 12 random bits, which every verb takes."""
    return run_id[:18]


async def run_demo(url: str | None, console: Console) -> list[str]:
    """Run the tour and print what the log recorded; returns the run ids."""
    journal = Journal.open(url)
    harness = Harness(journal, Workspace.from_dict(DEMO_WORKSPACE), worker_id="demo-worker")
    console.print(f"[bold]runjournal demo[/bold] on {journal.url} (2 slots)\n")

    def show(event: StreamEvent) -> None:
        if event.type == "queue.position":
            console.print(f"  queue: run {_start(event.run_id)} is #{event.data['position']}")
        elif event.type == "approval":
            console.print(f"  run {_start(event.run_id)} asks approval for {event.data['tool_name']} {event.data['tool_args']}")
        elif event.type == "state" and event.data["state"] in TERMINAL_STATES:
            console.print(f"  run {_start(event.run_id)} {render.state(event.data['state'])}")

    harness.subscribe(show)
    try:
        runs = []
        for message, priority, agent in REQUESTS:
            run = harness.submit({"message": message}, agent_id=agent, priority=priority, actor="demo")
            console.print(f"submitted {_start(run.run_id)} {message!r} -> {run.agent_id} (priority {priority})")
            runs.append(run)
        slow = runs[2]
        await harness.cancel(slow.run_id, reason="not needed after all", actor="demo")
        console.print(f"cancelled {_start(slow.run_id)} while it was queued\n")
        await harness.work(until_idle=True)
        deploy = journal.get_run(runs[3].run_id)
        approval_id = (deploy.pending_approval or {}).get("approval_id")
        console.print(f"\napproving {approval_id} as 'demo'")
        await harness.resume(approval_id=approval_id, decision="approve", actor="demo")
        _show_what_was_recorded(console, journal, [r.run_id for r in runs], deploy.run_id)
        return [r.run_id for r in runs]
    finally:
        await harness.close()
        journal.close()


def _show_what_was_recorded(console: Console, journal: Journal, run_ids: list[str], deploy_id: str) -> None:
    """The runs, the approved run's history and what verify says, then where to look next."""
    snapshots = [journal.get_run(run_id) for run_id in run_ids]
    console.print()
    console.print(render.runs_table("runs", snapshots))
    console.print(render.history_table(deploy_id, journal.history(deploy_id)))
    report = journal.verify()
    console.print(f"verify: {report.events_checked} events of {report.runs_checked} runs, "
                  f"{'every chain verifies' if report.ok else 'BROKEN'}")
    console.print(f"\nNext: runjournal history {deploy_id}\n      runjournal approvals --all"
                  f"\n      runjournal timeline {deploy_id} --html timeline.html")
