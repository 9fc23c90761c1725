"""Every verb that takes a run takes its full id or any unique start of it; tables never cut an id."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from runjournal import Journal
from runjournal.adapters.clock import ManualClock
from runjournal.cli import render

from .conftest import CLI
from .test_cli import domain_error, ok


def _unique_start(run_id: str, other: str) -> str:
    shared = next(i for i, (a, b) in enumerate(zip(run_id, other, strict=True)) if a != b)
    return run_id[: shared + 1]


def test_read_verbs_take_a_unique_start_of_the_id(populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, hello, deploy = populated
    start = _unique_start(hello["run_id"], deploy["run_id"])
    status, history, replay, export = cli.many(
        ("status", start, "--json"), ("history", start, "--json"), ("replay", start, "--at", "1", "--json"),
        ("export", "--run", start))
    assert ok(status).json()["run_id"] == hello["run_id"]
    assert {e["run_id"] for e in ok(history).json()} == {hello["run_id"]}
    assert ok(replay).json()["run_id"] == hello["run_id"]
    assert hello["run_id"] in ok(export).out and deploy["run_id"] not in export.out


def test_write_verbs_take_a_unique_start_of_the_id(populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, hello, deploy = populated
    start = _unique_start(deploy["run_id"], hello["run_id"])
    approved = ok(cli("approve", f"{start}.a1", "--json")).json()
    assert approved["run_id"] == deploy["run_id"] and approved["pending_approval"] is None
    retried = ok(cli("retry", _unique_start(hello["run_id"], deploy["run_id"]), "--json")).json()
    assert retried["parent_run_id"] == hello["run_id"]
    cancelled = ok(cli("cancel", retried["run_id"][:-4], "--json")).json()  # any start that is unique
    assert cancelled["run_id"] == retried["run_id"] and cancelled["state"] == "cancelled"


def test_a_start_of_several_ids_or_of_none_is_a_clear_error(
        populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, hello, deploy = populated
    before = ok(cli("export")).out
    shared, unknown, approval = cli.many(("cancel", hello["run_id"][:1]), ("status", "fff"), ("approve", "fff.a1"))
    domain_error(shared, "several runs", hello["run_id"], deploy["run_id"], "give more of it")
    domain_error(unknown, "run fff not found")
    domain_error(approval, "fff.a1")
    assert ok(cli("export")).out == before  # nothing appended


def test_tables_show_whole_ids_on_an_80_column_terminal() -> None:
    with Journal.open("memory://", clock=ManualClock()) as j:  # one millisecond: ids share their head
        runs = j.submit_many([{"agent_id": "a-rather-long-agent-name", "input": {"text": "x" * 200}}
                              for _ in range(5)])
    console = Console(record=True, width=80)
    console.print(render.runs_table("runs", runs))
    text = console.export_text()
    assert all(r.run_id in text for r in runs)
