"""Queue positions tell the truth: resuming runs wait in the same line as queued ones, and positions carry priority."""

from __future__ import annotations

from runjournal.runtime.streaming import StreamEvent

from .conftest import MakeHarness, workspace


def test_a_resuming_run_waiting_for_a_slot_is_in_the_positions_and_the_health(make_harness: MakeHarness) -> None:
    h = make_harness(workspace(concurrency={"max_concurrent_runs": 1}))
    j = h.journal
    resuming = h.submit("deploy to prod", agent_id="deployer")
    claim = j.claim_next(worker_id="w0", start=True)
    assert claim is not None and claim.run_id == resuming.run_id
    approval = j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
    assert j.resolve_approval(approval, decision="approve", actor="alice").state == "resuming"

    seen: list[StreamEvent] = []
    h.subscribe(lambda e: seen.append(e) if e.type == "queue.position" else None)
    queued = h.submit("hello")
    first = {e.run_id: e.data for e in seen}
    assert first[resuming.run_id]["position"] == 1 and first[resuming.run_id]["state"] == "resuming"
    assert first[queued.run_id]["position"] == 2  # never "1" while the older resuming run goes first
    assert (first[queued.run_id]["active_slots"], first[queued.run_id]["max_concurrent_runs"]) == (0, 1)
    assert h.health().queued == 2

    seen.clear()
    urgent = h.submit("urgent", priority=5)
    moved = {e.run_id: (e.data["position"], e.data["priority"]) for e in seen}
    assert moved == {urgent.run_id: (1, 5), resuming.run_id: (2, 0), queued.run_id: (3, 0)}
    assert h.health().queued == 3
