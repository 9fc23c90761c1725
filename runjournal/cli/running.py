"""CLI verbs for running and operating: init, demo, run, worker, status, threads, queue,
approvals, approve, reject, cancel, recover, retry, quarantine. (Finding runs, forks and
lineage are ``debugging.py``'s.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from . import render
from .common import (
    STATE,
    ActorOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    Verbs,
    emit,
    err,
    full_approval_id,
    full_run_id,
    guarded,
    opened,
    out,
    page_note,
    parse_json,
    real,
    require_store,
    run_async,
    store_url,
)

if TYPE_CHECKING:
    from ..runtime.harness import Harness  # imported when a verb needs it: `status` stays quick

verbs = Verbs()


def _unsuccessful() -> frozenset[str]:
    """Where `run --wait` may see a run rest: these make it exit 1 (completed and waiting_for_approval: 0)."""
    from ..domain import TERMINAL_STATES, RunState

    return TERMINAL_STATES - {RunState.COMPLETED}


def _harness(worker_id: str | None = None, agents: list[str] | None = None) -> Harness:
    return STATE.setup.harness(worker_id=worker_id, agents=agents)


@verbs.command()
def init(
    path: Annotated[str, typer.Argument(help="Where to write the workspace.")] = "runjournal.yaml",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example workspace (an echo agent and a deployer needing approval).

    Example: runjournal init && runjournal run "deploy to prod" --wait
    """
    from ..config.workspace import write_example

    with guarded():
        written = write_example(path, force=force)
    out.print(f"wrote {written}: edit the agents, then `runjournal run \"hello\" --wait`")


@verbs.command()
def demo() -> None:
    """A guided tour on the embedded SQLite store; leaves the journal for the other commands.

    Example: runjournal demo && runjournal approvals --all
    """
    from .demo import run_demo

    with guarded():
        run_async(run_demo(store_url(), real(out)))


# Over 40 lines: the signature is the verb's options, declared once for typer and --help.
@verbs.command("run")
def run_(
    message: Annotated[str, typer.Argument(help="The request's message.")],
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Agent to run; 'auto' (the default) lets routing decide.")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Thread to continue.")] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    context: Annotated[str | None, typer.Option(
        "--context", help="Invocation context for the agent: a JSON object.")] = None,
    inputs: Annotated[str | None, typer.Option(
        "--inputs", help="Named inputs (state) for the agent: a JSON object.")] = None,
    attachment: Annotated[list[str] | None, typer.Option(
        "--attachment", help="An attachment for the agent, as JSON (repeatable), e.g. '{\"uri\": \"s3://b/k\"}'.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Work the run here until it rests.")] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a run; with --wait, run it in this process until it completes, fails or waits for approval.

    With --wait the exit status is 1 when the run failed or was cancelled. --context,
    --inputs and --attachment are kept beside the message and reach the agent.

    Example: runjournal run "deploy to prod" --agent auto --context '{"ticket": "CHG-7"}' --wait
    """

    async def go() -> object:
        envelope = {
            "context": parse_json(context, "--context"),
            "inputs": parse_json(inputs, "--inputs"),
            "attachments": [parse_json(a, "--attachment") for a in attachment] if attachment else None,
        }
        harness = _harness()
        try:
            run = harness.submit({"message": message}, agent_id=agent, thread_id=thread, priority=priority, actor=actor,
                                 **envelope)
            return await harness.wait(run.run_id) if wait else run
        finally:
            await harness.close()

    with guarded():
        result = run_async(go())
    emit(as_json, result.model_dump(mode="json"), lambda: render.result_lines(out, result))
    if wait and result.state in _unsuccessful():
        ended = "failed" if result.state == "failed" else "was cancelled"
        err.print(f"error: run {result.run_id} {ended}; see `runjournal history {result.run_id}`", markup=False)
        raise typer.Exit(1)


@verbs.command()
def worker(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when nothing is left to do.")] = False,
    worker_id: Annotated[str | None, typer.Option("--worker-id", help="Name in leases and the log.")] = None,
    agents: Annotated[str | None, typer.Option(
        "--agents", help="Claim runs of these agents only (comma-separated; default: every agent of the workspace)."
    )] = None,
) -> None:
    """Recover, then claim and run queued runs (any number of workers may share a store).

    A worker claims only runs of agents its workspace has; runs of other agents are
    left for workers that have them.

    Example: runjournal worker --until-idle --agents echo,deployer
    """
    served = None if agents is None else [a.strip() for a in agents.split(",") if a.strip()]

    async def go() -> None:
        harness = _harness(worker_id, served)
        try:
            report = await harness.recover()
            out.print(f"worker {harness.worker_id}: recovered {render.recovery_summary(report)}")
            await harness.work(until_idle=until_idle)
            out.print(f"worker {harness.worker_id}: idle ({harness.successes} ok, {harness.failures} failed)")
        finally:
            await harness.close()

    with guarded():
        try:
            run_async(go())
        except KeyboardInterrupt:
            out.print("worker stopped")


@verbs.command()
def status(run_id: str, as_json: JsonOption = False) -> None:
    """A run's state now, and what startup recovery would do with it.

    Example: runjournal status 3f2a9c1e-0b7d-4c55-9f0e-2d1b7a9e5c11
    """
    from ..domain.transitions import recovery_intent

    with opened(read_only=True) as journal:
        run = journal.get_run(full_run_id(journal, run_id))
        # Read off the run's state (the table the recovery view uses too): no views to open or catch up.
        recovery = recovery_intent(run.state)
        payload = {**run.model_dump(mode="json"), "recovery": recovery}
        emit(as_json, payload, lambda: render.run_panel(out, run, recovery))


@verbs.command()
def threads(limit: LimitOption = 100, offset: OffsetOption = 0, as_json: JsonOption = False) -> None:
    """Thread summaries, most recently updated first: latest run, status, counts (a page of --limit).

    Example: runjournal threads --limit 20 --offset 20 --json
    """
    with opened(read_only=True) as journal:
        rows = journal.threads(limit=limit, offset=offset)
        total = journal.thread_count() if len(rows) == limit or offset else len(rows)
        emit(as_json, [r.model_dump(mode="json") for r in rows], lambda: out.print(render.threads_table(rows)))
        if not as_json:
            page_note(len(rows), offset, total)


@verbs.command()
def queue(as_json: JsonOption = False) -> None:
    """Claimable runs in claim order (priority, then age).

    Example: runjournal queue
    """
    with opened(read_only=True) as journal:
        rows = [{"position": i, "run_id": r.run_id, "priority": r.priority, "state": r.state}
                for i, r in enumerate(journal.queue(), start=1)]
        emit(as_json, rows, lambda: out.print(render.queue_table(rows)))


@verbs.command()
def approvals(
    show_all: Annotated[bool, typer.Option("--all", help="Decided approvals too.")] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only pending ones past their deadline.")] = False,
    mine: Annotated[bool, typer.Option(
        "--mine", help="Only those the actor (--actor, else $RUNJOURNAL_ACTOR, else the OS user) may decide.")] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approvals waiting for a person, across runs: age, deadline, assignees, tool and arguments (--all: decided too).

    A decided one shows who decided and when, and for an edit what changed in the arguments.

    Example: runjournal approvals --mine --overdue
    """
    from datetime import datetime

    from ..app.unit_of_work import default_actor

    with opened(read_only=True) as journal:
        rows = journal.approvals() if show_all else journal.pending_approvals()
        now = journal.clock.now()
        who = actor or default_actor()
        if overdue:
            rows = [r for r in rows if r.status == "pending" and r.deadline and datetime.fromisoformat(r.deadline) <= now]
        if mine:
            rows = [r for r in rows if not r.assignees or who in r.assignees]
        emit(as_json, [{**r.model_dump(mode="json"), "edit_diff": r.edit_diff} for r in rows],
             lambda: out.print(render.approvals_table(rows, now) if rows else "no approvals to show"))


def _decide(approval_id: str, decision: str, edits: object, actor: str | None, as_json: bool) -> None:
    with opened() as journal:
        full = full_approval_id(journal, approval_id)
        run = journal.resolve_approval(full, decision=decision, edits=edits, actor=actor)
        emit(as_json, run.model_dump(mode="json"),
             lambda: out.print(f"{decision} recorded for {full}; run {run.run_id} is {run.state} (a worker resumes it)"))


@verbs.command()
def approve(
    approval_id: str,
    edit: Annotated[str | None, typer.Option("--edit", help="Edited tool arguments, as JSON.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending tool call (with --edit: approve edited arguments).

    Example: runjournal approve RUN_ID.a1 --edit '{"env": "staging"}'
    """
    with guarded():
        edits = parse_json(edit, "--edit")
    _decide(approval_id, "edit" if edits is not None else "approve", edits, actor, as_json)


@verbs.command()
def reject(approval_id: str, actor: ActorOption = None, as_json: JsonOption = False) -> None:
    """Reject a pending tool call; the agent continues without it.

    Example: runjournal reject RUN_ID.a1
    """
    _decide(approval_id, "reject", None, actor, as_json)


@verbs.command()
def cancel(
    run_id: str,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the log.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a run: at once if no worker holds it, else its worker stops it.

    Example: runjournal cancel RUN_ID --reason "wrong environment"
    """
    with opened() as journal:
        run = journal.cancel(full_run_id(journal, run_id), reason=reason, actor=actor)
        emit(as_json, run.model_dump(mode="json"), lambda: out.print(f"run {run.run_id} is {run.state}"))


@verbs.command()
def recover(as_json: JsonOption = False) -> None:
    """Run startup recovery now (workers also run it when they start).

    Example: runjournal recover --json
    """
    with guarded():
        STATE.setup.workspace()  # a missing workspace is said first
    require_store()  # recovery of a store that does not exist is a mistyped path

    async def go() -> object:
        harness = _harness()
        try:
            return await harness.recover()
        finally:
            await harness.close()

    with guarded():
        report = run_async(go())
    emit(as_json, report.model_dump(mode="json"), lambda: out.print(f"recovered {render.recovery_summary(report)}"))


@verbs.command()
def retry(run_id: str, actor: ActorOption = None, as_json: JsonOption = False) -> None:
    """Submit a new run with the same request as RUN (input, invocation, agent), linked to it (parent_run_id).

    Example: runjournal retry RUN_ID
    """
    with opened() as journal:
        old = journal.get_run(full_run_id(journal, run_id))
        new = journal.submit(
            agent_id=old.agent_id, input=old.input, thread_id=old.thread_id, priority=old.priority,
            actor=actor, parent_run_id=old.run_id, parent_version=old.version, invocation=old.invocation,
            requested_agent_id=old.requested_agent_id, execution_mode=old.execution_mode,
        )
        emit(as_json, new.model_dump(mode="json"),
             lambda: out.print(f"run {new.run_id} retries {old.run_id} (version {old.version}); it is {new.state}"))


@verbs.command()
def quarantine(
    release: Annotated[
        str | None, typer.Option("--release", metavar="RUN", help="Give RUN back to the workers (its events must check).")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs set aside because their stored events failed the check on load; workers skip them.

    One line each: run, version, what failed, when and by whom. Repair the store first
    (restore the run's events from a backup, or delete a forged snapshot), then release it.

    Example: runjournal quarantine --release 3f2a9c1e-0b7d-4c55-9f0e-2d1b7a9e5c11
    """
    if release is not None:
        with opened() as journal:
            row = journal.release(_quarantined_id(journal, release), actor=actor)
            emit(as_json, _quarantine_json(row),
                 lambda: out.print(f"run {render.plain(row.run_id)} released from quarantine; workers may claim it "
                                   "again", markup=False))
        return
    with opened(read_only=True) as journal:
        rows = journal.quarantined()
        emit(as_json, [_quarantine_json(r) for r in rows], lambda: _quarantine_lines(rows))


def _quarantined_id(journal: object, text: str) -> str:
    """The quarantined run ``text`` starts (its events may all be gone: then the rows name it)."""
    held = [r.run_id for r in journal.quarantined()  # type: ignore[attr-defined]
            if r.run_id.replace("-", "").startswith(text.lower().replace("-", ""))]
    return held[0] if len(held) == 1 else text


def _quarantine_json(row: object) -> dict[str, object]:
    from datetime import UTC, datetime

    data = dict(vars(row)) if hasattr(row, "__dict__") else {k: getattr(row, k) for k in row.__slots__}  # type: ignore[attr-defined]
    data["quarantined_at"] = datetime.fromtimestamp(float(data["quarantined_at"]), UTC).isoformat()
    return data


def _quarantine_lines(rows: list) -> None:  # type: ignore[type-arg]
    if not rows:
        out.print("no quarantined runs")
        return
    for row in rows:
        when = _quarantine_json(row)["quarantined_at"]
        version = f"version {row.version}" if row.version is not None else "version ?"
        out.print(render.plain(f"{row.run_id}  {version}  {row.what}  (since {when}, by {row.quarantined_by})"),
                  markup=False)
