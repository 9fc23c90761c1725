"""`runjournal follow RUN`: the run's events as they are appended by another process, until it rests."""

from __future__ import annotations

import json

from .conftest import CLI
from .test_cli import domain_error, ok


def test_follow_prints_the_events_another_process_appends_until_the_run_rests(cli: CLI) -> None:
    ok(cli("init"))
    queued = ok(cli("run", "deploy to prod", "--json")).json()
    follower = cli.start("follow", queued["run_id"][:18], "--json", "--interval", "0.05")
    ok(cli("worker", "--until-idle"))
    followed = cli.wait(follower, timeout=30)
    assert followed.code == 0, followed.err
    events = [json.loads(line) for line in followed.out.splitlines()]
    history = ok(cli("history", queued["run_id"], "--json")).json()
    assert [e["version"] for e in events] == [e["version"] for e in history] == list(range(1, len(history) + 1))
    assert events[-1]["type"] == "ApprovalRequested"  # it rests there: waiting for a person


def test_follow_gives_up_after_its_timeout_and_names_the_state(cli: CLI) -> None:
    ok(cli("init"))
    queued = ok(cli("run", "hello", "--json")).json()
    waited = cli("follow", queued["run_id"], "--timeout", "0.3")
    domain_error(waited, f"run {queued['run_id']} is still queued after 0.3 s")
    assert "v1 " in waited.out and "Created by tester" in waited.out
