"""The ``runjournal`` command: parse, call one method, render. Nothing more.

Global options come first: ``runjournal --store URL --workspace FILE VERB ...``.
Exit codes: 0 ok, 1 a domain error, a store or file that cannot be used, a failed
``verify``, a run that ``run --wait`` saw fail or be cancelled (one line on stderr,
no traceback), 2 usage.

Verbs that only read open the store read-only and refuse one that does not exist;
only the verbs that start work (``run``, ``worker``, ``demo``, ``import``) create one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from . import render

if TYPE_CHECKING:  # imported by the verbs that use them: `--help` and `status` stay quick
    from rich.console import Console

    from ..app.journal import Journal
    from ..bootstrap import Setup


class _Console:
    """A rich ``Console``, made on first use: importing rich costs more than ``--help`` takes.

    It passes on attribute access (``out.print``, ``err.is_terminal``); what rich itself
    holds on to and enters (``Progress``, ``Live``) is given ``real(err)``.
    """

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def made(self) -> Console:
        """The console, made now if it was not yet."""
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # Piped output is for machines and copy-paste: never wrap it at 80 columns.
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True,
                                    width=None if stream.isatty() else 1000)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


out = cast("Console", _Console(stderr=False))
err = cast("Console", _Console(stderr=True))


def real(console: Console) -> Console:
    """The rich ``Console`` behind ``out`` or ``err``, for rich objects that keep and enter one."""
    return console.made() if isinstance(console, _Console) else console

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who does this (default: $RUNJOURNAL_ACTOR, else the OS user).")
]


LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Rows per page.")]
OffsetOption = Annotated[int, typer.Option("--offset", min=0, help="Rows to skip (the next page: --offset LIMIT).")]


def page_note(shown: int, offset: int, total: int) -> None:
    """Say on stderr which rows a table shows, when it is not all of them (stdout stays the table)."""
    if shown < total:
        first = offset + 1 if shown else offset
        err.print(f"rows {first}-{offset + shown} of {total}; the next page: --offset {offset + shown}"
                  if offset + shown < total else f"rows {first}-{offset + shown} of {total}", markup=False)


class Context:
    """What the global options chose, for the one command this process runs."""

    def __init__(self) -> None:
        self._setup: Setup | None = None

    @property
    def setup(self) -> Setup:
        """The command's ``Setup`` (a default one until the global options are parsed)."""
        if self._setup is None:
            from ..bootstrap import Setup

            self._setup = Setup()
        return self._setup

    @setup.setter
    def setup(self, value: Setup) -> None:
        self._setup = value


STATE = Context()


def global_options(
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL (else $RUNJOURNAL_URL, else the workspace's storage.url, "
                     "else sqlite:///.runjournal/journal.db). Example: --store sqlite:///tmp/j.db"),
    ] = None,
    workspace: Annotated[
        str, typer.Option("--workspace", "-w", help="Workspace file (agents, routing, concurrency, ...).")
    ] = "runjournal.yaml",
) -> None:
    """Global options."""
    from ..bootstrap import Setup

    STATE.setup = Setup(store=store, workspace_path=workspace)


class Verbs:
    """A module's verbs: its decorators record them, and ``register`` adds them to an app.

    Recording, not registering, keeps importing a verb module free of effects on
    any app; the one app is built by ``runjournal.cli.build_app``.
    """

    def __init__(self) -> None:
        self._commands: list[tuple[str | None, Callable[..., Any]]] = []
        self._groups: list[tuple[str, typer.Typer]] = []

    def command(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Record a verb (named after the function unless ``name`` is given)."""
        def record(function: Callable[..., Any]) -> Callable[..., Any]:
            self._commands.append((name, function))
            return function

        return record

    def group(self, name: str, group: typer.Typer) -> typer.Typer:
        """Record a group of verbs (``runjournal NAME VERB``)."""
        self._groups.append((name, group))
        return group

    def register(self, app: typer.Typer) -> None:
        """Add the recorded groups and verbs to ``app``."""
        for name, group in self._groups:
            app.add_typer(group, name=name)
        for command_name, function in self._commands:
            app.command(command_name)(function)


def new_app() -> typer.Typer:
    """The bare ``runjournal`` app: its help and its global options, no verbs yet."""
    app = typer.Typer(
        help="runjournal: durable agent runs on an append-only, hash-chained event log.\n\n"
        "Examples:\n\n  runjournal demo\n\n  runjournal init && runjournal run 'deploy to prod' --wait\n\n"
        "  runjournal history RUN_ID --json",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    app.callback()(global_options)
    return app


def fail(error: Exception) -> None:
    """Report an error on stderr and exit 1, without a traceback."""
    err.print(f"error: {render.plain(error)}", markup=False)
    raise typer.Exit(1)


def store_url() -> str:
    """The command's store (decided by ``bootstrap.store_url``)."""
    return STATE.setup.url()


@contextmanager
def guarded() -> Iterator[None]:
    """Turn our errors into exit code 1 with the message on stderr."""
    from ..domain import RunjournalError

    try:
        yield
    except RunjournalError as e:
        fail(e)
    except (KeyError, ValueError) as e:  # bad names for projections etc.
        fail(e)
    except OSError as e:  # a file of the command (not the store: the journal reports that)
        fail(RunjournalError(os_error_message(e)))


def os_error_message(error: OSError) -> str:
    """``FILE: what went wrong`` for a file a command reads or writes."""
    name = error.filename if error.filename is not None else ""
    problem = (error.strerror or str(error)).lower()
    if isinstance(error, FileNotFoundError) and name and not Path(name).parent.exists():
        return f"{name}: folder {Path(name).parent} does not exist (create it first)"
    return f"{name}: {problem}" if name else problem


@contextmanager
def opened(*, read_only: bool = False, create: bool = False) -> Iterator[Journal]:
    """A journal for one command: read-only for verbs that only read; never a new store unless ``create``."""
    from ..app.journal import Journal

    with guarded():
        journal = Journal.open(store_url(), read_only=read_only, create=create and not read_only)
        try:
            yield journal
        finally:
            journal.close()


def full_run_id(journal: Journal, text: str) -> str:
    """The run a verb was given, by its full id or any unique start of it (what tables print)."""
    return journal.resolve_run_id(text)


def full_approval_id(journal: Journal, text: str) -> str:
    """An approval id (``RUN.aN``) whose run part may be any unique start of the run's id."""
    run_part, dot, number = text.rpartition(".a")
    if not dot or not number.isdigit():
        return text  # not an approval id: the journal names it as not found
    from ..domain import ApprovalNotFound, RunNotFound

    try:
        return f"{journal.resolve_run_id(run_part)}.a{number}"
    except RunNotFound:
        raise ApprovalNotFound(text) from None


def require_store() -> None:
    """Refuse a store that does not exist (for verbs that act on what is in it)."""
    from ..adapters.storage.urls import require_store as check

    with guarded():
        check(store_url())


def emit(as_json: bool, value: Any, human: Callable[[], None]) -> None:
    """Print JSON or call the human renderer."""
    if as_json:
        sys.stdout.write(render.dumps(value) + "\n")
    else:
        human()


def parse_json(text: str | None, option: str) -> Any:
    """A JSON option value, or a clear error naming the option."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        from ..domain import InvalidInput

        raise InvalidInput(option, f"not valid JSON: {e.msg} (column {e.colno})") from None


def run_async(coroutine: Any) -> Any:
    """Run a coroutine to completion."""
    import asyncio

    return asyncio.run(coroutine)


@contextmanager
def as_option(field: str, option: str, **more: str) -> Iterator[None]:
    """An error about the library's ``field`` (or a field of ``more``) named as the option the user gave it with."""
    from ..domain import InvalidInput

    options = {field: option, **more}
    try:
        yield
    except InvalidInput as e:
        if e.field not in options:
            raise
        raise InvalidInput(options[e.field], e.problem) from None
