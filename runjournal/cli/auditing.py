"""CLI verbs for debugging and audit: history, replay, export, import, verify, projections, timeline, keygen."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from . import outputs, render
from .common import JsonOption, Verbs, emit, err, full_run_id, guarded, opened, out, real

verbs = Verbs()
projections_app = verbs.group("projections", typer.Typer(
    help="Followed views (runs, threads, approvals, recovery_intents, messages, run_facts).\n\n"
    "Example: runjournal projections rebuild threads",
    no_args_is_help=True,
))


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; nothing when piped."""
    if not err.is_terminal or total == 0:
        yield lambda _n: None
        return
    from rich.progress import Progress

    with Progress(console=real(err), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@verbs.command()
def history(run_id: str, as_json: JsonOption = False) -> None:
    """Every event of a run in order: version, time, type, actor, key fields.

    Example: runjournal history 3f2a9c1e-0b7d-4c55-9f0e-2d1b7a9e5c11 --json
    """
    with opened(read_only=True) as journal:
        run_id = full_run_id(journal, run_id)
        events = journal.history(run_id)
        emit(as_json, [e.model_dump(mode="json") for e in events],
             lambda: out.print(render.history_table(run_id, events)))


@verbs.command()
def follow(
    run_id: str,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between looks at the log.")] = 0.25,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, help="Give up after this many seconds (exit 1) if the run has not come to rest.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a run's events as they are appended, until it rests (completed, failed, cancelled or waiting for approval).

    One line per event (with --json, one JSON object per line). Ctrl-C stops following.

    Example: runjournal follow RUN_ID --json
    """
    import time

    from ..domain import RESTING_STATES

    with opened(read_only=True) as journal:
        run_id = full_run_id(journal, run_id)
        shown, started = 0, time.monotonic()
        try:
            while True:
                events = journal.history(run_id)
                for e in events[shown:]:
                    if as_json:
                        sys.stdout.write(render.dumps(e.model_dump(mode="json")) + "\n")
                        sys.stdout.flush()
                    else:
                        out.print(render.event_line(e), markup=False)
                shown = len(events)
                state = journal.get_run(run_id).state
                if state in RESTING_STATES:
                    if not as_json:
                        out.print(f"run {run_id} is {state}", markup=False)
                    return
                if timeout is not None and time.monotonic() - started >= timeout:
                    err.print(f"error: run {run_id} is still {state} after {timeout:g} s", markup=False)
                    raise typer.Exit(1)
                time.sleep(interval)
        except KeyboardInterrupt:
            return


@verbs.command()
def replay(
    run_id: str,
    at: Annotated[int | None, typer.Option("--at", help="Show the run as it was after this version.")] = None,
    diff: Annotated[tuple[int, int] | None, typer.Option("--diff", help="Compare two versions: --diff A B.")] = None,
    agent: Annotated[bool, typer.Option(
        "--agent", help="Run the workspace's agent again against the run's record: every call served from the log, "
        "none made, nothing appended; exit 1 at the first divergence.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild a run as it was at a version, diff two versions, or replay its agent against its record (--agent).

    Example: runjournal replay RUN_ID --at 4      runjournal replay RUN_ID --diff 3 7      runjournal replay RUN_ID --agent
    """
    if diff is None and at is None and not agent:  # a usage error, before the store is opened
        raise typer.BadParameter("give --at VERSION, --diff A B or --agent")
    if agent:
        _replay_agent(run_id, as_json)
        return
    with opened(read_only=True) as journal:
        run_id = full_run_id(journal, run_id)
        if diff is not None:
            a, b = (journal.get_run(run_id, at_version=v).model_dump(mode="json") for v in diff)
            changes = {k: {"from": a[k], "to": b[k]} for k in a if a[k] != b[k]}
            emit(as_json, changes, lambda: render.diff_lines(out, diff, changes))
            return
        assert at is not None
        run = journal.get_run(run_id, at_version=at)
        emit(as_json, run.model_dump(mode="json"), lambda: render.run_panel(out, run, None))


def _replay_agent(run_id: str, as_json: bool) -> None:
    """``replay --agent``: the run's agent, from the workspace, against the run's record."""
    from .common import STATE, run_async

    async def go() -> Any:
        harness = STATE.setup.harness()
        try:
            return await harness.replay(full_run_id(harness.journal, run_id))
        finally:
            await harness.close()

    with guarded():
        report = run_async(go())
    emit(as_json, report.model_dump(mode="json"), lambda: render.replay_lines(out, report))
    if not report.identical:
        raise typer.Exit(1)


@verbs.command()
def export(
    run: Annotated[str | None, typer.Option("--run", help="Only this run's events.")] = None,
    since: Annotated[int, typer.Option("--since", help="Only events after this log position.")] = 0,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout (whole or not at all).")] = None,
    anchors: Annotated[bool, typer.Option("--anchors", help="Write the head of every run and of the log instead.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the --out file if it exists.")] = False,
) -> None:
    """Write the log as JSON Lines (one event per line), or its anchors with --anchors.

    Example: runjournal export > log.jsonl      runjournal export --anchors --out anchors.json
    """
    from ..app import anchors as anchoring
    from ..app import audit

    if out_file is not None:
        with guarded():
            outputs.check_output(out_file, force=force)  # before any work
    with opened(read_only=True) as journal, guarded():
        target = outputs.atomic_output(out_file, force=force) if out_file else contextlib.nullcontext(sys.stdout)
        with target as stream:  # a file appears only once every line is written: an error leaves none
            if anchors:
                stream.write(json.dumps(anchoring.take(journal), sort_keys=True, indent=2) + "\n")
                return
            if run is not None:
                run = full_run_id(journal, run)  # an unknown run is an error, not an empty export
            with progress(journal.max_position() - since, "exporting") as advance:
                for record in audit.export_events(journal, run_id=run, since=since):
                    stream.write(json.dumps(record, sort_keys=True, default=str) + "\n")
                    advance(1)


@verbs.command("import")
def import_(file: Annotated[Path, typer.Argument(help="A file written by `runjournal export`.")]) -> None:
    """Load an export into an empty store (every line is checked before anything is written).

    Example: runjournal --store sqlite:///copy.db import log.jsonl && runjournal --store sqlite:///copy.db verify
    """
    from ..app import audit
    from ..domain import InvalidInput

    with guarded():
        if not file.is_file():  # before the store is opened (and maybe created)
            raise InvalidInput(str(file), "file not found" if not file.exists() else "is a folder, not a file")
        with file.open(encoding="utf-8") as lines:  # a refused file must not leave a new empty store behind
            audit.prove_import(lines, name=str(file))
    with opened(create=True) as journal:
        with file.open(encoding="utf-8") as lines:
            count = audit.import_events(journal, lines)
        out.print(f"imported {count} events; run `runjournal verify` to check them")


# Over 40 lines: the signature is the verb's options, declared once for typer and --help.
@verbs.command()
def verify(
    anchors: Annotated[Path | None, typer.Option("--anchors", help="Also compare with anchors from `export --anchors`.")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Check the store file with SQLite's integrity_check (slower) instead of quick_check.")] = False,
    views: Annotated[bool, typer.Option("--views", help="Also rebuild the followed views from the log in memory and report every row of the views file that differs.")] = False,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Also prove (RFC 9162 consistency proof) that the log extends this checkpoint from `runjournal checkpoint`.")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="With --checkpoint: the PEM public key it must be signed with.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the store file, recompute every hash chain and the log head, and read each run as the loader does.

    Reports rows the log does not list (a row at a position <= 0, a hidden or duplicated row), and, with
    --views, every row of the followed views that the log does not give. Exit 1 naming each broken run and version.

    Example: runjournal verify --anchors anchors.json      runjournal verify --deep --views
             runjournal verify --checkpoint head.json --public-key signer.pub.pem
    """
    from ..app import anchors as anchoring
    from ..app import verification
    from ..domain import StoreError

    with guarded():  # a wrong anchors file is refused before the store is read
        anchored = anchoring.parse(_read_json(anchors), str(anchors)) if anchors is not None else None
    with opened(read_only=True) as journal:
        damage = verification.file_damage(journal, deep=deep)
        if damage:  # one line: nothing read from a damaged file is worth reporting
            raise StoreError(damage)
        with progress(2 * journal.max_position(), "verifying") as advance:
            report = verification.verify_store(
                journal, deep=deep, check_file=False, progress=advance,
                at_versions=anchored.versions if anchored else None, log_head_at=anchored.events if anchored else 0)
        problems = [_problem_line(p) for p in report.problems]
        if anchored is not None:
            problems += anchoring.compare(anchored, report)
        proven = _proven_checkpoint(journal, checkpoint, public_key) if checkpoint is not None else None
        if proven is not None:
            problems += proven.problems
        payload: dict[str, Any] = {"ok": not problems, "runs_checked": report.runs_checked,
                                   "events_checked": report.events_checked, "log_head": report.log_head,
                                   "problems": problems}
        if proven is not None:
            payload["checkpoint"] = proven.as_dict()
        if views:
            problems = _add_views_check(journal, payload)
        emit(as_json, payload, lambda: render.verify_lines(out, payload))
        if problems:
            raise typer.Exit(1)


def _proven_checkpoint(journal: Any, checkpoint: Path, public_key: Path | None) -> Any:
    """The consistency proof of the log against a checkpoint file (signed by ``public_key`` when given)."""
    from ..app import checkpoints

    key = checkpoints.load_public_key(public_key) if public_key is not None else None
    return checkpoints.verify_checkpoint(journal, checkpoint, public_key=key)


def _add_views_check(journal: Any, payload: dict[str, Any]) -> list[str]:
    """Rebuild the views in memory, add every differing row to ``payload``'s problems; returns them all."""
    from ..app.views_check import check_views

    found = check_views(journal)
    payload["views_rows_checked"] = found.rows_checked
    payload["problems"] = problems = payload["problems"] + found.differences
    payload["ok"] = not problems
    return list(problems)


def _problem_line(p: Any) -> str:
    """One verify problem: of a run (and version), or of the store as a whole."""
    if not p.run_id:
        return str(p.problem)
    where = f"run {p.run_id}" if p.version is None else f"run {p.run_id} version {p.version}"
    return f"{where}: {p.problem}"


def _read_json(path: Path) -> Any:
    from ..domain import InvalidInput

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(str(path), "file not found") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(str(path), f"not valid JSON ({e.msg} at line {e.lineno})") from None


@projections_app.command("rebuild")
def rebuild(name: Annotated[str | None, typer.Argument(help="One view; all of them when left out.")] = None) -> None:
    """Rebuild followed views (and the inline queue and leases) from the start of the log.

    Example: runjournal projections rebuild threads
    """
    with opened() as journal:
        names = [name] if name else [n for n in journal.runner.projections if not n.startswith("_")]
        if not name:  # every view from zero: runs refused earlier but since repaired are followed again
            journal.runner.forget_refused()
        for view in names:
            with progress(journal.max_position(), f"rebuilding {view}") as advance:
                count = journal.rebuild(view, progress=advance)
            out.print(f"rebuilt {view} from {count} events")
        if not name:
            out.print(f"rebuilt the inline queue and leases ({journal.rebuild_index()} live runs)")


@verbs.command()
def timeline(
    run_id: Annotated[str | None, typer.Argument(help="The run to draw.")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Draw every run of a thread.")] = None,
    lineage: Annotated[bool, typer.Option("--lineage", help="Draw RUN with every retry and fork of its lineage.")] = False,
    html_file: Annotated[Path, typer.Option("--html", help="Where to write the page.")] = Path("timeline.html"),
    force: Annotated[bool, typer.Option("--force", help="Replace the --html file if it exists.")] = False,
) -> None:
    """Write a self-contained HTML timeline: states as coloured spans, events with their data.

    Each lane names the run a retry or fork came from (--lineage draws the whole tree).

    Example: runjournal timeline RUN_ID --lineage --html out.html
    """
    from ..domain import InvalidInput
    from .timeline import render_timeline

    if not thread and not run_id:  # a usage error, before the store is opened
        raise typer.BadParameter("give a RUN_ID or --thread THREAD")
    with guarded():
        outputs.check_output(html_file, force=force, option="--html")
    with opened(read_only=True) as journal:
        if thread:
            runs = {r.run_id: journal.history(r.run_id) for r in journal.runs(thread_id=thread)}
            if not runs:
                raise InvalidInput("--thread", f"thread {thread} has no runs")
            title = f"thread {thread}"
        else:
            assert run_id is not None
            run_id = full_run_id(journal, run_id)
            members = [n.run_id for n in journal.lineage(run_id).walk()] if lineage else [run_id]
            runs = {member: journal.history(member) for member in members}
            title = f"lineage of run {run_id}" if lineage else f"run {run_id}"
        with guarded(), outputs.atomic_output(html_file, force=force, option="--html") as page:
            page.write(render_timeline(title, runs))
        out.print(f"wrote {html_file} ({sum(len(v) for v in runs.values())} events)")


@verbs.command()
def keygen() -> None:
    """Print a new key for encryption at rest (export it as RUNJOURNAL_CIPHER_KEY).

    Example: export RUNJOURNAL_CIPHER_KEY=$(runjournal keygen)
    """
    with guarded():
        from eventsourcing.cryptography import AESCipher

        out.print(AESCipher.create_key(num_bytes=32))
