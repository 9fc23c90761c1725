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
import uuid
from pathlib import Path
from typing import Any

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
    """Exit 1 with one ``error:`` message naming every needle (whitespace collapsed), no traceback."""
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
    commands = [
        ["frobnicate"],                      # unknown verb
        [],                                  # no verb at all
        ["status"],                          # missing RUN_ID
        ["approve"],                         # missing APPROVAL_ID
        ["run"],                             # missing MESSAGE
        ["import"],                          # missing FILE
        ["queue", "--bogus"],                # unknown option
        ["replay", "some-run"],              # neither --at nor --diff
        ["timeline"],                        # neither RUN_ID nor --thread
        ["replay", "some-run", "--at", "x"],  # not an integer
    ]
    results = cli.many(*commands)
    for result in results:
        usage_error(result)
    assert "No such command 'frobnicate'" in results[0].err
    assert "Missing argument" in results[2].err
    assert "--at VERSION or --diff A B" in results[7].message


# -- init and the workspace file -------------------------------------------------------------------


def test_init_writes_the_example_workspace_and_refuses_to_overwrite_it(cli: CLI) -> None:
    first = ok(cli("init"))
    assert "wrote runjournal.yaml" in first.out
    text = (cli.cwd / "runjournal.yaml").read_text()
    assert "agents:" in text and "deployer:" in text and "default_agent: echo" in text

    (cli.cwd / "runjournal.yaml").write_text(text + "# my edit\n")
    again, forced, elsewhere = cli.many(["init"], ["init", "--force"], ["init", "conf/other.yaml"])
    domain_error(again, "runjournal.yaml", "already exists", "runjournal init --force")
    ok(forced)
    assert (cli.cwd / "runjournal.yaml").read_text() == text
    ok(elsewhere)
    assert (cli.cwd / "conf" / "other.yaml").read_text() == text


def test_commands_needing_a_workspace_say_so_when_it_is_missing(cli: CLI) -> None:
    run, worker, recover, other = cli.many(
        ["run", "hello"], ["worker", "--until-idle"], ["recover"], ["-w", "other.yaml", "run", "hello"])
    for result in (run, worker, recover):
        assert domain_error(result) == "error: runjournal.yaml: file not found (create one with `runjournal init`)"
    domain_error(other, "other.yaml: file not found", "runjournal init")


def test_a_broken_workspace_file_is_reported_with_its_file_and_line(cli: CLI) -> None:
    agents = "agents:\n  echo:\n    adapter: scripted\n    script:\n      - {say: hi}\n"
    (cli.cwd / "runjournal.yaml").write_text(agents + "concurrency:\n  max_concurrent_runs: 0\n")
    (cli.cwd / "typo.yaml").write_text(agents + "routin:\n  default_agent: echo\n")
    (cli.cwd / "syntax.yaml").write_text("agents:\n  echo: [\n")
    bad_value, typo, syntax, queue = cli.many(
        ["run", "hello"], ["-w", "typo.yaml", "worker", "--until-idle"], ["-w", "syntax.yaml", "run", "hi"],
        ["queue"])
    assert domain_error(bad_value) == "error: runjournal.yaml:7: concurrency.max_concurrent_runs: must be >= 1 (got 0)"
    assert domain_error(typo) == "error: typo.yaml:6: routin: unknown key 'routin' (did you mean 'routing'?)"
    assert domain_error(syntax) == "error: syntax.yaml:3: invalid YAML: expected the node content, but found '<stream end>'"
    ok(queue)  # commands that only read the store do not need the workspace (RUNJOURNAL_URL is set)


# -- stores ----------------------------------------------------------------------------------------


def test_store_errors_are_one_clear_message(cli: CLI) -> None:
    unreachable = cli.start("--store", "postgresql://nobody@127.0.0.1:1/nope", "queue")  # ~5 s connect timeout
    unsupported, no_file, by_env = cli.many(
        ["--store", "mysql://x", "queue"], ["--store", "sqlite:///", "threads"],
        ["approvals"], env={"RUNJOURNAL_URL": "mysql://y"})
    domain_error(unsupported, "unsupported store URL 'mysql://x'", "accepted:", "sqlite:///", "postgresql://")
    domain_error(no_file, "names no file")
    domain_error(by_env, "unsupported store URL 'mysql://y'")
    domain_error(cli.wait(unreachable), "cannot open store postgresql://", "127.0.0.1:1/nope")


# -- demo --------------------------------------------------------------------------------------------


def test_demo_leaves_a_journal_the_other_commands_read(cli: CLI) -> None:
    default_store = {"RUNJOURNAL_URL": None}  # the default store: .runjournal/journal.db in the cwd
    demo = ok(cli("demo", env=default_store))
    assert "runjournal demo on sqlite:///.runjournal/journal.db" in demo.out
    assert "approving" in demo.out and "every chain verifies" in demo.out
    assert "Next: runjournal history" in demo.out
    assert (cli.cwd / ".runjournal" / "journal.db").exists()

    approvals, threads, verify = cli.many(
        ["approvals", "--all", "--json"], ["threads", "--json"], ["verify", "--json"], env=default_store)
    (approval,) = ok(approvals).json()
    assert APPROVAL_KEYS <= approval.keys()
    assert (approval["status"], approval["decided_by"], approval["tool_name"]) == ("approved", "demo", "deploy")
    assert len(ok(threads).json()) == 5
    report = ok(verify).json()
    assert report["ok"] is True and report["runs_checked"] == 5
    assert f"verify: {report['events_checked']} events of 5 runs, every chain verifies" in demo.out


# -- running, approvals, workers ----------------------------------------------------------------------


def test_run_routes_deploy_to_the_deployer_and_approve_edit_reject_then_a_worker_finishes(cli: CLI) -> None:
    ok(cli("init"))
    waited = ok(cli("run", "deploy to prod", "--wait", "--json")).json()
    assert waited.keys() == RESULT_KEYS
    assert (waited["agent_id"], waited["state"]) == ("deployer", "waiting_for_approval")
    run_id, approval = waited["run_id"], waited["approval_id"]
    assert approval == f"{run_id}.a1"

    second = ok(cli("--store", cli.url, "run", "deploy the docs", "--wait"))  # human output, --store
    found = re.search(r"^run (\S+) \(deployer\): waiting_for_approval$", second.out, re.M)
    assert found, second.out
    second_id = found[1]
    assert f"waiting for approval {second_id}.a1: runjournal approve {second_id}.a1" in " ".join(second.out.split())

    status, status_json, pending, pending_json, bad_edit = cli.many(
        ["status", run_id], ["status", run_id, "--json"], ["approvals"], ["approvals", "--json"],
        ["approve", approval, "--edit", "{bad"])
    assert "waiting_for_approval" in ok(status).out
    assert f"approval {approval} for deploy" in status.out
    assert "recovery wait-for-approval" in status.out
    snapshot = ok(status_json).json()
    assert RUN_KEYS | {"recovery"} <= snapshot.keys()
    assert (snapshot["recovery"], snapshot["created_by"]) == ("wait-for-approval", "tester")  # $RUNJOURNAL_ACTOR
    assert "deploy" in ok(pending).out and "pending" in pending.out
    rows = ok(pending_json).json()
    assert {r["approval_id"] for r in rows} == {approval, f"{second_id}.a1"}
    assert all(APPROVAL_KEYS <= r.keys() and r["status"] == "pending" for r in rows)
    assert rows[0]["tool_args"] == {"env": "prod"}
    domain_error(bad_edit, "--edit", "not valid JSON")

    approved = ok(cli("approve", approval, "--edit", '{"env": "staging"}', "--json")).json()
    assert RUN_KEYS <= approved.keys() and approved["state"] == "resuming"
    rejected = ok(cli("reject", f"{second_id}.a1", "--actor", "alice"))
    assert f"reject recorded for {second_id}.a1; run {second_id} is resuming" in " ".join(rejected.out.split())
    again, resuming = cli.many(["reject", f"{second_id}.a1"], ["status", run_id, "--json"])
    domain_error(again, "is not pending")
    assert ok(resuming).json()["recovery"] == "resume"

    worker = ok(cli("worker", "--until-idle", "--worker-id", "w1"))
    assert "worker w1: recovered 0 expired leases, 2 resumed" in " ".join(worker.out.split())
    assert "worker w1: idle (2 ok, 0 failed)" in worker.out

    done, done_second, still_pending, decided, decided_human, history, history_human = cli.many(
        ["status", run_id, "--json"], ["status", second_id, "--json"], ["approvals", "--json"],
        ["approvals", "--all", "--json"], ["approvals", "--all"], ["history", run_id, "--json"],
        ["history", run_id])
    assert ok(done).json()["state"] == "completed" and done.json()["output"] == {"text": "Deployed"}
    assert ok(done_second).json()["state"] == "completed"
    assert "rejected" in done_second.json()["output"]["text"]
    assert ok(still_pending).json() == []
    by_id = {r["approval_id"]: r for r in ok(decided).json()}
    assert (by_id[approval]["status"], by_id[approval]["decided_by"]) == ("edited", "tester")
    assert by_id[approval]["edited_args"] == {"env": "staging"}
    assert (by_id[f"{second_id}.a1"]["status"], by_id[f"{second_id}.a1"]["decided_by"]) == ("rejected", "alice")
    assert "edited" in ok(decided_human).out and "rejected" in decided_human.out and "alice" in decided_human.out

    events = ok(history).json()
    assert all(EVENT_KEYS <= e.keys() and e["run_id"] == run_id for e in events)
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[:2] == ["Created", "Queued"] and types[-1] == "Completed"
    assert {"ApprovalRequested", "ApprovalResolved", "Resumed"} <= set(types)
    assert any(e["actor"] == "worker:w1" for e in events)
    assert f"history of run {run_id}" in ok(history_human).out and "ApprovalResolved" in history_human.out

    asked = types.index("ApprovalRequested") + 1
    last = len(events)
    at, at_json, diff, diff_json = cli.many(
        ["replay", run_id, "--at", str(asked)], ["replay", run_id, "--at", str(asked), "--json"],
        ["replay", run_id, "--diff", str(asked), str(last)],
        ["replay", run_id, "--diff", str(asked), str(last), "--json"])
    assert "waiting_for_approval" in ok(at).out and f"approval {approval}" in at.out
    then = ok(at_json).json()
    assert RUN_KEYS <= then.keys()
    assert (then["state"], then["version"]) == ("waiting_for_approval", asked)
    assert then["pending_approval"]["approval_id"] == approval
    assert f"changes from version {asked} to {last}:" in ok(diff).out
    assert "state: waiting_for_approval -> completed" in diff.out
    changes = ok(diff_json).json()
    assert changes["state"] == {"from": "waiting_for_approval", "to": "completed"}
    assert changes["version"] == {"from": asked, "to": last}
    assert all(change.keys() == {"from", "to"} for change in changes.values())


def test_worker_until_idle_runs_queued_runs_in_priority_order(cli: CLI) -> None:
    ok(cli("init"))
    first = ok(cli("run", "first", "--json")).json()
    second = ok(cli("run", "second", "--priority", "5", "--json")).json()
    assert RUN_KEYS <= first.keys() and first["state"] == second["state"] == "queued"

    queue_json, queue, status = cli.many(["queue", "--json"], ["queue"], ["status", first["run_id"]])
    assert ok(queue_json).json() == [
        {"position": 1, "run_id": second["run_id"], "priority": 5, "state": "queued"},
        {"position": 2, "run_id": first["run_id"], "priority": 0, "state": "queued"},
    ]
    assert ok(queue).out.index(second["run_id"]) < queue.out.index(first["run_id"])
    assert "recovery execute" in ok(status).out

    worker = ok(cli("worker", "--until-idle", "--worker-id", "w1", env={"RUNJOURNAL_LOG_LEVEL": "info"}))
    assert "worker w1: idle (2 ok, 0 failed)" in worker.out
    logs = [json.loads(line) for line in worker.err.splitlines() if line.startswith("{")]
    assert {(entry["event"], entry["type"]) for entry in logs} >= {("transition", "Completed")}

    queue_after, done_first, done_second, threads_json, threads = cli.many(
        ["queue", "--json"], ["status", first["run_id"], "--json"], ["status", second["run_id"], "--json"],
        ["threads", "--json"], ["threads"])
    assert ok(queue_after).json() == []
    for done in (done_first, done_second):
        assert ok(done).json()["state"] == "completed"
        assert done.json()["output"] == {"text": "Hello from echo"}
        assert done.json()["recovery"] == "nothing (terminal)"
    rows = ok(threads_json).json()
    assert {r["latest_run_id"] for r in rows} == {first["run_id"], second["run_id"]}
    assert all({"thread_id", "agent_id", "latest_run_id", "status", "run_count", "message_count"} <= r.keys()
               and r["status"] == "completed" for r in rows)
    assert "threads" in ok(threads).out and "completed" in threads.out


def test_cancel_retry_and_recover(cli: CLI) -> None:
    ok(cli("init"))
    queued = ok(cli("run", "hello", "--json")).json()
    run_id = queued["run_id"]
    cancelled = ok(cli("cancel", run_id, "--reason", "wrong environment", "--actor", "bob", "--json")).json()
    assert RUN_KEYS <= cancelled.keys()
    assert (cancelled["state"], cancelled["cancel_reason"]) == ("cancelled", "wrong environment")

    status, retry_json, history = cli.many(["status", run_id], ["retry", run_id, "--json"], ["history", run_id, "--json"])
    assert "cancelled" in ok(status).out and "recovery nothing (terminal)" in status.out
    assert ok(history).json()[-1]["actor"] == "bob"
    retried = ok(retry_json).json()
    assert retried["run_id"] != run_id and retried["state"] == "queued"
    assert (retried["parent_run_id"], retried["parent_version"]) == (run_id, cancelled["version"])
    assert (retried["thread_id"], retried["input"]) == (queued["thread_id"], {"message": "hello"})

    retry_human, retried_status, recover_json, recover = cli.many(
        ["retry", run_id], ["status", retried["run_id"]], ["recover", "--json"], ["recover"])
    assert re.search(rf"run \S+ retries {run_id} \(version {cancelled['version']}\); it is queued",
                     " ".join(ok(retry_human).out.split()))
    assert f"retry of {run_id}" in ok(retried_status).out
    report = ok(recover_json).json()
    assert report.keys() == {"expired", "resumed", "failed", "left"}
    assert (report["expired"], report["resumed"], report["failed"]) == ([], [], {})
    assert "recovered 0 expired leases, 0 resumed, 0 failed" in ok(recover).out


# -- errors on a populated store ---------------------------------------------------------------------------


def test_domain_errors_exit_1_with_one_line_and_no_traceback(populated) -> None:
    cli, hello, deploy = populated
    commands = {
        "status": ["status", "nope"],
        "history": ["history", "nope"],
        "cancel": ["cancel", "nope"],
        "retry": ["retry", "nope"],
        "replay_at": ["replay", deploy["run_id"], "--at", "99"],
        "replay_diff": ["replay", deploy["run_id"], "--diff", "1", "99"],
        "approve": ["approve", "nope.a1"],
        "reject": ["reject", f"{hello['run_id']}.a1"],
        "timeline": ["timeline", "nope", "--html", "t.html"],
        "thread": ["timeline", "--thread", "nope", "--html", "t.html"],
        "import": ["import", "missing.jsonl"],
        "anchors": ["verify", "--anchors", "missing.json"],
        "agent": ["run", "hello", "--agent", "nope"],
    }
    results = dict(zip(commands, cli.many(*commands.values()), strict=True))
    for verb in ("status", "history", "cancel", "retry", "timeline"):
        domain_error(results[verb], "run nope not found")
    assert domain_error(results["status"]).count("\n") == 0
    domain_error(results["replay_at"], f"run {deploy['run_id']} has versions 1..6 (got 99)")
    domain_error(results["replay_diff"], "has versions 1..6 (got 99)")
    domain_error(results["approve"], "approval nope.a1 not found")
    domain_error(results["reject"], f"{hello['run_id']}.a1")
    domain_error(results["thread"], "thread nope has no runs")
    domain_error(results["import"], "missing.jsonl: file not found")
    domain_error(results["anchors"], "missing.json: file not found")
    domain_error(results["agent"], "unknown agent 'nope'", "deployer, echo")


# -- export, import, verify ----------------------------------------------------------------------------------


def test_export_to_stdout_and_file_by_run_and_since(populated) -> None:
    cli, hello, deploy = populated
    full, to_file, one_run, since = cli.many(
        ["export"], ["export", "--out", "log.jsonl"], ["export", "--run", hello["run_id"]],
        ["export", "--since", "8"])
    records = json_lines(ok(full).out)
    assert len(records) == 11 and [r["position"] for r in records] == list(range(1, 12))
    assert all(EXPORT_KEYS <= r.keys() for r in records)
    assert {r["run_id"] for r in records} == {hello["run_id"], deploy["run_id"]}
    assert ok(to_file).out == "" and (cli.cwd / "log.jsonl").read_text() == full.out
    assert json_lines(ok(one_run).out) == [r for r in records if r["run_id"] == hello["run_id"]]
    assert [r["version"] for r in json_lines(one_run.out)] == [1, 2, 3, 4, 5]
    assert json_lines(ok(since).out) == records[8:]


def test_import_round_trip_into_an_empty_store_verifies(populated) -> None:
    cli, _, deploy = populated
    log = ok(cli("export", "--out", "log.jsonl")) and cli.cwd / "log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    copy = f"sqlite:///{cli.cwd / 'copy.db'}"
    imported = ok(cli("--store", copy, "import", log))
    assert "imported 11 events" in imported.out

    corrupt = cli.cwd / "corrupt.jsonl"
    corrupt.write_text("".join(lines[:2]) + "{not json\n" + "".join(lines[3:]))
    partial = cli.cwd / "partial.jsonl"
    partial.write_text(lines[0] + '{"position": 2}\n' + "".join(lines[2:]))
    verify, exported, approvals, into_full, bad_line, bad_record = cli.many(
        ["--store", copy, "verify", "--json"], ["--store", copy, "export"], ["--store", copy, "approvals", "--json"],
        ["import", log], ["--store", f"sqlite:///{cli.cwd / 'c1.db'}", "import", corrupt],
        ["--store", f"sqlite:///{cli.cwd / 'c2.db'}", "import", partial])
    report = ok(verify).json()
    assert report.keys() == VERIFY_KEYS
    assert (report["ok"], report["events_checked"], report["runs_checked"], report["problems"]) == (True, 11, 2, [])
    assert ok(exported).out == log.read_text()  # the copy holds exactly the exported events
    assert [a["run_id"] for a in ok(approvals).json()] == [deploy["run_id"]]  # views rebuilt on import
    domain_error(into_full, "import needs an empty store")
    domain_error(bad_line, "line 3: not valid JSON")
    domain_error(bad_record, "line 2: not an exported event", "missing run_id")
    for name in ("c1.db", "c2.db"):  # every line is checked before anything is written
        with sqlite3.connect(cli.cwd / name) as db:
            assert db.execute("SELECT count(*) FROM stored_events").fetchone() == (0,)


def test_verify_anchors_reveal_a_truncated_tail(populated) -> None:
    cli, _, deploy = populated
    ok(cli("export", "--anchors", "--out", "anchors.json"))
    anchors = json.loads((cli.cwd / "anchors.json").read_text())
    assert anchors.keys() == {"events", "log_head", "runs", "versions"}
    assert anchors["events"] == 11 and anchors["versions"][deploy["run_id"]] == 6
    to_stdout, consistent = cli.many(["export", "--anchors"], ["verify", "--anchors", "anchors.json"])
    assert json.loads(ok(to_stdout).out) == anchors
    assert "ok: every chain verifies" in ok(consistent).out

    with sqlite3.connect(cli.cwd / "j.db") as db:
        db.execute("DELETE FROM stored_events WHERE rowid = (SELECT max(rowid) FROM stored_events)")
    plain, anchored, anchored_json = cli.many(
        ["verify"], ["verify", "--anchors", "anchors.json"], ["verify", "--anchors", "anchors.json", "--json"])
    assert "every chain verifies" in ok(plain).out  # a removed last event breaks no link...
    assert anchored.code == 1 and "Traceback" not in anchored.err  # ...but the anchors see it
    text = " ".join(anchored.out.split())
    assert f"broken: run {deploy['run_id']}: missing or truncated before version 6 (anchored)" in text
    assert "broken: log truncated: 10 events, the anchor saw 11" in text
    assert anchored_json.code == 1
    report = anchored_json.json()
    assert report["ok"] is False and report["events_checked"] == 10
    assert "log truncated: 10 events, the anchor saw 11" in report["problems"]


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
    assert report["ok"] is False and len(report["problems"]) == 1
    assert report["problems"][0].startswith(f"run {hello['run_id']} version 1: ")


# -- projections, timeline, keygen -----------------------------------------------------------------------------


def test_projections_rebuild_all_one_and_an_unknown_name(populated) -> None:
    cli, _, _ = populated
    before_threads, before_approvals = cli.many(["threads", "--json"], ["approvals", "--all", "--json"])
    everything = ok(cli("projections", "rebuild"))
    for view in ("runs", "threads", "approvals", "recovery_intents", "messages"):
        assert f"rebuilt {view} from 11 events" in everything.out
    assert "rebuilt the inline queue and leases (1 live runs)" in everything.out
    assert ok(cli("projections", "rebuild", "threads")).out.strip() == "rebuilt threads from 11 events"
    unknown, after_threads, after_approvals = cli.many(
        ["projections", "rebuild", "nope"], ["threads", "--json"], ["approvals", "--all", "--json"])
    domain_error(unknown, "no projection named 'nope'", "threads")
    assert ok(after_threads).json() == ok(before_threads).json()
    assert ok(after_approvals).json() == ok(before_approvals).json()


def test_timeline_writes_a_self_contained_page_for_a_run_and_a_thread(populated) -> None:
    cli, hello, deploy = populated
    run_page, thread_page, default_page = cli.many(
        ["timeline", deploy["run_id"], "--html", "run.html"],
        ["timeline", "--thread", deploy["thread_id"], "--html", "thread.html"],
        ["timeline", hello["run_id"]])
    assert "wrote run.html (6 events)" in ok(run_page).out
    assert "wrote thread.html (6 events)" in ok(thread_page).out
    assert "wrote timeline.html (5 events)" in ok(default_page).out
    for name, title in (("run.html", f"run {deploy['run_id']}"), ("thread.html", f"thread {deploy['thread_id']}"),
                        ("timeline.html", f"run {hello['run_id']}")):
        page = (cli.cwd / name).read_text()
        assert page.lower().startswith("<!doctype html>") and title in page
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I), name
        assert "<link" not in page.lower()


def test_keygen_prints_a_key_that_encrypts_a_store(populated) -> None:
    cli, _, _ = populated
    one, two = cli.many(["keygen"], ["keygen"])
    key = ok(one).out.strip()
    assert len(base64.b64decode(key, validate=True)) == 32 and key != ok(two).out.strip()

    secret = {"RUNJOURNAL_URL": f"sqlite:///{cli.cwd / 'secret.db'}", "RUNJOURNAL_CIPHER_KEY": key}
    run_id = ok(cli("run", "the launch code", "--json", env=secret)).json()["run_id"]
    with_key = cli.start("status", run_id, "--json", env=secret)
    without_key = cli.wait(cli.start("status", run_id, env={**secret, "RUNJOURNAL_CIPHER_KEY": None}))
    assert ok(cli.wait(with_key)).json()["input"] == {"message": "the launch code"}
    with sqlite3.connect(cli.cwd / "secret.db") as db:
        blobs = [bytes(row[0]) for row in db.execute("SELECT state FROM stored_events")]
    assert blobs and not any(b"launch code" in blob for blob in blobs)
    domain_error(without_key, "RUNJOURNAL_CIPHER_KEY")
