"""The CLI's failure paths, tried as a new user would: one line, no traceback, a trustworthy exit status.

Most commands run in-process through typer's CliRunner (``catch_exceptions=False``: an exception
escaping a verb fails the test); the stores they read are built by the installed script
(``populated``). Every verb is found on the typer app itself, so a new verb is swept too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import eventsourcing.utils
import pytest
import typer
from runjournal.adapters.storage import urls
from runjournal.domain import StoreError, StoreUnavailable
from typer.testing import CliRunner

from runjournal import cli
from runjournal.app import checkpoints
from runjournal.app.journal import Journal
from runjournal.config.workspace import write_example
from runjournal.runtime.harness import Harness

# Verbs that never open a store (verify-proof checks a proof offline), and the ones that may
# create a new store (they start work).
STORELESS = frozenset({"init", "keygen", "verify-proof"})
CREATES = frozenset({"run", "worker", "demo", "import"})
# Options a verb needs before it reaches its store (a usage rule click does not know of).
EXTRA: dict[str, list[str]] = {"replay": ["--at", "1"], "fork": ["--at", "1"]}
# Verbs that read their argument before their store: a file that passes (see workspace_folder).
ARGUMENT_FILES: dict[tuple[str, ...], str] = {("checkpoint", "verify"): "checkpoint.json"}
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/x?connect_timeout=1"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def all_verbs() -> list[tuple[tuple[str, ...], Any]]:
    """(words, click command) for every verb of the app, sub-commands (``projections rebuild``) included."""

    def walk(group: Any, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):
                yield from walk(command, (*prefix, name))
            else:
                yield (*prefix, name), command

    return list(walk(typer.main.get_command(cli.app), ()))


VERBS = all_verbs()
STORE_VERBS = [(words, command) for words, command in VERBS if words[-1] not in STORELESS]  # `checkpoint keygen` too
NON_CREATING = [(words, command) for words, command in STORE_VERBS if words[0] not in CREATES]


def verb_id(verb: tuple[tuple[str, ...], Any]) -> str:
    return " ".join(verb[0])


def arguments(words: tuple[str, ...], command: Any) -> list[str]:
    """The verb with a placeholder for each of its positional arguments (``x``) and its EXTRA options."""
    placeholders = [ARGUMENT_FILES.get(words, "x") for p in command.params if p.param_type_name == "argument"]
    return [*words, *placeholders, *EXTRA.get(words[-1], [])]


def number_options(command: Any) -> list[Any]:
    """The options of a verb that take numbers (``--priority N``, ``--diff A B``)."""

    def takes_numbers(param: Any) -> bool:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        if annotation is None:  # a click parameter without typer's descriptor
            return getattr(getattr(param, "type", None), "name", "") in ("integer", "float")
        kinds = get_args(annotation) if get_origin(annotation) is tuple else (annotation,)
        return bool(kinds) and all(kind in (int, float) for kind in kinds)

    return [p for p in command.params if p.param_type_name == "option" and takes_numbers(p)]


class Outcome:
    """What one in-process command did."""

    def __init__(self, args: Sequence[str], code: int, out: str, err: str) -> None:
        self.args, self.code, self.out, self.err = list(args), code, out, err

    def __repr__(self) -> str:
        return f"runjournal {' '.join(self.args)} -> exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


Invoke = Callable[..., Outcome]


@pytest.fixture
def rj(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Invoke:
    """Run ``runjournal ARGS`` in-process, in ``cwd`` (default tmp_path), without RUNJOURNAL_* from the shell."""
    for key in [k for k in os.environ if k.startswith("RUNJOURNAL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RUNJOURNAL_ACTOR", "tester")

    def invoke(*args: str, cwd: Path | None = None) -> Outcome:
        monkeypatch.chdir(cwd or tmp_path)
        result = CliRunner().invoke(cli.app, list(args), catch_exceptions=False)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return Outcome(args, result.exit_code, result.stdout, result.stderr)

    return invoke


def one_line_error(outcome: Outcome, *needles: str, code: int = 1) -> str:
    """A non-zero exit with exactly one error line (``error: …``, or click's ``Error: …`` for usage)."""
    assert outcome.code == code, outcome
    assert "Traceback" not in outcome.out + outcome.err, outcome
    if code == 2:
        errors = [line for line in outcome.err_lines if line.lower().startswith("error:")]
        assert len(errors) == 1, outcome
        return errors[0]
    assert len(outcome.err_lines) == 1 and outcome.err_lines[0].startswith("error: "), outcome
    for needle in needles:
        assert needle in outcome.err_lines[0], f"{needle!r} not in {outcome.err_lines[0]!r}"
    return outcome.err_lines[0]


def succeeded(outcome: Outcome) -> Outcome:
    assert outcome.code == 0 and "Traceback" not in outcome.err, outcome
    return outcome


def listing(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: (size, mtime in ns, sha256)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_commands(hello: dict[str, Any], deploy: dict[str, Any], html: Path) -> list[list[str]]:
    """One command of every verb that only reads, on the populated store."""
    return [
        ["status", hello["run_id"]], ["threads"], ["queue"], ["approvals", "--all"],
        ["history", deploy["run_id"]], ["replay", hello["run_id"], "--at", "2"],
        ["replay", hello["run_id"], "--diff", "1", "3"], ["export"], ["export", "--anchors"], ["verify"],
        ["timeline", deploy["run_id"], "--html", str(html)],
    ]


# -- every verb: a bad argument ---------------------------------------------------------------------


def test_the_sweep_finds_every_verb() -> None:
    names = {" ".join(words) for words, _ in VERBS}
    assert {"status", "run", "worker", "export", "projections rebuild", "keygen"} <= names
    assert len(names) >= 21
    with_numbers = {" ".join(words) for words, command in VERBS if number_options(command)}
    assert {"run", "export", "replay"} <= with_numbers


@pytest.mark.parametrize("verb", VERBS, ids=verb_id)
def test_every_verb_refuses_an_unknown_option_with_exit_2(rj: Invoke, verb: tuple[tuple[str, ...], Any]) -> None:
    words, command = verb
    line = one_line_error(rj(*arguments(words, command), "--no-such-option"), code=2)
    assert "No such option: --no-such-option" in line


@pytest.mark.parametrize("verb", VERBS, ids=verb_id)
def test_every_verb_refuses_a_number_option_that_is_not_a_number(
    rj: Invoke, verb: tuple[tuple[str, ...], Any]
) -> None:
    words, command = verb
    for option in number_options(command):
        values = ["not-a-number"] * max(1, option.nargs)
        line = one_line_error(rj(*arguments(words, command), option.opts[0], *values), code=2)
        assert "Invalid value" in line and option.opts[0] in line


@pytest.mark.parametrize("verb", [v for v in VERBS if any(p.required for p in v[1].params)], ids=verb_id)
def test_every_verb_refuses_a_missing_argument_with_exit_2(rj: Invoke, verb: tuple[tuple[str, ...], Any]) -> None:
    line = one_line_error(rj(*verb[0]), code=2)
    assert "Missing argument" in line or "Missing option" in line  # `checkpoint keygen` needs --out


# -- every verb: a store it cannot use ----------------------------------------------------------------


@pytest.fixture
def workspace_folder(tmp_path: Path) -> Path:
    """A folder with the example workspace (the verbs that run agents need one), a file named ``x``
    and the ARGUMENT_FILES (a checkpoint of an empty log)."""
    write_example(tmp_path / "runjournal.yaml")
    (tmp_path / "x").write_text("", encoding="utf-8")  # the placeholder argument, as an existing file
    with Journal.open("memory://") as empty:
        (tmp_path / "checkpoint.json").write_bytes(checkpoints.dumps(checkpoints.checkpoint(empty)))
    return tmp_path


@pytest.mark.parametrize("verb", STORE_VERBS, ids=verb_id)
def test_every_verb_on_an_unreachable_postgres_store_is_one_line_and_exit_1(
    rj: Invoke, workspace_folder: Path, verb: tuple[tuple[str, ...], Any]
) -> None:
    outcome = rj("--store", UNREACHABLE_POSTGRES, *arguments(*verb))
    one_line_error(outcome, "cannot open store postgresql://", "127.0.0.1:1/x")


@pytest.mark.parametrize("verb", STORE_VERBS, ids=verb_id)
def test_every_verb_on_a_sqlite_path_under_a_file_is_one_line_and_exit_1(
    rj: Invoke, workspace_folder: Path, verb: tuple[tuple[str, ...], Any]
) -> None:
    """A folder that cannot be made (a file is in the way): unwritable even for root."""
    (workspace_folder / "a-file").write_text("not a folder\n", encoding="utf-8")
    before = listing(workspace_folder)
    outcome = rj("--store", "sqlite:///a-file/j.db", *arguments(*verb))
    one_line_error(outcome, "a-file")
    assert listing(workspace_folder) == before


@pytest.mark.parametrize("verb", NON_CREATING, ids=verb_id)
def test_a_verb_that_starts_no_work_refuses_a_store_that_does_not_exist_and_creates_nothing(
    rj: Invoke, workspace_folder: Path, verb: tuple[tuple[str, ...], Any]
) -> None:
    before = listing(workspace_folder)
    outcome = rj("--store", "sqlite:///typo/jornal.db", *arguments(*verb))
    line = one_line_error(outcome, "sqlite:///typo/jornal.db", "does not exist", "typo/jornal.db",
                          "check the path", "runjournal init")
    assert line.startswith("error: store sqlite:///typo/jornal.db does not exist")
    assert listing(workspace_folder) == before and not (workspace_folder / "typo").exists()


def test_a_new_user_reading_before_anything_was_run_is_told_where_the_store_was_looked_for(rj: Invoke, tmp_path: Path) -> None:
    for args in (["status", "some-run"], ["threads"], ["verify"], ["history", "some-run"], ["approvals"]):
        one_line_error(rj(*args), "sqlite:///.runjournal/journal.db", "does not exist", "runjournal init")
    assert list(tmp_path.iterdir()) == []  # no .runjournal folder, no file


def test_the_verbs_that_start_work_still_create_a_new_store(rj: Invoke, workspace_folder: Path) -> None:
    succeeded(rj("--store", "sqlite:///new/j.db", "run", "hello"))
    assert (workspace_folder / "new" / "j.db").exists()
    queued = succeeded(rj("--store", "sqlite:///new/j.db", "queue", "--json"))
    assert '"state": "queued"' in queued.out


def test_import_of_a_missing_file_creates_no_store(rj: Invoke, tmp_path: Path) -> None:
    one_line_error(rj("--store", "sqlite:///copy.db", "import", "nope.jsonl"), "nope.jsonl: file not found")
    assert not (tmp_path / "copy.db").exists()


# -- stores that are not what they should be ----------------------------------------------------------


def test_a_store_path_that_is_a_text_file_a_folder_or_another_programs_database(rj: Invoke, workspace_folder: Path) -> None:
    (workspace_folder / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (workspace_folder / "folder.db").mkdir()
    other = sqlite3.connect(workspace_folder / "other.db")
    other.execute("CREATE TABLE contacts (name TEXT)")
    other.commit()
    other.close()
    before = listing(workspace_folder)

    for verb in (["queue"], ["status", "x"], ["run", "hello"], ["cancel", "x"]):
        one_line_error(rj("--store", "sqlite:///notes.txt", *verb),
                       "cannot open store sqlite:///notes.txt: notes.txt is not a SQLite database", "check the path")
        one_line_error(rj("--store", "sqlite:///folder.db", *verb), "folder.db is a folder", "check the path")
    for verb in (["queue"], ["history", "x"], ["verify"]):
        one_line_error(rj("--store", "sqlite:///other.db", *verb), "cannot open store sqlite:///other.db",
                       "other.db is a SQLite database but not a runjournal store", "check the path")
    assert listing(workspace_folder) == before


def test_a_postgres_url_without_the_driver_installed_says_what_to_install(
    rj: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("runjournal.adapters.storage.postgres", "eventsourcing.postgres"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(eventsourcing.utils, "_topic_cache", {})  # the factory's topic may be resolved already
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails as if not installed
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    for verb in (["queue"], ["status", "x"]):
        line = one_line_error(rj("--store", "postgresql://u:secret@db.example:5432/rj", *verb),
                              "cannot open store postgresql://***@db.example:5432/rj",
                              "PostgreSQL support is not installed", "pip install 'runjournal[postgres]'")
        assert "secret" not in line


# -- read-only stores ---------------------------------------------------------------------------------


def test_read_verbs_leave_the_store_file_untouched_and_a_read_only_journal_refuses_writes(
    rj: Invoke, populated: Any, tmp_path: Path
) -> None:
    """Works as root too: mode=ro is checked by what it does (and does not) write."""
    cli_, hello, deploy = populated
    store_before = listing(cli_.cwd)
    for args in read_commands(hello, deploy, tmp_path / "t.html"):
        succeeded(rj("--store", cli_.url, *args, cwd=cli_.cwd))
    after = listing(cli_.cwd)
    assert after["j.db"] == store_before["j.db"]  # same size, mtime and bytes: no schema write, no checkpoint
    assert after.get("j.db-wal", (0,))[0] == 0  # a WAL, if SQLite made one for its readers, holds no page

    journal = Journal.open(cli_.url, read_only=True)
    try:
        assert "mode=ro" in journal._store.recorder.datastore.pool.db_name
        with pytest.raises(StoreError, match=r"j\.db is open read-only: nothing was written"):
            journal.submit(agent_id="echo", input={"message": "not written"})
        with pytest.raises(StoreError, match="open read-only"):
            journal.rebuild_index()
        assert journal.get_run(hello["run_id"]).state == "completed"
    finally:
        journal.close()
    assert listing(cli_.cwd)["j.db"] == store_before["j.db"]


def test_a_store_in_a_folder_that_cannot_be_written_is_read_immutable_and_nothing_is_created(
    rj: Invoke, populated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is made to look read-only (os.access says so, even for root): SQLite could not make
    its -shm file there, so the store is opened immutable and the views are kept in memory."""
    cli_, _, deploy = populated
    for leftover in ("j.db-wal", "j.db-shm", "j.views.db"):
        (cli_.cwd / leftover).unlink(missing_ok=True)
    before = listing(cli_.cwd)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode & os.W_OK else real_access(path, mode, **kw))

    assert urls.read_only_uri(cli_.cwd / "j.db").endswith("?immutable=1")
    history = succeeded(rj("--store", cli_.url, "history", deploy["run_id"], "--json", cwd=cli_.cwd))
    assert '"type": "ApprovalRequested"' in history.out
    approvals = succeeded(rj("--store", cli_.url, "approvals", "--json", cwd=cli_.cwd))
    assert deploy["approval_id"] in approvals.out
    succeeded(rj("--store", cli_.url, "verify", cwd=cli_.cwd))
    assert listing(cli_.cwd) == before  # no -wal, no -shm, no views file


def test_write_verbs_on_a_store_that_cannot_be_written_say_so_before_trying(
    rj: Invoke, populated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.access says the file and folder are read-only (as chmod would for a user other than root)."""
    cli_, hello, deploy = populated
    (tmp_path / "runjournal.yaml").write_text((cli_.cwd / "runjournal.yaml").read_text(), encoding="utf-8")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode & os.W_OK else real_access(path, mode, **kw))
    before = listing(cli_.cwd)
    for verb in (["cancel", hello["run_id"]], ["approve", deploy["approval_id"]], ["run", "hello"],
                 ["worker", "--until-idle"], ["recover"], ["projections", "rebuild"]):
        one_line_error(rj("--store", cli_.url, *verb, cwd=tmp_path), f"cannot write to store {cli_.url}",
                       "j.db is read-only", "commands that only read")
    one_line_error(rj("--store", "sqlite:///new.db", "run", "hello", cwd=tmp_path),
                   "cannot create store sqlite:///new.db", "is read-only", "choose another path")
    assert listing(cli_.cwd) == before and not (tmp_path / "new.db").exists()
    succeeded(rj("--store", cli_.url, "history", deploy["run_id"], cwd=tmp_path))  # reading still works


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Callable[[], None]]:
    """A tmpfs under tmp_path (skips where mounting is not allowed); call the result to make it read-only."""
    folder = tmp_path / "mount"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs mount rights): {done.stderr.strip()}")

    def make_read_only() -> None:
        remounted = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True,
                                   check=False)
        assert remounted.returncode == 0, remounted.stderr

    try:
        yield make_read_only
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def test_read_verbs_work_on_a_read_only_mount_and_write_verbs_say_it_is_read_only(
    rj: Invoke, populated: Any, tmp_path: Path, read_only_mount: Callable[[], None]
) -> None:
    cli_, hello, deploy = populated
    store = tmp_path / "mount" / "store"
    shutil.copytree(cli_.cwd, store, ignore=shutil.ignore_patterns("*-wal", "*-shm", "*.views.db"))
    read_only_mount()
    url = f"sqlite:///{store / 'j.db'}"
    before = listing(store)
    for args in read_commands(hello, deploy, tmp_path / "t.html"):
        succeeded(rj("--store", url, *args))
    assert deploy["approval_id"] in succeeded(rj("--store", url, "approvals", "--json")).out
    for verb in (["cancel", deploy["run_id"]], ["retry", hello["run_id"]]):
        one_line_error(rj("--store", url, *verb), f"cannot write to store {url}", "read-only",
                       "commands that only read")
    assert listing(store) == before


@pytest.mark.skipif(IS_ROOT, reason="as root chmod does not stop writes; the read-only mount, mode=ro and immutable tests cover root")
def test_read_verbs_work_on_a_store_file_and_folder_made_read_only(rj: Invoke, populated: Any, tmp_path: Path) -> None:
    cli_, hello, deploy = populated
    for leftover in ("j.db-wal", "j.db-shm", "j.views.db"):
        (cli_.cwd / leftover).unlink(missing_ok=True)
    files = [p for p in cli_.cwd.rglob("*") if p.is_file()]
    for path in files:
        path.chmod(0o444)
    cli_.cwd.chmod(0o555)
    try:
        before = listing(cli_.cwd)
        for args in read_commands(hello, deploy, tmp_path / "t.html"):
            succeeded(rj("--store", cli_.url, *args, cwd=tmp_path))
        assert listing(cli_.cwd) == before
        one_line_error(rj("--store", cli_.url, "cancel", deploy["run_id"], cwd=tmp_path),
                       "cannot write to store sqlite:///", "read-only", "commands that only read")
    finally:
        cli_.cwd.chmod(0o755)
        for path in files:
            path.chmod(0o644)


# -- files a verb writes ------------------------------------------------------------------------------


def test_export_and_timeline_into_a_missing_folder_are_one_line_before_any_work(rj: Invoke, populated: Any) -> None:
    cli_, hello, _ = populated
    before = listing(cli_.cwd)
    export = rj("--store", cli_.url, "export", "--out", "missing/log.jsonl", cwd=cli_.cwd)
    one_line_error(export, "--out", "missing/log.jsonl", "folder missing does not exist", "create it first")
    anchors = rj("--store", cli_.url, "export", "--anchors", "--out", "gone/a.json", cwd=cli_.cwd)
    one_line_error(anchors, "--out", "gone/a.json")
    page = rj("--store", cli_.url, "timeline", hello["run_id"], "--html", "nowhere/t.html", cwd=cli_.cwd)
    one_line_error(page, "--html", "nowhere/t.html", "create it first")
    assert listing(cli_.cwd) == before


def test_export_onto_a_folder_is_one_line(rj: Invoke, populated: Any) -> None:
    cli_, _, _ = populated
    (cli_.cwd / "out").mkdir()
    one_line_error(rj("--store", cli_.url, "export", "--out", "out", cwd=cli_.cwd), "--out", "out is a folder")


# -- run --wait and worker: exit status -----------------------------------------------------------------

FAILING_WORKSPACE = """\
agents:
  boom:
    adapter: scripted
    script:
      - {fail: "no luck today"}
  echo:
    adapter: scripted
    script:
      - {say: hi}
routing:
  default_agent: boom
concurrency:
  store_outage_seconds: 0.3
"""


@pytest.fixture
def failing_folder(tmp_path: Path) -> Path:
    (tmp_path / "runjournal.yaml").write_text(FAILING_WORKSPACE, encoding="utf-8")
    return tmp_path


def test_run_wait_exits_1_when_the_run_failed(rj: Invoke, failing_folder: Path) -> None:
    failed = rj("--store", "sqlite:///j.db", "run", "hello", "--wait")
    line = one_line_error(failed, "failed", "runjournal history")
    assert "failed" in failed.out and "no luck today" in failed.out  # the result, as with any --wait
    as_json = rj("--store", "sqlite:///j.db", "run", "hello", "--wait", "--json")
    one_line_error(as_json, "failed")
    assert '"state": "failed"' in as_json.out
    assert line.split()[2] in rj("--store", "sqlite:///j.db", "threads", "--json").out  # the run id


def test_run_wait_exits_1_when_the_run_was_cancelled(
    rj: Invoke, failing_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Harness.wait

    async def cancelled_first(self: Harness, run_id: str, *args: Any, **kwargs: Any) -> Any:
        self.journal.cancel(run_id, reason="changed my mind", actor="tester")  # as from another shell
        return await original(self, run_id, *args, **kwargs)

    monkeypatch.setattr(Harness, "wait", cancelled_first)
    outcome = rj("--store", "sqlite:///j.db", "run", "hello", "--agent", "echo", "--wait")
    one_line_error(outcome, "was cancelled", "runjournal history")
    assert "cancelled" in outcome.out


def test_run_wait_exits_0_when_the_run_completed(rj: Invoke, failing_folder: Path) -> None:
    outcome = succeeded(rj("--store", "sqlite:///j.db", "run", "hello", "--agent", "echo", "--wait"))
    assert "completed" in outcome.out and outcome.err == ""


def test_a_worker_whose_commits_keep_failing_stops_with_one_line_and_exit_1(
    rj: Invoke, failing_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    succeeded(rj("--store", "sqlite:///j.db", "run", "hello", "--agent", "echo"))

    def refused(self: Journal, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable(self.url, "disk full", detail="database or disk is full")

    monkeypatch.setattr(Journal, "claim_many", refused)
    outcome = rj("--store", "sqlite:///j.db", "worker", "--until-idle")
    one_line_error(outcome, "store sqlite:///j.db is unavailable: disk full", "store_outage_seconds=0.3",
                   "stopped")


def test_write_verbs_still_write_to_a_store_the_read_verbs_opened_read_only(rj: Invoke, populated: Any) -> None:
    cli_, hello, _ = populated
    succeeded(rj("--store", cli_.url, "status", hello["run_id"], cwd=cli_.cwd))
    retried = succeeded(rj("--store", cli_.url, "retry", hello["run_id"], cwd=cli_.cwd))
    assert "retries" in retried.out
    assert "queued" in succeeded(rj("--store", cli_.url, "queue", cwd=cli_.cwd)).out
