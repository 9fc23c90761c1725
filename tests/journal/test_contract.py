"""The Journal's public contract, on memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import pytest

from runjournal import (
    ApprovalNotFound,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    Journal,
    LeaseLost,
    RunNotFound,
    StoreUnavailable,
)


def _events(j: Journal) -> int:
    return j.max_position()


def test_submit_appends_created_and_queued_in_one_save(any_journal: Journal) -> None:
    run = any_journal.submit(agent_id="echo", input={"message": "hi"}, actor="alice")
    assert (run.state, run.version, run.agent_id, run.created_by) == ("queued", 2, "echo", "alice")
    assert [e.type for e in any_journal.history(run.run_id)] == ["Created", "Queued"]
    assert any_journal.get_run(run.run_id) == run


def test_a_whole_run_from_submit_to_completion(any_journal: Journal) -> None:
    run = any_journal.submit(agent_id="echo", input={"message": "hi"})
    claim = any_journal.claim_next(worker_id="w1", lease_seconds=30)
    assert claim is not None and claim.run_id == run.run_id and claim.epoch == 1
    any_journal.start(claim)
    any_journal.heartbeat(claim)
    any_journal.record_step(claim, "tool_result", {"tool": "search", "result": 3})
    done = any_journal.complete(claim, output={"text": "hello"})
    assert (done.state, done.output) == ("completed", {"text": "hello"})
    types = [e.type for e in any_journal.history(run.run_id)]
    assert types == ["Created", "Queued", "Dequeued", "Started", "LeaseRenewed", "StepRecorded", "Completed"]
    actors = {e.type: e.actor for e in any_journal.history(run.run_id)}
    assert actors["Completed"] == "worker:w1"
    assert any_journal.verify().ok


def test_claims_go_by_priority_then_age(any_journal: Journal) -> None:
    low = any_journal.submit(agent_id="a", input=1, priority=0)
    high = any_journal.submit(agent_id="a", input=2, priority=5)
    low2 = any_journal.submit(agent_id="a", input=3, priority=0)
    assert [q.run_id for q in any_journal.queue()] == [high.run_id, low.run_id, low2.run_id]
    order = [any_journal.claim_next(worker_id="w").run_id for _ in range(3)]
    assert order == [high.run_id, low.run_id, low2.run_id]
    assert any_journal.claim_next(worker_id="w") is None
    assert len(any_journal.leases()) == 3


def test_get_run_at_a_version_shows_the_past(any_journal: Journal) -> None:
    run = any_journal.submit(agent_id="a", input={})
    claim = any_journal.claim_next(worker_id="w")
    any_journal.start(claim)
    assert any_journal.get_run(run.run_id, at_version=1).state == "created"
    assert any_journal.get_run(run.run_id, at_version=3).state == "claimed"
    with pytest.raises(InvalidInput, match="at_version"):
        any_journal.get_run(run.run_id, at_version=9)


def test_unknown_runs_are_reported_by_id(any_journal: Journal) -> None:
    with pytest.raises(RunNotFound, match="nope"):
        any_journal.get_run("nope")
    with pytest.raises(RunNotFound):
        any_journal.history("6b1f0e52-0000-4000-8000-000000000000")
    with pytest.raises(RunNotFound):
        any_journal.cancel("6b1f0e52-0000-4000-8000-000000000000")
    with pytest.raises(ApprovalNotFound):
        any_journal.resolve_approval("6b1f0e52-0000-4000-8000-000000000000.a1", decision="approve")


def test_an_idempotency_key_returns_the_first_run(any_journal: Journal) -> None:
    first = any_journal.submit(agent_id="a", input={"n": 1}, idempotency_key="order-17")
    again = any_journal.submit(agent_id="a", input={"n": 1}, idempotency_key="order-17")
    assert again.run_id == first.run_id and _events(any_journal) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"agent_id": "", "input": {}}, "agent_id"),
        ({"agent_id": "a", "input": {"x": object()}}, "input"),
        ({"agent_id": "a", "input": float("nan")}, "input"),
        ({"agent_id": "a", "input": {}, "priority": "high"}, "priority"),
    ],
)
def test_bad_input_names_the_field_and_appends_nothing(any_journal: Journal, kwargs, field) -> None:
    with pytest.raises(InvalidInput) as info:
        any_journal.submit(**kwargs)
    assert info.value.field == field and isinstance(info.value, ValueError)
    assert _events(any_journal) == 0


def test_bad_worker_input_appends_nothing(any_journal: Journal) -> None:
    any_journal.submit(agent_id="a", input={})
    with pytest.raises(InvalidInput, match="lease_seconds"):
        any_journal.claim_next(worker_id="w", lease_seconds=-1)
    claim = any_journal.claim_next(worker_id="w")
    any_journal.start(claim)
    before = _events(any_journal)
    with pytest.raises(InvalidInput, match="kind"):
        any_journal.record_step(claim, "thought", {})
    approval = any_journal.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
    with pytest.raises(InvalidInput, match="decision"):
        any_journal.resolve_approval(approval, decision="maybe")
    with pytest.raises(InvalidInput, match="edits"):
        any_journal.resolve_approval(approval, decision="edit")
    assert _events(any_journal) == before + 1


def test_approval_then_resume_with_the_decision(any_journal: Journal) -> None:
    any_journal.submit(agent_id="deployer", input={"message": "deploy"})
    claim = any_journal.claim_next(worker_id="w1")
    any_journal.start(claim)
    approval_id = any_journal.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
    assert any_journal.claim_next(worker_id="w2") is None  # waiting runs are not claimable
    any_journal.resolve_approval(approval_id, decision="edit", edits={"env": "staging"}, actor="bob")
    with pytest.raises(InvalidTransition):
        any_journal.resolve_approval(approval_id, decision="approve", actor="bob")
    resumed = any_journal.claim_next(worker_id="w2")
    assert resumed.resume["decision"]["edited_args"] == {"env": "staging"}
    any_journal.start(resumed)
    history = any_journal.history(claim.run_id)
    assert [e.type for e in history][-3:] == ["ApprovalResolved", "Dequeued", "Resumed"]
    assert history[-1].data["resume_kind"] == "cross-restart"


def test_a_snapshot_is_a_copy_an_edit_of_which_changes_nothing_in_the_journal(any_journal: Journal) -> None:
    any_journal.submit(agent_id="echo", input={"message": "hi"}, invocation={"context": {"a": 1}})
    claim = any_journal.claim_next(worker_id="w1")
    started = any_journal.start(claim)  # built from the aggregate the journal keeps for the next command
    started.invocation["context"] = "edited"
    done = any_journal.complete(claim, output={"text": "hello"})
    assert done.invocation == {"context": {"a": 1}}
    assert any_journal.get_run(claim.run_id).invocation == {"context": {"a": 1}}


@pytest.mark.parametrize("state", ["queued", "waiting_for_approval", "running", "claimed", "resuming", "completed"])
def test_cancel_follows_the_rules(any_journal: Journal, state: str) -> None:
    run = any_journal.submit(agent_id="a", input={})
    if state != "queued":
        claim = any_journal.claim_next(worker_id="w")
        if state in ("running", "waiting_for_approval", "resuming", "completed"):
            any_journal.start(claim)
        if state in ("waiting_for_approval", "resuming"):
            approval = any_journal.request_approval(claim, tool_name="t")
            if state == "resuming":
                any_journal.resolve_approval(approval, decision="approve")
        if state == "completed":
            any_journal.complete(claim)
    before = _events(any_journal)
    result = any_journal.cancel(run.run_id, reason="changed my mind", actor="carol")
    expected = {"running": "cancelling", "claimed": "cancelling", "completed": "completed"}.get(state, "cancelled")
    assert result.state == expected
    if state == "completed":
        assert _events(any_journal) == before
    if expected == "cancelling":
        assert any_journal.cancel(run.run_id).state == "cancelling"  # nothing more appended
        assert any_journal.finish_cancel(claim).state == "cancelled"
    assert any_journal.claim_next(worker_id="w9") is None


def test_expired_leases_are_requeued_and_the_old_worker_is_fenced(any_journal: Journal, clock) -> None:
    run = any_journal.submit(agent_id="a", input={})
    old = any_journal.claim_next(worker_id="w1", lease_seconds=10)
    clock.advance(5)
    assert any_journal.expire_leases() == []
    clock.advance(6)
    assert any_journal.expire_leases() == [run.run_id]
    assert any_journal.get_run(run.run_id).state == "queued"
    new = any_journal.claim_next(worker_id="w2")
    assert new.epoch == old.epoch + 1
    with pytest.raises(LeaseLost):
        any_journal.start(old)
    any_journal.start(new)
    assert any_journal.complete(new).state == "completed"


def test_a_running_run_whose_lease_expires_fails_unless_replayable(any_journal: Journal, clock) -> None:
    a = any_journal.submit(agent_id="plain", input={})
    b = any_journal.submit(agent_id="replayable", input={})
    for _ in range(2):
        any_journal.start(any_journal.claim_next(worker_id="w1", lease_seconds=10))
    clock.advance(11)
    handled = any_journal.expire_leases(can_replay=lambda agent: agent == "replayable")
    assert sorted(handled) == sorted([a.run_id, b.run_id])
    failed = any_journal.get_run(a.run_id)
    assert (failed.state, failed.error) == ("failed", "stale running run cannot be replayed safely")
    again = any_journal.claim_next(worker_id="w2")
    assert again.run_id == b.run_id and again.resume["resume_kind"] == "startup-running-recovery"


def test_two_writers_on_one_run_one_wins(shared_store_url: str) -> None:
    with Journal.open(shared_store_url) as a, Journal.open(shared_store_url) as b:
        run = a.submit(agent_id="x", input={})
        claim = a.claim_next(worker_id="w1")
        a.start(claim)
        b.get_run(run.run_id)
        b_run = b._load(run.run_id, fresh=True)  # b holds version 4
        a.complete(claim)  # a saves version 5
        b_run.fail(error="late", actor="b", now=b.clock.now())
        with pytest.raises(ConcurrencyConflict):
            b._save(b_run)
        assert [e.type for e in a.history(run.run_id)].count("Completed") == 1
        assert b.get_run(run.run_id).state == "completed"


def test_claim_many_claims_the_best_runs_in_one_save(any_journal: Journal) -> None:
    runs = [any_journal.submit(agent_id="a", input={"i": i}, priority=i % 2) for i in range(5)]
    before = any_journal.max_position()
    claims = any_journal.claim_many(worker_id="w", count=3, start=True)
    expected = [r.run_id for r in sorted(runs, key=lambda r: -r.priority)][:3]
    assert [c.run_id for c in claims] == expected
    assert any_journal.max_position() == before + 6  # Dequeued + Started for each, saved together
    assert all(any_journal.get_run(c.run_id).state == "running" for c in claims)
    assert len(any_journal.queue()) == 2


def test_claim_many_falls_back_to_single_claims_when_a_run_was_taken_meanwhile(shared_store_url: str) -> None:
    with Journal.open(shared_store_url) as a, Journal.open(shared_store_url) as b:
        for i in range(3):
            a.submit(agent_id="x", input={"i": i})
        a.inline_views.claim_candidates(3)
        a.inline_views.release_candidates()  # on PostgreSQL they were reserved for a: b may take them
        for run in a.queue():
            a._load(run.run_id)  # a caches every queued run
        taken = b.claim_next(worker_id="b")  # b takes the best one: a's cached copy is stale
        claims = a.claim_many(worker_id="a", count=3)
        assert taken.run_id not in {c.run_id for c in claims} and len(claims) == 2
        everyone = [c.run_id for c in claims] + [taken.run_id]
        assert len(set(everyone)) == 3 and a.queue() == []


def test_submit_many_queues_every_run_in_one_save(any_journal: Journal) -> None:
    runs = any_journal.submit_many([{"agent_id": "a", "input": {"i": i}, "priority": i} for i in range(4)])
    assert [r.state for r in runs] == ["queued"] * 4 and any_journal.max_position() == 8
    assert [q.run_id for q in any_journal.queue()] == [r.run_id for r in reversed(runs)]


def test_submit_many_appends_nothing_when_one_request_is_bad(any_journal: Journal) -> None:
    with pytest.raises(InvalidInput, match=r"requests\[1\]\.agent_id"):
        any_journal.submit_many([{"agent_id": "a", "input": 1}, {"agent_id": "", "input": 2}])
    with pytest.raises(InvalidInput, match="idempotency_key"):
        any_journal.submit_many([{"agent_id": "a", "input": 1, "idempotency_key": "k"}])
    assert any_journal.max_position() == 0


def test_complete_many_saves_every_completion_together_and_reports_refusals_one_by_one(any_journal: Journal) -> None:
    for i in range(3):
        any_journal.submit(agent_id="a", input={"i": i})
    claims = any_journal.claim_many(worker_id="w", count=3, start=True)
    any_journal.cancel(claims[1].run_id, actor="carol")  # now cancelling: its Completed must be refused
    before = any_journal.max_position()
    results = any_journal.complete_many([(c, {"n": i}) for i, c in enumerate(claims)])
    assert isinstance(results[1], InvalidTransition)
    assert [r.state for r in (results[0], results[2])] == ["completed", "completed"]
    assert any_journal.max_position() == before + 2
    assert any_journal.get_run(claims[1].run_id).state == "cancelling"


def test_heartbeat_many_renews_every_lease_in_one_save_and_refuses_a_stale_claim_alone(any_journal: Journal) -> None:
    for i in range(3):
        any_journal.submit(agent_id="a", input={"i": i})
    claims = any_journal.claim_many(worker_id="w", count=3, start=True)
    any_journal.cancel(claims[2].run_id, actor="carol")  # cancelling: still leased, and renewed
    stale = claims[1].model_copy(update={"epoch": claims[1].epoch + 1})  # a claim this worker does not hold
    saves: list[int] = []
    save = any_journal._store.save  # noqa: SLF001 - counting this journal's own transactions

    def counted(*runs: Any, **kwargs: Any) -> Any:
        saves.append(len(runs))
        return save(*runs, **kwargs)

    any_journal._store.save = counted  # type: ignore[method-assign]  # noqa: SLF001
    before = any_journal.max_position()
    results = any_journal.heartbeat_many([claims[0], stale, claims[2]], lease_seconds=60)

    assert isinstance(results[1], LeaseLost)
    assert [r.state for r in (results[0], results[2])] == ["running", "cancelling"]
    assert all(r.lease_expires_at > c.lease_expires_at for r, c in ((results[0], claims[0]), (results[2], claims[2])))
    assert saves == [2] and any_journal.max_position() == before + 2  # one save, two LeaseRenewed
    assert any_journal.heartbeat_many([]) == []


def test_complete_many_refuses_repeat_completions_of_a_run_the_same_batch_completed(
    any_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal is the table's (already completed), and the batch is still ONE save, no fallback."""
    for i in range(2):
        any_journal.submit(agent_id="a", input={"i": i})
    first, second = any_journal.claim_many(worker_id="w", count=2, start=True)
    saves = []
    store_save = any_journal._store.save
    monkeypatch.setattr(any_journal._store, "save", lambda *a, **k: saves.append(a) or store_save(*a, **k))
    before = any_journal.max_position()
    results = any_journal.complete_many([(first, {"n": 1}), (first, {"n": 2}), (first, {"n": 3}), (second, {"n": 4})])
    assert [type(r).__name__ for r in results[1:3]] == ["InvalidTransition", "InvalidTransition"]
    assert {(r.state, r.event) for r in results[1:3]} == {("completed", "Completed")}
    assert [r.state for r in (results[0], results[3])] == ["completed", "completed"]
    assert len(saves) == 1, "a repeat in the batch forced the one-by-one fallback"
    assert any_journal.max_position() == before + 2
    assert any_journal.get_run(first.run_id).output == {"n": 1}
    assert [e.type for e in any_journal.history(first.run_id)].count("Completed") == 1


def _queued_then_claimed(journal: Journal, *, queued: int, claimed: int) -> list[Any]:
    """Submit ``queued`` runs and claim (and start) the first ``claimed`` of them as worker w."""
    for i in range(queued):
        journal.submit(agent_id="a", input={"i": i})
    return journal.claim_many(worker_id="w", count=claimed, start=True)


def test_complete_and_claim_completes_and_claims_the_next_runs_in_one_save(
    any_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _queued_then_claimed(any_journal, queued=4, claimed=2)
    any_journal.cancel(second.run_id, actor="carol")  # its Completed is refused; the rest still goes
    saves = []
    store_save = any_journal._store.save
    monkeypatch.setattr(any_journal._store, "save", lambda *a, **k: saves.append(a) or store_save(*a, **k))
    refusals, claims = any_journal.complete_and_claim(
        [(first, {"n": 1}), (second, {"n": 2})], worker_id="w", count=2, start=True)
    assert refusals[0] is None and isinstance(refusals[1], InvalidTransition)
    assert len(claims) == 2 and {c.run_id for c in claims}.isdisjoint({first.run_id, second.run_id})
    assert len(saves) == 1, "the completion and the claims were not one transaction"
    assert any_journal.get_run(first.run_id).state == "completed"
    assert [any_journal.get_run(c.run_id).state for c in claims] == ["running", "running"]


def test_complete_and_claim_falls_back_when_another_worker_took_a_candidate(
    any_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost race on a candidate never costs the completion: it is saved on its own, the claim retried."""
    (held,) = _queued_then_claimed(any_journal, queued=3, claimed=1)
    rival = Journal(any_journal._store, url=any_journal.url)  # another worker, its own cache
    stale = any_journal.queue()[0].run_id
    any_journal._load(stale)  # this worker's cached copy of the candidate goes stale ...
    assert rival.claim_next(worker_id="rival").run_id == stale  # ... as the rival claims it
    read_candidates = any_journal._candidates
    first_read = [True]

    def candidates_read_before_the_rival(limit: int, agents: Any) -> list[str]:
        if first_read.pop() if first_read else False:
            return [stale]
        return read_candidates(limit, agents)

    monkeypatch.setattr(any_journal, "_candidates", candidates_read_before_the_rival)
    store_save = any_journal._store.save
    conflicts = []

    def save(*a: Any, **k: Any) -> Any:
        try:
            return store_save(*a, **k)
        except Exception as e:
            conflicts.append(e)
            raise

    monkeypatch.setattr(any_journal._store, "save", save)
    refusals, claims = any_journal.complete_and_claim([(held, None)], worker_id="w", count=1, start=True)
    assert refusals == [None] and any_journal.get_run(held.run_id).state == "completed"
    assert len(claims) == 1 and claims[0].run_id != stale
    assert len(conflicts) == 1, "the group never met the rival's claim"
    assert [e.type for e in any_journal.history(stale)].count("Dequeued") == 1


def test_complete_and_claim_claims_nothing_while_a_completion_could_not_be_read(
    any_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    (held,) = _queued_then_claimed(any_journal, queued=2, claimed=1)
    outage = StoreUnavailable(any_journal.url, "OperationalError")
    monkeypatch.setattr(any_journal, "_completed_runs", lambda items: ([outage], {}))
    refusals, claims = any_journal.complete_and_claim([(held, None)], worker_id="w", count=1, start=True)
    assert refusals == [outage] and claims == [], "a run still holding its slot had it claimed again"


def test_claim_many_with_no_free_slot_claims_nothing(any_journal: Journal) -> None:
    for i in range(2):
        any_journal.submit(agent_id="a", input={"i": i})
    before = any_journal.max_position()
    assert any_journal.claim_many(worker_id="w", count=0) == []
    with pytest.raises(InvalidInput, match="count"):
        any_journal.claim_many(worker_id="w", count=-1)
    assert any_journal.max_position() == before


def test_claims_of_some_agents_leave_the_other_agents_runs_untouched(any_journal: Journal) -> None:
    deploy = any_journal.submit(agent_id="deployer", input="d", priority=5)
    echo = any_journal.submit(agent_id="echo", input="e")
    end = any_journal.max_position()

    assert any_journal.claim_next(worker_id="w1", agents=["nobody"]) is None
    assert any_journal.max_position() == end  # nothing of the other agent's run was touched
    claims = any_journal.claim_many(worker_id="w1", count=3, agents={"echo"}, start=True)

    assert [c.run_id for c in claims] == [echo.run_id]
    assert any_journal.get_run(deploy.run_id).state == "queued"
    assert [r.run_id for r in any_journal.queue()] == [deploy.run_id]
    claim = any_journal.claim_next(worker_id="w2", agents=("deployer", "echo"))
    assert claim is not None and claim.run_id == deploy.run_id


@pytest.mark.parametrize("agents", [[], "echo", [""]])
def test_claims_refuse_a_list_of_agents_that_names_none(any_journal: Journal, agents: object) -> None:
    any_journal.submit(agent_id="echo", input="e")
    end = any_journal.max_position()
    with pytest.raises(InvalidInput, match="agents"):
        any_journal.claim_next(worker_id="w1", agents=agents)  # type: ignore[arg-type]
    assert any_journal.max_position() == end
