"""What a command imports: ``--help`` and the read verbs start without the harness, asyncio or structlog.

Each command is a whole process, so what it imports is most of what it costs
(``python -m bench.cli`` times them; no test here measures time). These tests
run the command in a fresh interpreter and check which modules it loaded, so a
module-level import that drags the harness into ``status`` fails here, with the
chain of imports that brought it in.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .conftest import CLI

# Run in a fresh interpreter: import the CLI (and run it with ARGS, if any), then report the modules loaded.
PROBE = """
import json, sys
report, argv = sys.argv[1], sys.argv[2:]
import runjournal.cli
if argv:
    sys.argv = ["runjournal", *argv]
    try:
        runjournal.cli.main()
    except SystemExit as stop:
        assert not stop.code, f"runjournal {argv} exited {stop.code}"
with open(report, "w") as file:
    json.dump(sorted(sys.modules), file)
"""
# Never loaded by a command that only reads: they belong to the verbs that run work, or log it.
NOT_FOR_READING = ("runjournal.runtime", "runjournal.adapters.agents", "asyncio", "structlog", "rich.progress",
                   "runjournal.app.checkpoints", "runjournal.app.audit", "runjournal.app.verification")
# Nor by --help, which needs typer and nothing of the journal (``main`` sets up logging: ``app.logs`` is allowed).
NOT_FOR_HELP = (*NOT_FOR_READING, "runjournal.app", "runjournal.domain", "runjournal.config", "runjournal.bootstrap",
                "eventsourcing", "pydantic", "sqlite_utils", "rich", "yaml")
ALLOWED = {"runjournal.app", "runjournal.app.logs"}


def loaded(cli: CLI, *args: str) -> tuple[set[str], str]:
    """The modules a fresh ``runjournal ARGS`` loaded (just importing the CLI when no ARGS), and -X importtime's log."""
    report = cli.cwd / "modules.json"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, str(report), *args], cwd=cli.cwd,
                          env=cli.env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(report.read_text())), done.stderr


def chain(importtime: str, module: str) -> str:
    """Who imported ``module``: ``asyncio <- runjournal.runtime.harness <- ...``, from -X importtime's log."""
    rows = [(len(m[1]) // 2, m[2]) for m in re.finditer(r"^import time:[^|]*\|[^|]*\|( *)(\S+)$", importtime, re.M)]
    for at, (depth, name) in enumerate(rows):
        if name == module:
            names = [name]
            for later_depth, later in rows[at + 1:]:  # a module is listed after what it imported
                if later_depth < depth:
                    names.append(later)
                    depth = later_depth
            return " <- ".join(names)
    return module


def assert_not_loaded(modules: set[str], importtime: str, forbidden: Sequence[str], what: str) -> None:
    found = sorted(m for m in modules - ALLOWED if any(m == f or m.startswith(f + ".") for f in forbidden))
    roots = sorted({m for m in found if not any(m.startswith(other + ".") for other in found)})
    assert not roots, f"{what} loaded:\n" + "\n".join(chain(importtime, m) for m in roots)


def test_importing_the_cli_loads_typer_and_nothing_of_the_journal(cli: CLI) -> None:
    modules, importtime = loaded(cli)
    assert "typer" in modules and "runjournal.cli.running" in modules
    assert_not_loaded(modules, importtime, NOT_FOR_HELP, "importing runjournal.cli")


def test_help_loads_nothing_of_the_journal(cli: CLI) -> None:
    modules, importtime = loaded(cli, "--help")
    assert_not_loaded(modules, importtime, NOT_FOR_HELP, "runjournal --help")


def test_status_and_history_load_no_harness_no_asyncio_no_structlog(populated: tuple[CLI, Any, Any]) -> None:
    cli, hello, _ = populated
    for verb in ("status", "history"):
        modules, importtime = loaded(cli, verb, hello["run_id"])
        assert "runjournal.app.journal" in modules  # it did open the store
        # The store comes from $RUNJOURNAL_URL here, so the workspace file is not even parsed.
        assert_not_loaded(modules, importtime, (*NOT_FOR_READING, "runjournal.config.workspace", "yaml"),
                          f"runjournal {verb}")


def test_a_logger_imports_structlog_only_for_a_record_it_emits(tmp_path: Path) -> None:
    program = """
import logging, sys
from runjournal.app import logs
log = logs.logger("runjournal.startup")
log.info("dropped", n=1)  # the host has not enabled info: nothing to render
assert logs.is_enabled(log, logging.WARNING) and not logs.is_enabled(log, logging.INFO)
assert "structlog" not in sys.modules, "a dropped record imported structlog"
logging.basicConfig(level=logging.INFO, format="%(message)s")
log.info("kept", n=2)
assert "structlog" in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip())
    assert (line["event"], line["n"], line["level"]) == ("kept", 2, "info") and line["timestamp"]


def on_a_terminal(cli: CLI, *args: str) -> tuple[int, str]:
    """``runjournal ARGS`` with stdout and stderr on a pseudo-terminal: exit code and what it drew."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(Path(sys.executable).parent / "runjournal"), *args], cwd=cli.cwd,
                               env={**cli.env, "COLUMNS": "100"}, stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=follower)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command has exited
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return process.wait(timeout=60), drawn.decode(errors="replace")


def test_on_a_terminal_the_consoles_made_on_first_use_draw_progress_and_colour(populated: tuple[CLI, Any, Any]) -> None:
    cli, hello, _ = populated
    code, drawn = on_a_terminal(cli, "export", "--out", "log.jsonl")
    assert code == 0 and "exporting" in drawn, drawn
    assert len((cli.cwd / "log.jsonl").read_text().splitlines()) >= 5
    code, drawn = on_a_terminal(cli, "verify")
    assert code == 0 and "every chain verifies" in drawn, drawn
    code, drawn = on_a_terminal(cli, "status", hello["run_id"])
    assert code == 0 and "completed" in drawn and "\x1b[" in drawn, drawn  # the state is coloured on a terminal


def test_the_composition_root_spells_the_default_workspace_file_as_the_parser_does() -> None:
    # bootstrap keeps its own copy so that choosing a store does not import the workspace parser.
    from runjournal import bootstrap
    from runjournal.config import workspace

    assert bootstrap.DEFAULT_FILENAME == workspace.DEFAULT_FILENAME


def test_status_and_history_read_the_log_without_loading_the_views_library(populated: tuple[CLI, Any, Any]) -> None:
    """The followed views' library is imported where the views are opened; status and history never open them."""
    cli, hello, _ = populated
    for verb in ("status", "history"):
        modules, importtime = loaded(cli, verb, hello["run_id"])
        assert "runjournal.app.journal" in modules
        assert_not_loaded(modules, importtime, ("sqlite_utils",), f"runjournal {verb}")
