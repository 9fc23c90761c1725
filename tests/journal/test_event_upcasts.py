"""Events stored by earlier releases still load, verify and show: each class_version bump has its upcast."""

from __future__ import annotations

import sqlite3
import uuid

from runjournal.verification import decode_stored, expected_link

from runjournal import Journal


def _store_as_v1(path: str, run_id: str, field: str) -> None:
    """Rewrite a run's last event as release 1 stored it: without ``field``, class_version 1, its own chain."""
    with Journal.open(f"sqlite:///{path}") as j:
        mapper = j._store.mapper
        *_, before, last = [n for page in j.notifications() for n in page if str(n.originator_id) == run_id]
        fields = decode_stored(mapper, last)
        fields.pop(field)
        assert fields["class_version"] == 2
        fields["class_version"] = 1
        fields["chain"] = expected_link(decode_stored(mapper, before)["chain"], last, fields)
        state = mapper.transcoder.encode(fields)
    with sqlite3.connect(path) as db:
        assert db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state, last.id)).rowcount == 1


def test_a_failed_event_stored_without_a_stage_loads_with_none(tmp_path) -> None:
    path = str(tmp_path / "j.db")
    with Journal.open(f"sqlite:///{path}") as j:
        run = j.submit(agent_id="a", input={"n": 1})
        j.fail_run(run.run_id, error="gave up", actor="ops")
    _store_as_v1(path, run.run_id, "stage")
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
    _store_as_v1(path, run.run_id, "output")
    with Journal.open(f"sqlite:///{path}") as j:
        assert j.verify().ok, j.verify().problems
        asked = j.history(run.run_id)[-1]
        assert asked.type == "ApprovalRequested" and asked.data["output"] is None
        assert j.get_run(run.run_id).state == "waiting_for_approval"
        assert [a.tool_name for a in j.pending_approvals()] == ["deploy"]
