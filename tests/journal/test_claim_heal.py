"""A queue row that no longer matches its run is healed, never spun on."""

from __future__ import annotations

import sqlite3

from runjournal import Journal

GHOST = "00000000-0000-4000-8000-000000000001"


def _stale_rows(path: str, run_id: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runjournal_queue SET claimable = 1, state = 'queued'")
        conn.execute("INSERT OR REPLACE INTO runjournal_queue (run_id, priority, position, state, claimable, agent_id)"
                     " VALUES (?, 9, 1, 'queued', 1, 'a')", (run_id,))
        conn.execute("INSERT INTO runjournal_queue (run_id, priority, position, state, claimable, agent_id)"
                     " VALUES (?, 9, 1, 'queued', 1, 'a')", (GHOST,))


def test_claim_next_heals_stale_rows_and_goes_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "j.db")
    with Journal.open(f"sqlite:///{path}") as j:
        done = j.submit(agent_id="a", input={"n": 1})
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        j.complete(claim, output={})
        waiting = j.submit(agent_id="a", input={"n": 2})
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        j.request_approval(claim, tool_name="t")
        _stale_rows(path, done.run_id)
        # the completed run and the ghost sort first; the waiting run is claimable by its row
        good = j.submit(agent_id="a", input={"n": 3})
    with Journal.open(f"sqlite:///{path}") as j:
        got = j.claim_next(worker_id="w2")
        assert got is not None and got.run_id == good.run_id
        assert j.claim_next(worker_id="w2") is None
        # rows of runs that are over or gone are removed; a live run's row is left to its next save
        assert [row.run_id for row in j.queue()] == [waiting.run_id]
        assert {row.run_id for row in j.inline_views.lease_rows()} == {got.run_id}
        assert j.get_run(waiting.run_id).state == "waiting_for_approval"
        assert j.claim_many(worker_id="w3", count=4) == []
        (stale,) = j.verify().problems  # verify names the one row left stale, and nothing else
        assert stale.run_id == waiting.run_id and stale.problem.startswith("the inline queue row is (0, 6, 'queued', True), the log gives (0, 6, 'waiting_for_approval', False)")
        resolved = j.resolve_approval(f"{waiting.run_id}.a1", decision="approve", actor="bob")
        assert resolved.state == "resuming"
        assert j.verify().ok  # its own save set its row right
        assert j.claim_next(worker_id="w4").run_id == waiting.run_id
