"""CLI verbs for debugging a run after the fact: runs (find them by what happened), fork, lineage.

See docs/debugging.md: every example there runs in a test.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import render
from .common import (
    ActorOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    STATE,
    Verbs,
    as_option,
    emit,
    full_run_id,
    guarded,
    opened,
    out,
    page_note,
    parse_json,
    run_async,
)

verbs = Verbs()


# Over 40 lines: the signature is the verb's filters, declared once for typer and --help.
@verbs.command()
def runs(
    state: Annotated[str | None, typer.Option("--state", help="In this state now.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Of this agent.")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="On this thread.")] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Called this tool (recorded a result of it).")] = None,
    approved_by: Annotated[str | None, typer.Option(
        "--approved-by", help="An approval of it was approved (or edited) by WHO.")] = None,
    decision: Annotated[str | None, typer.Option(
        "--decision", help="An approval of it was decided so: approve, reject or edit.")] = None,
    error: Annotated[str | None, typer.Option("--error", help="Its error holds this text (case ignored).")] = None,
    waiting_longer: Annotated[str | None, typer.Option(
        "--waiting-longer", help="Waiting for approval for longer than this: 90s, 30m, 1h, 2d.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Created at or after: 2026-12-04, 2026-12-04T09:30 (UTC unless given), or 2h (ago).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Created before (as --since).")] = None,
    limit: LimitOption = 100,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Find runs by what happened in them, oldest first: every filter given must hold (a page of --limit).

    The filters are answered from indexed views, not by reading every run's log.

    Example: runjournal runs --tool deploy --approved-by alice --since 7d
    """
    from ..app.run_query import parse_duration, parse_moment

    with opened(read_only=True) as journal:
        now = journal.clock.now()
        with guarded():
            try:
                waited = parse_duration(waiting_longer, "--waiting-longer") if waiting_longer else None
                window = [parse_moment(t, o, now) if t else None for t, o in ((since, "--since"), (until, "--until"))]
            except ValueError as e:
                from ..domain import InvalidInput

                option, _, problem = str(e).partition(": ")
                raise InvalidInput(option, problem) from None
        with as_option("state", "--state", decision="--decision", error="--error", agent_id="--agent",
                        thread_id="--thread", approved_by="--approved-by", tool="--tool"):
            page = journal.find_runs(state=state, agent_id=agent, thread_id=thread, tool=tool, approved_by=approved_by,
                                     decision=decision, error=error, waiting_longer=waited, since=window[0],
                                     until=window[1], limit=limit, offset=offset)
        emit(as_json, page.model_dump(mode="json"), lambda: out.print(
            render.found_runs_table(page.runs) if page.runs else "no run matches (see `runjournal runs --help`)"))
        if not as_json:
            page_note(len(page.runs), offset, page.total)


@verbs.command()
def fork(
    run_id: str,
    at: Annotated[int, typer.Option("--at", help="The parent's version to fork from (see `runjournal history`).")],
    input_: Annotated[str | None, typer.Option("--input", help="A new input for the fork, as JSON.")] = None,
    edits: Annotated[str | None, typer.Option(
        "--edits", help="Changes to the parent's input, as a JSON merge patch (null removes a key).")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Thread for the fork (default: a new one).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Work the fork here until it rests.")] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """A new run from RUN as it was at version --at: its recorded tool and model outputs up to there are served, not re-run.

    Its Created names the parent, the version, the parent's chain there and what changed.

    Example: runjournal fork RUN_ID --at 6 --edits '{"env": "staging"}' --wait
    """
    with guarded():
        new_input, patch = parse_json(input_, "--input"), parse_json(edits, "--edits")

    async def go() -> object:
        harness = STATE.setup.harness()
        try:
            parent = full_run_id(harness.journal, run_id)
            agent_id = harness.journal.get_run(parent).agent_id
            if agent_id not in harness.agents:  # nothing here could run it: refuse before appending
                from ..domain import UnknownAgent

                raise UnknownAgent(agent_id, harness.agents)
            run = harness.journal.fork(parent, at_version=at, input=new_input, edits=patch, actor=actor,
                                       thread_id=thread)
            return await harness.wait(run.run_id) if wait else run
        finally:
            await harness.close()

    if wait:
        with guarded(), as_option("at_version", "--at"):
            result = run_async(go())
        emit(as_json, result.model_dump(mode="json"), lambda: render.result_lines(out, result))
        return
    with opened() as journal, as_option("at_version", "--at"):
        parent = full_run_id(journal, run_id)
        new = journal.fork(parent, at_version=at, input=new_input, edits=patch, actor=actor, thread_id=thread)
        emit(as_json, new.model_dump(mode="json"),
             lambda: out.print(f"run {new.run_id} forks {parent} at version {at}; it is {new.state} "
                               "(a worker runs it)"))


@verbs.command()
def lineage(run_id: str, as_json: JsonOption = False) -> None:
    """The tree of retries and forks RUN belongs to, from its first ancestor down.

    Example: runjournal lineage RUN_ID --json
    """
    with opened(read_only=True) as journal:
        run_id = full_run_id(journal, run_id)
        tree = journal.lineage(run_id)
        emit(as_json, tree.model_dump(mode="json"), lambda: render.lineage_lines(out, tree, run_id))
