"""The installed ``runjournal`` command, run in subprocesses against temporary SQLite stores.

Every verb is driven here: its human output, its ``--json`` output and its exit code
(0 ok, 1 domain error with one ``error: ...`` message on stderr and no traceback, 2 usage).
Independent commands run at once (``cli.many``) to keep the file quick.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import CLI, RUNJOURNAL, Result

VERBS = ("init", "demo", "run", "worker", "status", "threads", "queue", "approvals", "approve", "reject",
         "cancel", "recover", "retry", "history", "replay", "export", "import", "verify", "timeline", "keygen")
RUN_KEYS = {"run_id", "thread_id", "agent_id", "state", "version", "epoch", "priority", "input", "output",
            "error", "pending_approval", "parent_run_id", "parent_version", "created_by", "worker_id"}
RESULT_KEYS = {"run_id", "thread_id", "agent_id", "state", "output", "error", "approval_id"}
APPROVAL_KEYS = {"approval_id", "run_id", "tool_name", "tool_args", "status", "decided_by", "edited_args"}
EVENT_KEYS = {"run_id", "version", "type", "timestamp", "actor", "data", "chain"}
EXPORT_KEYS = {"position", "run_id", "version", "topic", "type", "timestamp", "actor", "data", "chain"}
VERIFY_KEYS = {"ok", "runs_checked", "events_checked", "log_head", "problems"}


def ok(result: Result) -> Result:
    """The result, after checking it exited 0 without a traceback."""
    assert result.code == 0, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err
    return result


def domain_error(result: Result, *needles: str) -> str:
    """Exit 1 with one ``error:`` message naming every needle, no traceback; returns the message.

    The message is compared with its whitespace collapsed: the CLI prints it through rich,
    which wraps it at 80 columns when stderr is not a terminal, so a long message arrives on
    two lines. (A known bug; "exactly one line" is asserted only for short messages.)
    """
    assert result.code == 1, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err, result.err
    assert result.err.startswith("error: ") and result.err.count("error:") == 1, result.err
    for needle in needles:
        assert needle in result.message, f"{needle!r} not in {result.message!r}"
    return result.message


def usage_error(result: Result) -> None:
    """Exit 2 with click's usage message, no traceback."""
    assert result.code == 2, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert "Traceback" not in result.err
    assert "Usage:" in result.err + result.out


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- help and usage --------------------------------------------------------------------------------


def test_the_script_is_installed_next_to_the_interpreter() -> None:
    assert RUNJOURNAL.exists(), f"{RUNJOURNAL} is missing: pip install -e '.[test]'"


def test_help_for_the_command_and_every_verb_exits_0_and_shows_an_example(cli: CLI) -> None:
    commands = [["--help"], *([verb, "--help"] for verb in VERBS), ["projections", "rebuild", "--help"]]
    results = cli.many(*commands)
    for command, result in zip(commands, results, strict=True):
        ok(result)
        assert "example" in result.out.lower(), f"runjournal {' '.join(command)} shows no example"
    main_help = results[0].out
    for verb in (*VERBS, "projections"):
        assert re.search(rf"^\s+{verb}\s", main_help, re.M), f"{verb} missing from runjournal --help"


def test_usage_errors_exit_2(cli: CLI) -> None:
    unknown, missing, no_version = cli.many(["frobnicate"], ["status"], ["replay", "some-run"])
    for result in (unknown, missing, no_version):
        usage_error(result)
    assert "No such command 'frobnicate'" in unknown.err
    assert "Missing argument 'run_id'" in missing.err
    assert "give --at VERSION, --diff A B or --agent" in no_version.message


# -- init and the workspace file -------------------------------------------------------------------


def test_init_writes_the_example_workspace_and_refuses_to_overwrite_it(cli: CLI) -> None:
    first = ok(cli("init"))
    assert "wrote runjournal.yaml" in first.out
    workspace = cli.cwd / "runjournal.yaml"
    text = workspace.read_text()
    assert "agents:" in text and "deployer:" in text and "default_agent: echo" in text

    workspace.write_text(text + "# my edit\n")
    assert domain_error(cli("init")) == (
        "error: runjournal.yaml: already exists (run `runjournal init --force` to overwrite it)")
    assert workspace.read_text().endswith("# my edit\n")
    ok(cli("init", "--force"))
    assert workspace.read_text() == text


def test_commands_needing_a_workspace_say_so_when_it_is_missing(cli: CLI) -> None:
    run, other = cli.many(["run", "hello"], ["-w", "other.yaml", "worker", "--until-idle"])
    assert domain_error(run) == "error: runjournal.yaml: file not found (create one with `runjournal init`)"
    assert domain_error(other) == "error: other.yaml: file not found (create one with `runjournal init`)"


def test_a_broken_workspace_file_is_reported_with_its_file_and_line(cli: CLI) -> None:
    agents = "agents:\n  echo:\n    adapter: scripted\n    script:\n      - {say: hi}\n"
    (cli.cwd / "runjournal.yaml").write_text(agents + "concurrency:\n  max_concurrent_runs: -1\n")
    (cli.cwd / "syntax.yaml").write_text("agents:\n  echo: [\n")
    bad_value, syntax = cli.many(["run", "hello"], ["-w", "syntax.yaml", "worker", "--until-idle"])
    assert domain_error(bad_value) == (
        "error: runjournal.yaml:7: concurrency.max_concurrent_runs: must be >= 0 (got -1)")
    assert domain_error(syntax) == (
        "error: syntax.yaml:3: invalid YAML: expected the node content, but found '<stream end>'")


# -- stores ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def unreachable_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """A command on an unreachable PostgreSQL store, started with the module: it fails only after
    its 5 s connect timeout, which the other tests use meanwhile."""
    folder = tmp_path_factory.mktemp("unreachable")
    process = CLI(folder, None).start("--store", "postgresql://nobody@127.0.0.1:1/nope", "queue")
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_an_unreachable_or_unsupported_store_is_one_clear_message(cli: CLI, unreachable_store) -> None:
    unsupported = cli("--store", "mysql://x", "queue")
    domain_error(unsupported, "unsupported store URL 'mysql://x'; accepted: memory://, sqlite:///", "postgresql://")
    domain_error(cli.wait(unreachable_store), "cannot open store postgresql://", "127.0.0.1:1/nope")


# -- demo --------------------------------------------------------------------------------------------


def test_demo_leaves_a_journal_the_other_commands_read(cli: CLI) -> None:
    default_store = {"RUNJOURNAL_URL": None}  # the default store: .runjournal/journal.db in the cwd
    demo = ok(cli("demo", env=default_store))
    assert "runjournal demo on sqlite:///.runjournal/journal.db" in demo.out
    assert "approving" in demo.out and "Next: runjournal history" in demo.out
    assert (cli.cwd / ".runjournal" / "journal.db").exists()

    assert re.search(r"^verify: \d+ events of 5 runs, every chain verifies$", demo.out, re.M)

    (approval,) = ok(cli("approvals", "--all", "--json", env=default_store)).json()
    assert APPROVAL_KEYS <= approval.keys()
    assert (approval["status"], approval["decided_by"], approval["tool_name"]) == ("approved", "demo", "deploy")


# -- running, approvals, workers (on a copy of a store with a completed echo run and a deploy run
#    waiting for approval, both made by `run ... --wait`) ---------------------------------------------


def test_run_wait_routes_deploy_to_the_deployer_which_waits_for_approval(populated) -> None:
    _, hello, deploy = populated
    assert hello.keys() == deploy.keys() == RESULT_KEYS  # `run --wait --json`
    assert (hello["agent_id"], hello["state"], hello["output"]) == ("echo", "completed", {"text": "Hello from echo"})
    assert (deploy["agent_id"], deploy["state"]) == ("deployer", "waiting_for_approval")
    assert deploy["approval_id"] == f"{deploy['run_id']}.a1"


def test_run_records_the_request_as_asked_and_refuses_a_bad_envelope_appending_nothing(populated) -> None:
    cli, _, _ = populated
    run = ok(cli("run", "hello", "--agent", "auto", "--context", '{"ticket": "CHG-7"}', "--inputs", '{"n": 1}',
                 "--attachment", '{"uri": "s3://b/k"}', "--attachment", '"notes.txt"', "--json")).json()
    created, queued = ok(cli("history", run["run_id"], "--json")).json()
    assert (created["data"]["requested_agent_id"], created["data"]["agent_id"], created["data"]["execution_mode"]) == (
        "auto", "echo", "scripted")
    assert queued["type"] == "Queued" and created["data"]["invocation"] == {"context": {"ticket": "CHG-7"}, "inputs": {"n": 1},
                                             "attachments": [{"uri": "s3://b/k"}, "notes.txt"]}
    shown = ok(cli("status", run["run_id"])).out
    assert "echo (routed; scripted)" in shown and '"ticket": "CHG-7"' in shown
    again = ok(cli("retry", run["run_id"], "--json")).json()
    assert (again["invocation"], again["requested_agent_id"], again["parent_run_id"]) == (
        created["data"]["invocation"], "auto", run["run_id"])
    named = ok(cli("run", "hello", "--agent", "echo", "--json")).json()
    assert ok(cli("history", named["run_id"], "--json")).json()[0]["data"]["requested_agent_id"] == "echo"

    before = ok(cli("export")).out
    domain_error(cli("run", "hello", "--context", "{oops"), "--context", "not valid JSON")
    domain_error(cli("run", "hello", "--attachment", "bare words"), "--attachment", "not valid JSON")
    domain_error(cli("run", "hello", "--inputs", "[1, 2]"), "invocation.inputs", "dictionary")
    domain_error(cli("run", "hello", "--agent", "nobody"), "nobody")
    assert ok(cli("export")).out == before


def test_approve_approve_with_edits_and_reject_then_a_worker_finishes_all(populated) -> None:
    cli, _, deploy = populated
    run_id, approval = deploy["run_id"], deploy["approval_id"]
    docs, status, bad_edit = cli.many(
        ["--store", cli.url, "run", "deploy the docs", "--wait"],  # human output, the global --store
        ["status", run_id], ["approve", approval, "--edit", "{bad"])
    found = re.search(r"^run (\S+) \(deployer\): waiting_for_approval$", ok(docs).out, re.M)
    assert found, docs.out
    docs_approval = f"{found[1]}.a1"
    assert f"waiting for approval {docs_approval}: runjournal approve {docs_approval}" in " ".join(docs.out.split())
    assert "waiting_for_approval" in ok(status).out and f"approval {approval} for deploy" in status.out
    assert "recovery wait-for-approval" in status.out
    domain_error(bad_edit, "--edit: not valid JSON")
    staging = ok(cli("run", "deploy to staging", "--wait", "--json")).json()
    staging_approval = staging["approval_id"]

    approved, edited, rejected = cli.many(
        ["approve", approval], ["approve", docs_approval, "--edit", '{"env": "docs"}', "--json"],
        ["reject", staging_approval, "--actor", "alice"])
    assert f"approve recorded for {approval}; run {run_id} is resuming" in " ".join(ok(approved).out.split())
    assert RUN_KEYS <= ok(edited).json().keys() and edited.json()["state"] == "resuming"
    assert f"reject recorded for {staging_approval}" in " ".join(ok(rejected).out.split())

    worker = ok(cli("worker", "--until-idle", "--worker-id", "w1"))
    assert "worker w1: recovered 0 expired leases, 3 resumed" in " ".join(worker.out.split())
    assert "worker w1: idle (3 ok, 0 failed)" in worker.out

    done, done_staging, decided, decided_human, again = cli.many(
        ["status", run_id, "--json"], ["status", staging["run_id"], "--json"],
        ["approvals", "--all", "--json"], ["approvals", "--all"], ["reject", staging_approval])
    assert (ok(done).json()["state"], done.json()["output"]) == ("completed", {"text": "Deployed"})
    assert ok(done_staging).json()["state"] == "completed"
    assert "rejected" in done_staging.json()["output"]["text"]  # the agent went on without the tool
    by_id = {r["approval_id"]: r for r in ok(decided).json()}
    assert all(APPROVAL_KEYS <= r.keys() for r in by_id.values())
    assert (by_id[approval]["status"], by_id[approval]["decided_by"]) == ("approved", "tester")  # $RUNJOURNAL_ACTOR
    assert by_id[docs_approval]["status"] == "edited" and by_id[docs_approval]["edited_args"] == {"env": "docs"}
    assert (by_id[staging_approval]["status"], by_id[staging_approval]["decided_by"]) == ("rejected", "alice")
    assert all(word in ok(decided_human).out for word in ("approved", "edited", "rejected", "alice"))
    domain_error(again, f"approval {staging_approval} is not pending")


def test_history_replay_and_pending_approvals_of_a_run(populated) -> None:
    cli, _, deploy = populated
    run_id = deploy["run_id"]
    history, history_human, at_json, diff, diff_json, pending = cli.many(
        ["history", run_id, "--json"], ["history", run_id],
        ["replay", run_id, "--at", "3", "--json"], ["replay", run_id, "--diff", "3", "7"],
        ["replay", run_id, "--diff", "3", "7", "--json"], ["approvals", "--json"])
    events = ok(history).json()
    assert all(EVENT_KEYS <= e.keys() and e["run_id"] == run_id for e in events)
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert [e["type"] for e in events] == ["Created", "Queued", "Dequeued", "Started", "StepRecorded",
                                           "StepRecorded", "ApprovalRequested"]
    assert (events[4]["data"]["kind"], events[4]["data"]["content"]) == ("reasoning", {"text": "Checking the release before deploying"})
    assert events[0]["actor"] == "tester" and events[0]["data"]["input"] == {"message": "deploy to prod"}
    assert f"history of run {run_id}" in ok(history_human).out and "ApprovalRequested" in history_human.out

    then = ok(at_json).json()
    assert RUN_KEYS <= then.keys() and (then["state"], then["version"]) == ("claimed", 3)
    assert then["pending_approval"] is None
    assert "changes from version 3 to 7:" in ok(diff).out
    assert "state: claimed -> waiting_for_approval" in diff.out
    changes = ok(diff_json).json()
    assert changes["state"] == {"from": "claimed", "to": "waiting_for_approval"}
    assert changes["version"] == {"from": 3, "to": 7}
    assert changes["pending_approval"]["to"]["approval_id"] == deploy["approval_id"]
    assert all(change.keys() == {"from", "to"} for change in changes.values())

    (row,) = ok(pending).json()
    assert APPROVAL_KEYS <= row.keys()
    assert (row["approval_id"], row["run_id"], row["status"]) == (deploy["approval_id"], run_id, "pending")
    assert (row["tool_name"], row["tool_args"], row["decided_by"]) == ("deploy", {"env": "prod"}, None)


def test_worker_until_idle_runs_queued_runs_in_priority_order(populated) -> None:
    cli, _, _ = populated
    first, second = cli.many(["run", "first", "--json"], ["run", "second", "--priority", "5", "--json"])
    first, second = ok(first).json(), ok(second).json()
    assert RUN_KEYS <= first.keys() and first["state"] == second["state"] == "queued"
    assert first["created_by"] == "tester"  # $RUNJOURNAL_ACTOR

    queue_json, queue, status = cli.many(["queue", "--json"], ["queue"], ["status", first["run_id"], "--json"])
    assert ok(queue_json).json() == [
        {"position": 1, "run_id": second["run_id"], "priority": 5, "state": "queued"},
        {"position": 2, "run_id": first["run_id"], "priority": 0, "state": "queued"},
    ]
    assert ok(queue).out.index(second["run_id"]) < queue.out.index(first["run_id"])
    assert RUN_KEYS | {"recovery"} <= ok(status).json().keys() and status.json()["recovery"] == "execute"

    worker = ok(cli("worker", "--until-idle", "--worker-id", "w1", env={"RUNJOURNAL_LOG_LEVEL": "info"}))
    assert "worker w1: idle (2 ok, 0 failed)" in worker.out
    logs = [json.loads(line) for line in worker.err.splitlines() if line.startswith("{")]
    assert ("transition", "Completed", second["run_id"]) in {(e["event"], e["type"], e["run_id"]) for e in logs}

    done, threads_json, threads = cli.many(["status", first["run_id"]], ["threads", "--json"], ["threads"])
    assert "completed" in ok(done).out and "Hello from echo" in done.out and "nothing (terminal)" in done.out
    rows = {r["latest_run_id"]: r for r in ok(threads_json).json()}
    assert all({"thread_id", "agent_id", "status", "run_count", "message_count"} <= r.keys() for r in rows.values())
    assert rows[first["run_id"]]["status"] == rows[second["run_id"]]["status"] == "completed"
    assert len(rows) == 4 and "threads" in ok(threads).out and "completed" in threads.out


def test_cancel_retry_and_recover(populated) -> None:
    cli, _, _ = populated
    queued = ok(cli("run", "hello", "--json")).json()
    run_id = queued["run_id"]
    cancelled = ok(cli("cancel", run_id, "--reason", "wrong environment", "--json")).json()
    assert RUN_KEYS <= cancelled.keys()
    assert (cancelled["state"], cancelled["cancel_reason"]) == ("cancelled", "wrong environment")

    retry_json, retry_human, recover_json, recover = cli.many(
        ["retry", run_id, "--json"], ["retry", run_id], ["recover", "--json"], ["recover"])
    retried = ok(retry_json).json()
    assert retried["run_id"] != run_id and retried["state"] == "queued"
    assert (retried["parent_run_id"], retried["parent_version"]) == (run_id, cancelled["version"])
    assert (retried["thread_id"], retried["input"]) == (queued["thread_id"], {"message": "hello"})
    assert re.search(rf"run \S+ retries {run_id} \(version {cancelled['version']}\); it is queued",
                     " ".join(ok(retry_human).out.split()))
    report = ok(recover_json).json()
    assert report.keys() == {"expired", "resumed", "failed", "left"}
    assert (report["expired"], report["resumed"], report["failed"]) == ([], [], {})
    assert "recovered 0 expired leases, 0 resumed, 0 failed" in ok(recover).out


def test_domain_errors_exit_1_with_one_line_and_no_traceback(populated) -> None:
    cli, _, deploy = populated
    status, replay, approve, import_, agent = cli.many(
        ["status", "nope"], ["replay", deploy["run_id"], "--at", "99"], ["approve", "nope.a1"],
        ["import", "missing.jsonl"], ["run", "hello", "--agent", "nope"])
    domain_error(status, "run nope not found")
    assert status.err.count("\n") == 1  # one line (the short messages; see domain_error)
    domain_error(replay, f"at_version: run {deploy['run_id']} has versions 1..7 (got 99)")
    domain_error(approve, "approval nope.a1 not found")
    domain_error(import_, "missing.jsonl: file not found")
    domain_error(agent, "unknown agent 'nope' (agents defined: deployer, echo)")


# -- export, import, verify ----------------------------------------------------------------------------------


def test_export_then_import_into_an_empty_store_round_trips(populated) -> None:
    cli, hello, deploy = populated
    full, to_file, one_run, since = cli.many(
        ["export"], ["export", "--out", "log.jsonl"], ["export", "--run", hello["run_id"]],
        ["export", "--since", "8"])
    records = json_lines(ok(full).out)
    assert len(records) == 12 and [r["position"] for r in records] == list(range(1, 13))
    assert all(EXPORT_KEYS <= r.keys() for r in records)
    assert {r["run_id"] for r in records} == {hello["run_id"], deploy["run_id"]}
    log = cli.cwd / "log.jsonl"
    assert ok(to_file).out == "" and log.read_text() == full.out
    assert json_lines(ok(one_run).out) == [r for r in records if r["run_id"] == hello["run_id"]]
    assert [r["version"] for r in json_lines(one_run.out)] == [1, 2, 3, 4, 5]
    assert json_lines(ok(since).out) == records[8:]

    copy = f"sqlite:///{cli.cwd / 'copy.db'}"
    assert "imported 12 events" in ok(cli("--store", copy, "import", log)).out
    lines = log.read_text().splitlines(keepends=True)
    corrupt = cli.cwd / "corrupt.jsonl"
    corrupt.write_text("".join(lines[:2]) + "{not json\n" + "".join(lines[3:]))
    verify, exported, into_full, bad_line = cli.many(
        ["--store", copy, "verify", "--json"], ["--store", copy, "export"], ["import", log],
        ["--store", f"sqlite:///{cli.cwd / 'empty.db'}", "import", corrupt])
    report = ok(verify).json()
    assert (report["ok"], report["events_checked"], report["runs_checked"], report["problems"]) == (True, 12, 2, [])
    assert ok(exported).out == full.out  # the copy holds exactly the exported events
    domain_error(into_full, "store: import needs an empty store")
    domain_error(bad_line, "corrupt.jsonl:3: not valid JSON")
    assert not (cli.cwd / "empty.db").exists()  # every line is checked before anything, even the store, is made


def test_verify_anchors_reveal_a_truncated_tail(populated) -> None:
    cli, _, deploy = populated
    ok(cli("export", "--anchors", "--out", "anchors.json"))
    anchors = json.loads((cli.cwd / "anchors.json").read_text())
    assert anchors.keys() == {"events", "log_head", "runs", "versions"}
    assert anchors["events"] == 12 and anchors["versions"][deploy["run_id"]] == 7
    assert "ok: every chain verifies" in ok(cli("verify", "--anchors", "anchors.json")).out

    with sqlite3.connect(cli.cwd / "j.db") as db:
        db.execute("DELETE FROM stored_events WHERE rowid = (SELECT max(rowid) FROM stored_events)")
    assert "the inline queue row is (0, 6, 'waiting_for_approval', False), the log gives (0, 6, 'running', False)" in (
        " ".join(cli("verify").out.split()))  # the queue still says where the run was...
    ok(cli("projections", "rebuild"))  # ...so a careful forger rebuilds it from the truncated log
    plain, anchored = cli.many(["verify"], ["verify", "--anchors", "anchors.json"])
    assert "every chain verifies" in ok(plain).out  # a removed last event breaks no link...
    assert anchored.code == 1 and "Traceback" not in anchored.err  # ...but the anchors see it
    text = " ".join(anchored.out.split())
    assert f"broken: run {deploy['run_id']}: missing or truncated before version 7 (anchored)" in text
    assert "broken: log truncated: 11 events, the anchor saw 12" in text


def test_verify_names_the_run_and_version_of_an_edited_event(populated) -> None:
    cli, hello, _ = populated
    with sqlite3.connect(cli.cwd / "j.db") as db:
        key = (uuid.UUID(hello["run_id"]).hex, 1)
        (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                              key).fetchone()
        at = state.index(b'"hello"') + 5
        edited = state[:at] + b"p" + state[at + 1:]  # one byte: "hello" -> "hellp"
        db.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
                   (edited, *key))
    human, as_json = cli.many(["verify"], ["verify", "--json"])
    assert human.code == 1 and "Traceback" not in human.err
    assert f"broken: run {hello['run_id']} version 1: chain mismatch" in " ".join(human.out.split())
    assert as_json.code == 1
    report = as_json.json()
    assert report.keys() == VERIFY_KEYS and report["ok"] is False and len(report["problems"]) == 1
    assert report["problems"][0].startswith(f"run {hello['run_id']} version 1: ")


# -- projections, timeline, keygen -----------------------------------------------------------------------------


def test_projections_rebuild_all_one_and_an_unknown_name(populated) -> None:
    cli, hello, deploy = populated
    everything = ok(cli("projections", "rebuild"))
    for view in ("runs", "threads", "approvals", "recovery_intents", "messages", "run_facts"):
        assert f"rebuilt {view} from 12 events" in everything.out
    assert "rebuilt the inline queue and leases (1 live runs)" in everything.out
    one, unknown, threads = cli.many(["projections", "rebuild", "threads"], ["projections", "rebuild", "nope"],
                                     ["threads", "--json"])
    assert ok(one).out == "rebuilt threads from 12 events\n"
    domain_error(unknown, "no projection named 'nope'", "threads")
    rows = {r["latest_run_id"]: r["status"] for r in ok(threads).json()}
    assert rows == {hello["run_id"]: "completed", deploy["run_id"]: "waiting_for_approval"}


def test_timeline_writes_a_self_contained_page_for_a_run_and_a_thread(populated) -> None:
    cli, _, deploy = populated
    run_page, thread_page = cli.many(["timeline", deploy["run_id"], "--html", "run.html"],
                                     ["timeline", "--thread", deploy["thread_id"]])
    assert ok(run_page).out == "wrote run.html (7 events)\n"
    assert ok(thread_page).out == "wrote timeline.html (7 events)\n"  # the default file
    for name, title in (("run.html", f"run {deploy['run_id']}"), ("timeline.html", f"thread {deploy['thread_id']}")):
        page = (cli.cwd / name).read_text()
        assert page.lower().startswith("<!doctype html>") and f"<title>{title}</title>" in page
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I), name
        assert "<link" not in page.lower()


def test_keygen_prints_a_key_that_encrypts_a_store(populated) -> None:
    cli, _, _ = populated
    key = ok(cli("keygen")).out.strip()
    assert len(base64.b64decode(key, validate=True)) == 32

    secret = {"RUNJOURNAL_URL": f"sqlite:///{cli.cwd / 'secret.db'}", "RUNJOURNAL_CIPHER_KEY": key}
    run_id = ok(cli("run", "the launch code", "--json", env=secret)).json()["run_id"]
    with_key = cli.start("status", run_id, "--json", env=secret)
    without_key = cli.wait(cli.start("status", run_id, env={**secret, "RUNJOURNAL_CIPHER_KEY": None}))
    assert ok(cli.wait(with_key)).json()["input"] == {"message": "the launch code"}
    domain_error(without_key, "RUNJOURNAL_CIPHER_KEY")
    with sqlite3.connect(cli.cwd / "secret.db") as db:
        blobs = [bytes(row[0]) for row in db.execute("SELECT state FROM stored_events")]
    assert blobs and not any(b"launch code" in blob for blob in blobs)


def test_status_shows_a_failed_resumes_attempts_and_its_error(cli: CLI) -> None:
    from runjournal import Journal

    journal = Journal.open(cli.url)
    try:
        journal.submit(agent_id="deployer", input={"message": "deploy"})
        claim = journal.claim_next(worker_id="w1", start=True)
        approval_id = journal.request_approval(claim, tool_name="deploy")
        journal.resolve_approval(approval_id, decision="approve", actor="al")
        claim = journal.claim_next(worker_id="w1", start=True)
        assert journal.fail(claim, error="deploy API down", stage="invoke", retries=3).state == "resuming"
    finally:
        journal.close()

    shown = cli("status", claim.run_id)
    as_json = cli("status", claim.run_id, "--json").json()

    assert shown.code == 0, shown.err
    assert "recovery resume  (attempts 1)" in shown.out and "deploy API down" in shown.out
    assert (as_json["state"], as_json["recovery_attempts"], as_json["error"]) == ("resuming", 1, "deploy API down")


def test_worker_agents_narrows_the_claims_and_refuses_an_unknown_agent(populated) -> None:
    cli, _, _ = populated
    deploy = ok(cli("run", "deploy to staging", "--json")).json()
    hello = ok(cli("run", "hello", "--json")).json()
    assert (deploy["agent_id"], hello["agent_id"]) == ("deployer", "echo")

    unknown = cli("worker", "--until-idle", "--agents", "echo,nope")
    worker = ok(cli("worker", "--until-idle", "--worker-id", "w1", "--agents", "echo"))
    left, done = cli.many(["status", deploy["run_id"], "--json"], ["status", hello["run_id"], "--json"])

    assert unknown.code == 1 and "Traceback" not in unknown.err
    assert "unknown agent 'nope' (agents defined: deployer, echo)" in unknown.message
    assert "worker w1: idle (1 ok, 0 failed)" in worker.out
    assert (ok(left).json()["state"], ok(done).json()["state"]) == ("queued", "completed")
