"""One structured log line per transition, JSON when stderr is not a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROGRAM = """
from runjournal import Journal
j = Journal.open("memory://")
run = j.submit(agent_id="echo", input={"message": "hi"}, thread_id="t1", actor="alice")
claim = j.claim_next(worker_id="w1")
j.start(claim)
j.complete(claim, output={"text": "ok"})
print(run.run_id)
"""


def test_every_transition_is_one_json_line_with_run_thread_agent_and_state() -> None:
    env = {**os.environ, "RUNJOURNAL_LOG_LEVEL": "info"}
    result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [line["type"] for line in lines] == ["Created", "Queued", "Dequeued", "Started", "Completed"]
    for line in lines:
        assert line["event"] == "transition" and line["run_id"] == run_id
        assert line["thread_id"] == "t1" and line["agent"] == "echo" and line["state"]
    assert lines[-1]["state"] == "completed" and lines[0]["actor"] == "alice"


def test_transitions_are_quiet_at_the_default_level() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNJOURNAL_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
