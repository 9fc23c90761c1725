"""`runjournal fork` and `runjournal lineage`, as a user runs them."""

from __future__ import annotations

from typing import Any

from .conftest import CLI
from .test_cli import domain_error, ok, usage_error


def test_fork_with_wait_runs_the_fork_and_lineage_draws_the_tree(
        populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, _hello, deploy = populated
    history = ok(cli("history", deploy["run_id"], "--json")).json()
    asked = next(e["version"] for e in history if e["type"] == "ApprovalRequested")
    fork = ok(cli("fork", deploy["run_id"][:23], "--at", str(asked - 1), "--edits", '{"message": "deploy to staging"}',
                  "--wait", "--json")).json()
    assert fork["state"] == "waiting_for_approval"  # the fork asks again: nothing its parent was told carries over
    created = ok(cli("history", fork["run_id"], "--json")).json()[0]
    assert created["data"]["parent_run_id"] == deploy["run_id"] and created["data"]["parent_version"] == asked - 1
    assert created["data"]["fork"]["input"] == "edited" and created["data"]["input"] == {"message": "deploy to staging"}
    second = ok(cli("fork", fork["run_id"], "--at", "1", "--json")).json()
    tree, text = cli.many(("lineage", second["run_id"], "--json"), ("lineage", deploy["run_id"]))
    walked = ok(tree).json()
    assert walked["run_id"] == deploy["run_id"]
    assert walked["children"][0]["run_id"] == fork["run_id"]
    assert walked["children"][0]["children"][0]["run_id"] == second["run_id"]
    lines = ok(text).out.splitlines()
    assert lines[0].startswith(deploy["run_id"]) and lines[0].endswith("<-")
    assert f"└─ {fork['run_id']}  fork at v{asked - 1}" in lines[1]
    assert f"└─ {second['run_id']}  fork at v1" in lines[2]


def test_fork_refuses_what_it_cannot_do_and_appends_nothing(
        populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, hello, _deploy = populated
    before = ok(cli("export")).out
    version, unknown, both, bad_json, lineage = cli.many(
        ("fork", hello["run_id"], "--at", "999"), ("fork", "ffff", "--at", "1"),
        ("fork", hello["run_id"], "--at", "1", "--input", "{}", "--edits", "{}"),
        ("fork", hello["run_id"], "--at", "1", "--edits", "{nope"), ("lineage", "ffff"))
    domain_error(version, "has versions 1..", "(got 999)")
    domain_error(unknown, "run ffff not found")
    domain_error(both, "not both")
    domain_error(bad_json, "--edits", "not valid JSON")
    domain_error(lineage, "run ffff not found")
    usage_error(cli("fork", hello["run_id"]))  # --at is required
    assert ok(cli("export")).out == before


def test_the_timeline_of_a_lineage_draws_each_run_with_where_it_came_from(
        populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, _hello, deploy = populated
    fork = ok(cli("fork", deploy["run_id"], "--at", "2", "--json")).json()
    ok(cli("timeline", fork["run_id"], "--lineage", "--html", "t.html"))
    page = (cli.cwd / "t.html").read_text(encoding="utf-8")
    assert f'data-run="{deploy["run_id"]}" data-parent=""' in page
    assert f'data-run="{fork["run_id"]}" data-parent="{deploy["run_id"]}"' in page
    assert f'fork of {deploy["run_id"]} at v2' in page
    ok(cli("timeline", fork["run_id"], "--html", "one.html"))
    one = (cli.cwd / "one.html").read_text(encoding="utf-8")
    assert one.count('class="lane"') == 1 and f'fork of {deploy["run_id"]} at v2' in one  # the fork, its origin named


def test_replay_agent_says_identical_and_a_changed_workspace_agent_exits_1(
        populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, _hello, deploy = populated
    ok(cli("approve", deploy["approval_id"]))
    ok(cli("worker", "--until-idle"))
    before = ok(cli("export")).out
    same = ok(cli("replay", deploy["run_id"], "--agent", "--json")).json()
    assert same["identical"] and same["executions"] == 2 and same["divergence"] is None
    workspace = (cli.cwd / "runjournal.yaml").read_text(encoding="utf-8")
    (cli.cwd / "changed.yaml").write_text(workspace.replace("Deployed", "Shipped"), encoding="utf-8")
    changed = cli("-w", "changed.yaml", "replay", deploy["run_id"], "--agent")
    assert changed.code == 1 and "diverged at version" in changed.out and "Shipped" in changed.out
    assert ok(cli("export")).out == before  # nothing appended by either
