"""For every view, catching up after each command (in random page sizes) equals a rebuild from zero."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runjournal.adapters.clock import ManualClock
from runjournal.projections import builtin_projections

from runjournal import Journal, RunjournalError

VIEWS = [p.name for p in builtin_projections()]
# Progressing commands appear more than once so that logs reach every state.
OPS = ["submit", "submit", "submit_thread", "claim", "claim", "start", "start", "step", "message", "approval",
       "approval", "approve", "reject", "edit", "complete", "complete", "fail", "cancel", "expire", "finish_cancel"]


def _rows(j: Journal, table: str) -> list[tuple]:
    return j.runner.db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()


def _drive(j: Journal, clock: ManualClock, op: str, pick: int, state: dict) -> None:
    runs, claims, approvals = state["runs"], state["claims"], state["approvals"]
    claim = claims[pick % len(claims)] if claims else None
    try:
        if op in ("submit", "submit_thread"):
            thread = f"t{pick % 3}" if op == "submit_thread" else None
            runs.append(j.submit(agent_id=f"agent{pick % 2}", input={"message": f"m{pick}"}, thread_id=thread,
                                 priority=pick % 3).run_id)
        elif op == "claim":
            if (c := j.claim_next(worker_id=f"w{pick % 2}", lease_seconds=10)) is not None:
                claims.append(c)
        elif op == "expire":
            clock.advance(11)
            j.expire_leases(can_replay=lambda agent: agent == "agent1")
        elif op in ("approve", "reject", "edit") and approvals:
            edits = {"env": "staging"} if op == "edit" else None
            j.resolve_approval(approvals[pick % len(approvals)], decision=op, edits=edits, actor="bob")
        elif op == "cancel" and runs:
            j.cancel(runs[pick % len(runs)], actor="carol")
        elif claim is not None:
            {
                "start": lambda: j.start(claim),
                "step": lambda: j.record_step(claim, "step", {"n": pick}),
                "message": lambda: j.record_step(claim, "message", {"text": f"said {pick}"}),
                "approval": lambda: approvals.append(j.request_approval(claim, tool_name="deploy", tool_args={"n": pick})),
                "complete": lambda: j.complete(claim, output={"text": f"done {pick}"}),
                "fail": lambda: j.fail(claim, error=f"boom {pick}"),
                "finish_cancel": lambda: j.finish_cancel(claim),
            }.get(op, lambda: None)()
    except RunjournalError:
        pass  # refused commands are part of a realistic log


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), length=st.integers(20, 120))
def test_incremental_views_equal_a_rebuild(rng, length: int) -> None:
    steps = [(rng.choice(OPS), rng.randrange(50)) for _ in range(length)]
    page_sizes = [rng.randint(1, 7) for _ in range(rng.randint(1, 5))]
    clock = ManualClock()
    with Journal.open("memory://", clock=clock) as j:
        state: dict = {"runs": [], "claims": [], "approvals": []}
        for i, (op, pick) in enumerate(steps):
            _drive(j, clock, op, pick, state)
            j.page_size = page_sizes[i % len(page_sizes)]
            j.catch_up()
        incremental = {name: _rows(j, name) for name in VIEWS}
        queue, leases = j.queue(), j.leases()
        j.page_size = 1000
        for name in VIEWS:
            j.rebuild(name)
            assert _rows(j, name) == incremental[name], name
        j.rebuild_index()
        assert (j.queue(), j.leases()) == (queue, leases)


def test_the_views_answer_what_the_log_says(journal: Journal) -> None:
    a = journal.submit(agent_id="deployer", input={"message": "deploy"}, thread_id="ops")
    claim = journal.claim_next(worker_id="w1")
    journal.start(claim)
    approval = journal.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
    b = journal.submit(agent_id="echo", input={"message": "hi"}, thread_id="chat", priority=3)
    assert [r.run_id for r in journal.runs(state="queued")] == [b.run_id]
    assert [p.approval_id for p in journal.pending_approvals()] == [approval]
    assert {i.run_id: i.intent for i in journal.recovery_intents()} == {
        a.run_id: "wait-for-approval", b.run_id: "execute"}
    journal.cancel(a.run_id, actor="carol")
    assert journal.pending_approvals() == []
    assert journal.approvals()[0].status == "withdrawn"
    ops = journal.thread("ops")
    assert (ops.status, ops.run_count, ops.latest_run_id) == ("cancelled", 1, a.run_id)
    assert [m.content for m in journal.messages("chat")] == ["hi"]
