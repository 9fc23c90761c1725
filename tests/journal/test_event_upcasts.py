"""Events stored by earlier releases still load, verify and show: each class_version bump has its upcast."""

from __future__ import annotations

import sqlite3
import uuid

from runjournal import Journal

from .helpers import store_as, store_as_v1


def test_a_failed_event_stored_without_a_stage_loads_with_none(tmp_path) -> None:
    path = str(tmp_path / "j.db")
    with Journal.open(f"sqlite:///{path}") as j:
        run = j.submit(agent_id="a", input={"n": 1})
        j.fail_run(run.run_id, error="gave up", actor="ops")
    store_as_v1(path, run.run_id, 3, "stage")
    with Journal.open(f"sqlite:///{path}") as j:
        assert j.verify().ok, j.verify().problems
        assert (j.get_run(run.run_id).state, j.get_run(run.run_id).error) == ("failed", "gave up")
        failed = j.history(run.run_id)[-1]
        assert failed.type == "Failed" and failed.data["stage"] is None
        assert [r.state for r in j.runs()] == ["failed"]
        with sqlite3.connect(path) as db:
            (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id = ? ORDER BY rowid DESC",
                                  (uuid.UUID(run.run_id).hex,)).fetchone()
        assert b'"stage"' not in state and b'"class_version":1' in state


def test_an_approval_request_stored_without_the_output_so_far_loads_with_none(tmp_path) -> None:
    path = str(tmp_path / "j.db")
    with Journal.open(f"sqlite:///{path}") as j:
        run = j.submit(agent_id="a", input={"n": 1})
        claim = j.claim_next(worker_id="w", start=True)
        j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"}, output="so far")
    store_as_v1(path, run.run_id, 5, "output")
    with Journal.open(f"sqlite:///{path}") as j:
        assert j.verify().ok, j.verify().problems
        asked = j.history(run.run_id)[-1]
        assert asked.type == "ApprovalRequested" and asked.data["output"] is None
        assert j.get_run(run.run_id).state == "waiting_for_approval"
        assert [a.tool_name for a in j.pending_approvals()] == ["deploy"]


def test_a_run_created_before_the_request_was_recorded_as_asked_loads_with_none(tmp_path) -> None:
    path = str(tmp_path / "j.db")
    with Journal.open(f"sqlite:///{path}") as j:
        run = j.submit(agent_id="a", input={"n": 1}, invocation={"context": {"user": "u1"}})
        claim = j.claim_next(worker_id="w", start=True)
        j.complete(claim, output={"text": "done"})
    store_as_v1(path, run.run_id, 1, "requested_agent_id", "execution_mode", "invocation", "fork")
    with Journal.open(f"sqlite:///{path}") as j:
        assert j.verify().ok, j.verify().problems
        created = j.history(run.run_id)[0]
        assert created.type == "Created"
        assert (created.data["requested_agent_id"], created.data["execution_mode"], created.data["invocation"]) == (
            None, None, None)
        shown = j.get_run(run.run_id)
        assert (shown.state, shown.agent_id, shown.requested_agent_id, shown.invocation) == ("completed", "a", None, None)
        assert [r.run_id for r in j.runs()] == [run.run_id]
        with sqlite3.connect(path) as db:
            (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id = ? ORDER BY rowid",
                                  (uuid.UUID(run.run_id).hex,)).fetchone()
        assert b'"invocation"' not in state and b'"class_version":1' in state


def test_a_run_created_before_forks_loads_as_no_fork(tmp_path) -> None:
    path = str(tmp_path / "j.db")
    with Journal.open(f"sqlite:///{path}") as j:
        parent = j.submit(agent_id="a", input={"n": 1})
        run = j.submit(agent_id="a", input={"n": 1}, parent_run_id=parent.run_id, parent_version=2)
    store_as(path, run.run_id, 1, 2, "fork")
    with Journal.open(f"sqlite:///{path}") as j:
        assert j.verify().ok, j.verify().problems
        created = j.history(run.run_id)[0]
        assert created.data["fork"] is None and created.data["parent_run_id"] == parent.run_id
        assert j.get_run(run.run_id).fork is None
        with sqlite3.connect(path) as db:
            (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id = ? ORDER BY rowid",
                                  (uuid.UUID(run.run_id).hex,)).fetchone()
        assert b'"fork"' not in state and b'"class_version":2' in state
