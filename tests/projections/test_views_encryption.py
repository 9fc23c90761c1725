"""With a cipher key, the views file is no plaintext side door: its payload columns are sealed with the key.

Every file the store and its views write is read as raw bytes and searched for a
secret that went into inputs, outputs, steps, messages, tool arguments, edits,
checkpoints and errors. Without a key the same flow leaves the secret in the
views file (so the search is not vacuous), and with the key every query still
answers with the decrypted values.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.cryptography import AESCipher
from runjournal.projections import (
    ProjectedEvent,
    Projection,
    ProjectionRunner,
    builtin_projections,
    open_views,
)
from runjournal.projections.rows import Row, RowProjection, as_json
from runjournal.projections.sealing import ViewCipher
from sqlite_utils import Database
from typer.testing import CliRunner

from runjournal import Journal
from runjournal.cli import app

SECRET = f"s3cr3t-canary-{uuid4().hex}"
VIEWS = [p.name for p in builtin_projections()]


def new_key() -> str:
    """A key made the way ``runjournal keygen`` makes one."""
    return AESCipher.create_key(num_bytes=32)


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNJOURNAL_CIPHER_KEY", raising=False)
    monkeypatch.delenv("RUNJOURNAL_COMPRESS", raising=False)  # compressed bytes would hide the secret anyway


def drive(j: Journal) -> dict[str, str]:
    """Runs in every state that keeps a payload in some view, each payload carrying the secret."""
    ids: dict[str, str] = {}
    # done: steps, a message, an approval edited then resumed, and an output
    ids["done"] = j.submit(agent_id="deployer", input={"message": f"{SECRET}-input"}, thread_id="ops").run_id
    c = j.claim_next(worker_id="w1")
    j.start(c)
    j.record_step(c, "step", {"note": f"{SECRET}-step"})
    j.record_step(c, "tool_result", {"stdout": f"{SECRET}-tool-result"})
    j.record_step(c, "message", {"text": f"{SECRET}-message"})
    ids["done_approval"] = j.request_approval(
        c, tool_name="deploy", tool_args={"env": f"{SECRET}-args"}, content=f"{SECRET}-reason",
        checkpoint_ref=f"{SECRET}-checkpoint",
    )
    j.resolve_approval(ids["done_approval"], decision="edit", edits={"env": f"{SECRET}-edit"}, actor="alice")
    c = j.claim_next(worker_id="w1")
    j.start(c)  # Resumed
    j.complete(c, output={"text": f"{SECRET}-output"})
    # waiting: a pending approval (recovery keeps its checkpoint)
    ids["waiting"] = j.submit(agent_id="deployer", input={"message": f"{SECRET}-input-2"}, thread_id="ops").run_id
    c = j.claim_next(worker_id="w1")
    j.start(c)
    ids["pending_approval"] = j.request_approval(
        c, tool_name="deploy", tool_args={"env": f"{SECRET}-args-2"}, checkpoint_ref=f"{SECRET}-checkpoint-2"
    )
    # failed and cancelled
    ids["failed"] = j.submit(agent_id="echo", input={"message": f"{SECRET}-input-4"}).run_id
    c = j.claim_next(worker_id="w1")
    j.start(c)
    j.fail(c, error=f"{SECRET}-error")
    ids["cancelled"] = j.submit(agent_id="echo", input={"message": f"{SECRET}-input-5"}).run_id
    j.cancel(ids["cancelled"], reason=f"{SECRET}-cancel", actor="carol")
    # resuming: decided, not resumed (recovery keeps the decision); last, or the next claim would take it
    ids["resuming"] = j.submit(agent_id="deployer", input={"message": f"{SECRET}-input-3"}).run_id
    c = j.claim_next(worker_id="w1")
    j.start(c)
    ids["resuming_approval"] = j.request_approval(c, tool_name="deploy", tool_args={"env": f"{SECRET}-args-3"})
    j.resolve_approval(ids["resuming_approval"], decision="edit", edits={"env": f"{SECRET}-edit-3"}, actor="bob")
    assert j.catch_up() > 0
    return ids


def files_with_secret(folder: Path) -> list[str]:
    """Every file under ``folder`` whose raw bytes hold the secret."""
    return sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes())


def all_views(j: Journal) -> dict[str, Any]:
    """Every built-in view as its query method answers it."""
    return {
        "runs": j.runs(), "threads": j.threads(), "approvals": j.approvals(),
        "recovery_intents": j.recovery_intents(),
        "messages": {t.thread_id: j.messages(t.thread_id) for t in j.threads()},
    }


def test_with_a_key_no_file_of_the_store_or_its_views_holds_the_secret(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}") as j:
        drive(j)
        assert Path(j.views_path).parent == tmp_path
        assert (tmp_path / "journal.views.db-wal").exists()
        assert files_with_secret(tmp_path) == []  # the write-ahead logs too, while they hold the pages
    assert files_with_secret(tmp_path) == []


def test_without_a_key_the_views_hold_the_secret(tmp_path) -> None:
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}") as j:
        drive(j)
    assert "journal.views.db" in files_with_secret(tmp_path)  # plaintext views stay as they were
    with sqlite3.connect(tmp_path / "journal.views.db") as db:
        assert db.execute("SELECT content FROM messages ORDER BY position").fetchone()[0] == f"{SECRET}-input"


def test_with_a_key_the_queries_answer_the_decrypted_values(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with Journal.open(url) as j:
        ids = drive(j)
    with Journal.open(url) as j:
        runs = {r.run_id: r for r in j.runs()}
        assert runs[ids["done"]].output == {"text": f"{SECRET}-output"}
        assert runs[ids["failed"]].error == f"{SECRET}-error"
        approvals = {a.approval_id: a for a in j.approvals()}
        done = approvals[ids["done_approval"]]
        assert (done.status, done.tool_args, done.edits, done.edited_args, done.checkpoint_ref) == (
            "edited", {"env": f"{SECRET}-args"}, {"env": f"{SECRET}-edit"}, {"env": f"{SECRET}-edit"},
            f"{SECRET}-checkpoint",
        )
        assert [a.approval_id for a in j.pending_approvals()] == [ids["pending_approval"]]  # filters still work
        intents = {i.run_id: i for i in j.recovery_intents()}
        assert intents[ids["waiting"]].checkpoint_ref == f"{SECRET}-checkpoint-2"
        assert intents[ids["resuming"]].resume_payload["edits"] == {"env": f"{SECRET}-edit-3"}
        assert [m.content for m in j.messages("ops")] == [
            f"{SECRET}-input", f"{SECRET}-message", f"{SECRET}-output", f"{SECRET}-input-2"
        ]
        assert j.thread("ops").message_count == 4
        assert [r.run_id for r in j.runs(state="failed")] == [ids["failed"]]
        assert files_with_secret(tmp_path) == []


def test_with_a_key_the_cli_shows_the_decrypted_values(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with Journal.open(url) as j:
        ids = drive(j)
    monkeypatch.setenv("RUNJOURNAL_URL", url)
    cli = CliRunner()
    shown = cli.invoke(app, ["approvals", "--all", "--json"])
    assert shown.exit_code == 0, shown.output
    by_id = {a["approval_id"]: a for a in json.loads(shown.output)}
    assert by_id[ids["done_approval"]]["edited_args"] == {"env": f"{SECRET}-edit"}
    assert by_id[ids["pending_approval"]]["tool_args"] == {"env": f"{SECRET}-args-2"}
    threads = cli.invoke(app, ["threads", "--json"])
    assert threads.exit_code == 0, threads.output
    assert {t["thread_id"]: t["message_count"] for t in json.loads(threads.output)}["ops"] == 4
    table = cli.invoke(app, ["approvals", "--all"], terminal_width=400)
    assert table.exit_code == 0, table.output
    assert '{"env": "s3cr3t-canary-' in table.output  # the human table shortens long arguments
    assert files_with_secret(tmp_path) == []


def test_with_a_key_a_rebuild_answers_as_the_incremental_views(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}") as j:
        j.page_size = 3  # many pages: rows are loaded (decrypted) and stored (encrypted) again and again
        drive(j)
        incremental = all_views(j)
        j.page_size = 1000
        for name in VIEWS:
            j.rebuild(name)
        assert all_views(j) == incremental
        assert files_with_secret(tmp_path) == []


def test_a_sealed_views_file_opened_without_its_key_is_rebuilt_not_read(tmp_path, monkeypatch) -> None:
    views = str(tmp_path / "shared.views.db")
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    with Journal.open(f"sqlite:///{tmp_path / 'sealed.db'}", views_path=views) as j:
        drive(j)
    for key in (None, new_key()):  # no key, then a wrong one
        if key is None:
            monkeypatch.delenv("RUNJOURNAL_CIPHER_KEY")
        else:
            monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", key)
        with Journal.open(f"sqlite:///{tmp_path / f'other-{key is None}.db'}", views_path=views) as other:
            run = other.submit(agent_id="echo", input={"message": "hello"})
            assert [r.run_id for r in other.runs()] == [run.run_id]  # the other store's runs, no garbage
            assert [m.content for m in other.messages(run.thread_id)] == ["hello"]
    # a runner without the key wipes what the last key wrote, rather than read it
    runner = ProjectionRunner(open_views(views), lambda start: iter(()))
    try:
        assert runner.wiped
        assert set(runner.db.table_names()) == {"_projection_tracking", "_run_index", "_refused_runs"}
        assert runner.db.execute("SELECT COUNT(*) FROM _run_index").fetchone()[0] == 0
    finally:
        runner.close()
    assert files_with_secret(tmp_path) == []


def test_a_plaintext_views_file_opened_with_a_key_is_wiped_and_rebuilt_sealed(tmp_path, monkeypatch) -> None:
    views = str(tmp_path / "shared.views.db")
    with Journal.open(f"sqlite:///{tmp_path / 'plain.db'}", views_path=views) as j:
        drive(j)
    assert files_with_secret(tmp_path) == ["plain.db", "shared.views.db"]
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    with Journal.open(f"sqlite:///{tmp_path / 'sealed.db'}", views_path=views) as j:
        ids = drive(j)
        assert {r.run_id for r in j.runs()} == {ids[k] for k in ("done", "waiting", "resuming", "failed", "cancelled")}
    assert files_with_secret(tmp_path) == ["plain.db"]  # the old plaintext pages were vacuumed away


class Outputs(RowProjection):
    """A user's row projection that seals its payload column by naming it."""

    name = "outputs"
    pk = "run_id"
    columns = {"run_id": str, "output": str}  # noqa: RUF012
    sealed = ("output",)

    def key(self, e: ProjectedEvent) -> str | None:
        return e.run_id if e.type == "Completed" else None

    def creates(self, e: ProjectedEvent) -> bool:
        return True

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row:
        return {"run_id": e.run_id, "output": as_json(e.data["output"])}


class Inputs(Projection):
    """A user's plain projection that seals a column with the helper."""

    name = "inputs"

    def setup(self, db: Database) -> None:
        db["inputs"].create({"run_id": str, "input": str}, pk="run_id", if_not_exists=True)  # type: ignore[union-attr]

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        if event.type == "Created":
            db["inputs"].insert({"run_id": event.run_id, "input": self.cipher.seal(as_json(event.data["input"]))})  # type: ignore[union-attr]


def test_a_custom_projection_can_seal_its_columns_with_the_same_key(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", new_key())
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}") as j:
        j.add_projection(Outputs())
        j.add_projection(Inputs())
        ids = drive(j)
        unseal = j.runner.cipher.unseal
        outputs = {r["run_id"]: json.loads(unseal(r["output"])) for r in j.runner.db["outputs"].rows}
        inputs = {r["run_id"]: json.loads(unseal(r["input"])) for r in j.runner.db["inputs"].rows}
        assert outputs == {ids["done"]: {"text": f"{SECRET}-output"}}
        assert inputs[ids["failed"]] == {"message": f"{SECRET}-input-4"}
        assert files_with_secret(tmp_path) == []


def test_the_view_cipher_seals_text_and_passes_it_through_without_a_key() -> None:
    plain = ViewCipher()
    assert not plain.enabled and plain.seal("x") == "x" and plain.unseal("x") == "x"
    sealed = ViewCipher(AESCipher({"CIPHER_KEY": new_key()}))  # type: ignore[arg-type]
    box = sealed.seal(SECRET)
    assert isinstance(box, bytes) and SECRET.encode() not in box
    assert sealed.unseal(box) == SECRET
    assert sealed.seal(None) is None and sealed.unseal(None) is None
