"""The ``runjournal`` command: parse, call one journal method, render. Nothing more."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from . import render
from .domain import RunjournalError
from .journal import Journal

app = typer.Typer(
    help="runjournal: durable agent runs on an append-only event log.\n\n"
    "Example: runjournal demo && runjournal verify",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (else $RUNJOURNAL_URL, else sqlite:///.runjournal/journal.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@contextmanager
def opened(store: str | None) -> Iterator[Journal]:
    """A journal for one command; domain errors become exit code 1 with the message on stderr."""
    try:
        journal = Journal.open(store)
    except RunjournalError as e:
        fail(e)
    try:
        yield journal
    except RunjournalError as e:
        fail(e)
    finally:
        journal.close()


def fail(error: RunjournalError) -> None:
    """Report a domain error and exit 1, without a traceback."""
    err.print(f"[red]error[/red]: {error}", highlight=False)
    raise typer.Exit(1)


def emit(as_json: bool, value: Any, human: Callable[[], None]) -> None:
    """Print JSON or call the human renderer."""
    if as_json:
        sys.stdout.write(render.dumps(value) + "\n")
    else:
        human()


@app.command()
def demo(store: StoreOption = None) -> None:
    """Run a short guided tour on the embedded SQLite store and leave it for inspection.

    Example: runjournal demo
    """
    from .demo import run_demo

    with opened(store) as journal:
        run_demo(journal, out)


@app.command()
def status(run_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Show a run's current state.

    Example: runjournal status 3f2a9c1e-...
    """
    with opened(store) as journal:
        run = journal.get_run(run_id)
        emit(as_json, run.model_dump(mode="json"), lambda: render.run_panel(out, run))


@app.command()
def history(run_id: str, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Print every event of a run, in order.

    Example: runjournal history 3f2a9c1e-... --json
    """
    with opened(store) as journal:
        events = journal.history(run_id)
        emit(as_json, [e.model_dump(mode="json") for e in events],
             lambda: out.print(render.history_table(run_id, events)))


@app.command()
def queue(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """List claimable runs in claim order (priority, then age).

    Example: runjournal queue --json
    """
    with opened(store) as journal:
        rows = journal.queue()
        payload = [{"position": i, "run_id": r.run_id, "priority": r.priority, "state": r.state}
                   for i, r in enumerate(rows, start=1)]
        emit(as_json, payload, lambda: [out.print(f"#{p['position']} {p['run_id']} priority {p['priority']} "
                                                  f"{p['state']}") for p in payload] or out.print("queue is empty"))


@app.command()
def verify(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Recompute every hash chain; exit 1 naming the first broken run and version.

    Example: runjournal verify
    """
    with opened(store) as journal:
        report = journal.verify()
        emit(as_json, report.model_dump(mode="json", exclude={"heads"}),
             lambda: [out.print(line) for line in render.verify_lines(report)])
        if not report.ok:
            raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
