"""`runjournal verify`: rows outside the log, a damaged file and edited views are each reported, in clear lines."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from runjournal import Journal

from .conftest import CLI, Result


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err
    return result


def refused(result: Result) -> Result:
    assert result.code == 1, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err + result.out
    assert "ok:" not in result.out
    return result


def _file(cli: CLI) -> Path:
    return cli.cwd / "j.db"


def _approval_of(cli: CLI, run_id: str) -> str:
    with Journal.open(cli.url, read_only=True) as j:
        (approval,) = [a for a in j.approvals() if a.run_id == run_id]
        return approval.approval_id


def test_a_forged_decision_below_rowid_one_fails_verify_and_is_never_applied(populated) -> None:
    cli, _, deploy = populated
    run_id = deploy["run_id"]
    approval_id = _approval_of(cli, run_id)
    ok(cli("export", "--anchors", "--out", "anchors.json"))
    copy = cli.cwd / "copy.db"
    shutil.copy(_file(cli), copy)
    with Journal.open(f"sqlite:///{copy}") as twin:
        version = twin.resolve_approval(approval_id, decision="approve", actor="cfo").version
    with sqlite3.connect(copy) as db:
        row = db.execute("SELECT originator_id, originator_version, topic, state FROM stored_events"
                         " WHERE originator_version = ? AND originator_id = ?",
                         (version, run_id.replace("-", ""))).fetchone()
    with sqlite3.connect(_file(cli)) as db:
        db.execute("INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state)"
                   " VALUES (-5, ?, ?, ?, ?)", row)

    plain, anchored, as_json, status = cli.many(
        ["verify"], ["verify", "--anchors", "anchors.json"], ["verify", "--json"], ["status", run_id, "--json"])
    for result in (plain, anchored):
        refused(result)
        assert f"run {run_id} version {version}: a row is stored at position -5, outside the log" in (
            " ".join(result.out.split()))
    refused(as_json)
    assert as_json.json()["ok"] is False
    assert ok(status).json()["state"] == "waiting_for_approval"  # the loader never applies the forged row


def test_a_clean_store_verifies_with_deep_and_views(populated) -> None:
    cli, _, _ = populated
    plain, deep, views = cli.many(["verify"], ["verify", "--deep"], ["verify", "--views", "--json"])
    assert "ok: every chain verifies" in ok(plain).out and "ok: every chain verifies" in ok(deep).out
    report = ok(views).json()
    assert report["ok"] is True and report["problems"] == [] and report["views_rows_checked"] > 0


def _store_with_events(cli: CLI, runs: int = 60) -> Path:
    with Journal.open(cli.url) as j:
        for i in range(runs):
            j.submit(agent_id="echo", input={"message": f"message {i} " * 8})
            claim = j.claim_next(worker_id="w")
            j.start(claim)
            j.complete(claim, output={"text": "done"})
    path = _file(cli)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _damaged_line(result: Result, path: Path) -> None:
    refused(result)
    lines = [line for line in (result.out + result.err).splitlines() if line.strip()]
    assert len(" ".join(lines).split("error: ")) == 2, lines  # one error
    assert result.message.startswith(f"error: store file {path} is damaged"), result.err
    assert "retry" not in result.message


@pytest.mark.parametrize("where", ["second", "middle", "last"])
def test_a_zeroed_page_is_one_clear_line_and_exit_1(cli, where) -> None:
    path = _store_with_events(cli)
    with sqlite3.connect(path) as db:
        size, count = db.execute("PRAGMA page_size").fetchone()[0], db.execute("PRAGMA page_count").fetchone()[0]
    page = {"second": 1, "middle": count // 2, "last": count - 1}[where]  # 0-based: never the header page
    with path.open("r+b") as f:
        f.seek(size * page)
        f.write(b"\0" * size)
    for result in cli.many(["verify"], ["verify", "--deep"], ["verify", "--json"]):
        _damaged_line(result, path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_file_is_one_clear_line_and_exit_1(cli, keep) -> None:
    path = _store_with_events(cli)
    with path.open("r+b") as f:
        f.truncate(int(path.stat().st_size * keep))
    for result in cli.many(["verify"], ["verify", "--deep"]):
        refused(result)
        assert len([line for line in result.err.splitlines() if line.strip()]) <= 2  # one line, maybe wrapped
        assert "damaged" in result.message or "malformed" in result.message, result.err
        assert "retry" not in result.message


def test_an_edited_approvals_row_fails_verify_views(populated) -> None:
    cli, _, deploy = populated
    approval_id = _approval_of(cli, deploy["run_id"])
    with Journal.open(cli.url) as j:
        j.resolve_approval(approval_id, decision="approve", actor="bob")
        j.catch_up()
        views_file = j.views_path
    ok(cli("verify", "--views"))
    with sqlite3.connect(views_file) as db:
        assert db.execute("UPDATE approvals SET decided_by = 'cfo' WHERE approval_id = ?",
                          (approval_id,)).rowcount == 1
    plain, views = cli.many(["verify"], ["verify", "--views"])
    ok(plain)  # the log itself is intact: the views are derived, never evidence
    refused(views)
    text = " ".join(views.out.split())
    assert f"views: table approvals, approval_id '{approval_id}', column decided_by: the views file has 'cfo', " \
           "the log gives 'bob'" in text


def _edit_byte(db_file: Path, run_id: str, version: int, old: bytes = b"deploy", new: bytes = b"deplo_") -> None:
    """Change bytes of one stored event (no chain is recomputed)."""
    import uuid

    with sqlite3.connect(db_file) as db:
        key = (uuid.UUID(run_id).hex, version)
        (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                              key).fetchone()
        assert old in state
        db.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
                   (state.replace(old, new, 1), *key))


def test_verify_anchors_names_each_problem_once(populated) -> None:
    cli, _, deploy = populated
    ok(cli("export", "--anchors", "--out", "anchors.json"))
    _edit_byte(_file(cli), deploy["run_id"], 1)
    anchored = refused(cli("verify", "--anchors", "anchors.json", "--json"))
    problems = anchored.json()["problems"]
    assert len(problems) == len(set(problems)), problems
    ours = [p for p in problems if deploy["run_id"] in p]
    assert ours == [f"run {deploy['run_id']} version 1: chain mismatch: the stored event was edited, "
                    "or an earlier one was removed"], problems
    assert "log head differs from the anchor: events were removed, added or reordered before it" in problems


def test_the_log_head_covers_the_events_of_a_broken_run(populated) -> None:
    cli, _, deploy = populated
    _edit_byte(_file(cli), deploy["run_id"], 1)  # the run is broken from version 1 on
    ok(cli("export", "--anchors", "--out", "anchors.json"))  # the auditor anchors the store, broken as it is
    assert refused(cli("verify", "--anchors", "anchors.json", "--json")).json()["problems"] == [
        f"run {deploy['run_id']} version 1: chain mismatch: the stored event was edited, or an earlier one was removed"]

    _edit_byte(_file(cli), deploy["run_id"], 3, old=b"worker:", new=b"WORKER:")  # a later event of that run
    problems = refused(cli("verify", "--anchors", "anchors.json", "--json")).json()["problems"]
    assert "log head differs from the anchor: events were removed, added or reordered before it" in problems


@pytest.mark.parametrize(("content", "needle"), [
    ("not json", "not valid JSON"),
    ("[1, 2]", "not an anchors file from `runjournal export --anchors`"),
    ('{"events": 1, "log_head": "00", "runs": {}, "versions": {}}', "log_head: String should match pattern"),
    ('{"events": "11", "log_head": "' + "0" * 64 + '", "runs": {}, "versions": {}}', "events: Input should be a valid integer"),
    ('{"events": 1, "log_head": "' + "0" * 64 + '", "runs": {"r": "' + "a" * 64 + '"}, "versions": {}}',
     "runs and versions must name the same runs; only one of them names r"),
    ('{"events": 1, "log_head": "' + "0" * 64 + '", "runs": {}, "versions": {}, "note": 1}', "note: Extra inputs"),
])
def test_a_wrong_anchors_file_is_one_clear_error(populated, content: str, needle: str) -> None:
    cli, _, _ = populated
    (cli.cwd / "anchors.json").write_text(content)
    result = cli("verify", "--anchors", "anchors.json")
    assert result.code == 1 and "Traceback" not in result.err + result.out, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "anchors.json" in errors[0], result.err
    assert needle in " ".join(result.err.split()), result.err
    assert "broken" not in result.out and "ok:" not in result.out
