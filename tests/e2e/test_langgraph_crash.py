"""A worker SIGKILLed mid-graph: another worker finishes the run from its last checkpoint, nothing done twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from runjournal import Journal

GRAPHS = Path(__file__).resolve().parents[1] / "harness" / "lg_graphs.py"
RUNJOURNAL = str(Path(sys.executable).with_name("runjournal"))
LEASE_S = 1.5


def traced(folder: Path) -> list[str]:
    path = folder / "trace.jsonl"
    return [json.loads(line)["what"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_graph_cut_off_mid_way_is_finished_by_another_worker_from_its_checkpoint(tmp_path: Path) -> None:
    shutil.copy(GRAPHS, tmp_path / "lg_graphs.py")
    (tmp_path / "runjournal.yaml").write_text(yaml.safe_dump({
        "agents": {"ops": {"adapter": "langgraph", "graph": "lg_graphs:graph", "input_key": "messages"}},
        "concurrency": {"lease_seconds": LEASE_S, "heartbeat_seconds": 0.5},
        "recovery": {"stale_running_after_seconds": 1},
    }), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    hang = tmp_path / "hang"
    hang.touch()
    env = {**os.environ, "LG_TRACE": str(tmp_path / "trace.jsonl"), "LG_HANG": str(hang), "RUNJOURNAL_URL": url}
    with Journal.open(url) as journal:
        run_id = journal.submit(input={"message": "status web"}, agent_id="ops").run_id

    first = subprocess.Popen([RUNJOURNAL, "worker", "--worker-id", "w1"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while "model_waiting" not in traced(tmp_path):  # the first node done and checkpointed, the model asked
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        assert time.monotonic() < deadline, traced(tmp_path)
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    hang.unlink()
    time.sleep(LEASE_S + 0.5)  # the dead worker's lease runs out

    second = subprocess.run([RUNJOURNAL, "worker", "--until-idle", "--worker-id", "w2"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr

    with Journal.open(url) as journal:
        run = journal.get_run(run_id)
        assert run.state == "completed", (run.state, run.error)
        assert run.output["text"] == "Done: web is healthy."
        history = journal.history(run_id)
        kinds = [e.type for e in history]
        assert "LeaseExpired" in kinds
        assert {e.data.get("worker_id") for e in history if e.type in ("Started", "Resumed")} == {"w1", "w2"}
        assert journal.verify().ok
    names = traced(tmp_path)
    assert names.count("plan") == 1  # the node finished before the kill did not run again
    assert names.count("check_status") == 1
    assert names.count("agent") == 3  # cut off once, asked again from the checkpoint, then after the tool
