"""One structured log line per transition, JSON when stderr is not a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROGRAM = """
import logging, os
if os.environ.get("HOST_LOGGING"):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
import structlog
before = structlog.get_config()
from runjournal import Journal
j = Journal.open("memory://")
run = j.submit(agent_id="echo", input={"message": "hi"}, thread_id="t1", actor="alice")
claim = j.claim_next(worker_id="w1")
j.start(claim)
j.complete(claim, output={"text": "ok"})
assert structlog.get_config() == before, "the library configured structlog"
print(run.run_id)
"""


def test_a_host_that_enables_info_gets_one_json_line_per_transition() -> None:
    env = {**os.environ, "HOST_LOGGING": "1"}
    result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [line["type"] for line in lines] == ["Created", "Queued", "Dequeued", "Started", "Completed"]
    for line in lines:
        assert line["event"] == "transition" and line["run_id"] == run_id
        assert line["thread_id"] == "t1" and line["agent"] == "echo" and line["state"]
    assert lines[-1]["state"] == "completed" and lines[0]["actor"] == "alice"


def test_the_library_leaves_logging_to_its_host() -> None:
    # Even RUNJOURNAL_LOG_LEVEL=info is the CLI's setting: an embedding program that has
    # not configured logging hears nothing, and structlog's global config is untouched.
    env = {**os.environ, "RUNJOURNAL_LOG_LEVEL": "info"}
    env.pop("HOST_LOGGING", None)
    result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""


def test_the_cli_logs_transitions_at_runjournal_log_level(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from runjournal import Journal

    url = f"sqlite:///{tmp_path}/j.db"
    with Journal.open(url) as journal:
        run = journal.submit(agent_id="echo", input={"message": "hi"}, actor="alice")
    env = {**os.environ, "RUNJOURNAL_LOG_LEVEL": "info", "RUNJOURNAL_URL": url}
    code = "from runjournal.cli import main; main()"
    args = [sys.executable, "-c", code, "cancel", run.run_id, "--actor", "bob"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(line["type"], line["actor"]) for line in lines] == [("Cancelled", "bob")], result.stderr
