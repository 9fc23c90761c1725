"""find_runs against a brute-force scan of every run's history, over hypothesis-generated logs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from runjournal.adapters.clock import ManualClock

from runjournal import InvalidInput, Journal

AGENTS = ("a", "b")
THREADS = ("t1", "t2", None)
TOOLS = ("search", "deploy", "mail")
ACTORS = ("alice", "bob")
ERRORS = ("Disk full", "timeout talking to API", "Permission denied")
ENDINGS = ("queued", "running", "waiting", "completed", "failed", "cancelled")

plans = st.lists(st.fixed_dictionaries({
    "agent": st.sampled_from(AGENTS), "thread": st.sampled_from(THREADS),
    "tools": st.lists(st.sampled_from(TOOLS), max_size=3),
    "decision": st.none() | st.tuples(st.sampled_from(("approve", "reject", "edit")), st.sampled_from(ACTORS)),
    "ending": st.sampled_from(ENDINGS), "error": st.sampled_from(ERRORS),
    "pause": st.integers(0, 7200),
}), min_size=1, max_size=12)

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "state": st.sampled_from(("queued", "running", "waiting_for_approval", "completed", "failed", "cancelled")),
    "agent_id": st.sampled_from(AGENTS), "thread_id": st.sampled_from(("t1", "t2")),
    "tool": st.sampled_from(TOOLS), "approved_by": st.sampled_from(ACTORS),
    "decision": st.sampled_from(("approve", "reject", "edit")),
    "error": st.sampled_from(("disk", "api", "DENIED", "timeout", "nothing like it")),
    "waiting_longer": st.integers(0, 20_000).map(lambda s: timedelta(seconds=s)),
    "since": st.integers(0, 40_000), "until": st.integers(0, 40_000),
}
# One or two filters at a time: most conjunctions of many find nothing, and prove little.
queries = st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: VALUES[k] for k in keys}))


def build(j: Journal, clock: ManualClock, plan: list[dict[str, Any]]) -> None:
    """Each planned run lived through to its ending (queued ones submitted last, so claims take the planned run)."""
    for p in sorted(plan, key=lambda p: p["ending"] == "queued"):
        clock.advance(p["pause"])
        run = j.submit(agent_id=p["agent"], input={"m": 1}, thread_id=p["thread"])
        if p["ending"] == "queued":
            continue
        claim = j.claim_next(worker_id="w", start=True, lease_seconds=86_400)
        assert claim is not None and claim.run_id == run.run_id
        j.record_steps(claim, [("tool_result", {"tool": t, "args": {}, "output": None, "is_error": False})
                               for t in p["tools"]] or [("step", {"note": "no tools"})])
        if p["ending"] == "running":
            continue
        if p["decision"] is not None or p["ending"] == "waiting":
            approval = j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
            if p["ending"] == "waiting":
                continue
            decision, actor = p["decision"] or ("approve", "alice")
            j.resolve_approval(approval, decision=decision, edits={"env": "dev"} if decision == "edit" else None,
                               actor=actor)
            claim = j.claim_next(worker_id="w", start=True, lease_seconds=86_400)
            assert claim is not None
        if p["ending"] == "completed":
            j.complete(claim, output={"text": "ok"})
        elif p["ending"] == "failed":
            j.fail(claim, error=p["error"])
        else:
            j.cancel(run.run_id, actor="ops")
            if j.get_run(run.run_id).state == "cancelling":
                j.finish_cancel(claim)


def brute_force(j: Journal, clock: ManualClock, start: Any, q: dict[str, Any]) -> list[str]:
    """The runs that meet ``q``, read off every run's full history."""
    found = []
    for run in sorted(j.runs(), key=lambda r: (r.created_at, r.run_id)):
        events = j.history(run.run_id)
        created, last = events[0], events[-1]
        snapshot = j.get_run(run.run_id)
        tools = {e.data["content"]["tool"] for e in events
                 if e.type == "StepRecorded" and e.data["kind"] == "tool_result"}
        decisions = [(e.data["decision"], e.actor) for e in events if e.type == "ApprovalResolved"]
        checks = {
            "state": lambda v: snapshot.state == v,
            "agent_id": lambda v: created.data["agent_id"] == v,
            "thread_id": lambda v: created.data["thread_id"] == v,
            "tool": lambda v: v in tools,
            "approved_by": lambda v: any(d in ("approve", "edit") and a == v for d, a in decisions),
            "decision": lambda v: any(d == v for d, _ in decisions),
            "error": lambda v: snapshot.error is not None and v.lower() in snapshot.error.lower(),
            "waiting_longer": lambda v: (snapshot.state == "waiting_for_approval"
                                         and last.timestamp <= clock.now() - v),
            "since": lambda v: created.timestamp >= start + timedelta(seconds=v),
            "until": lambda v: created.timestamp < start + timedelta(seconds=v),
        }
        if all(checks[k](v) for k, v in q.items()):
            found.append(run.run_id)
    return found


# The cases a filter could get wrong, each of which the property must meet: an approval edited
# (not approved) by the actor asked for, an error whose case differs from the text asked for.
EDGES = {"approved_by an edit", "error in another case"}
FILTERS = set(VALUES) | EDGES


def _edge_cases(j: Journal, q: dict[str, Any], found: list[str]) -> set[str]:
    met = set()
    for run_id in found:
        events = j.history(run_id)
        if "approved_by" in q and not any(e.type == "ApprovalResolved" and e.data["decision"] == "approve"
                                          and e.actor == q["approved_by"] for e in events):
            met.add("approved_by an edit")
        error = j.get_run(run_id).error or ""
        if "error" in q and q["error"] not in error:
            met.add("error in another case")
    return met


def _run(agent: str, thread: str | None, tools: list[str], decision: tuple[str, str] | None, ending: str,
         error: str = "Disk full", pause: int = 60) -> dict[str, Any]:
    return {"agent": agent, "thread": thread, "tools": tools, "decision": decision, "ending": ending, "error": error,
            "pause": pause}


# One log the property always checks besides the generated ones: every filter finds something in it,
# including an approval only edited by its actor and an error asked for in another case.
EVERY_KIND_OF_RUN = [
    _run("a", "t1", ["search"], ("edit", "alice"), "completed"),
    _run("b", "t2", ["deploy", "mail"], ("approve", "bob"), "failed", pause=5000),
    _run("a", None, [], None, "waiting"),
    _run("b", "t1", ["mail"], ("reject", "alice"), "cancelled", pause=300),
    _run("a", "t2", [], None, "queued"),
    _run("b", None, ["search"], None, "running", pause=20),
]
EVERY_FILTER = [{"state": "failed"}, {"agent_id": "a"}, {"thread_id": "t1"}, {"tool": "mail"},
                {"approved_by": "alice"}, {"decision": "reject"}, {"error": "disk"},
                {"waiting_longer": timedelta(0)}, {"since": 200}, {"until": 6000}]


def test_every_filter_finds_what_a_scan_of_the_histories_finds() -> None:
    found_by: set[str] = set()  # filters that found at least one run somewhere: the property reached them

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @example(plan=EVERY_KIND_OF_RUN, qs=EVERY_FILTER, page=(2, 1))
    @given(plan=plans, qs=st.lists(queries, min_size=1, max_size=8),
           page=st.tuples(st.integers(1, 5), st.integers(0, 6)))
    def property_(plan: list[dict[str, Any]], qs: list[dict[str, Any]], page: tuple[int, int]) -> None:
        clock = ManualClock()
        start = clock.now()
        with Journal.open("memory://", clock=clock) as j:
            build(j, clock, plan)
            for q in qs:
                given_q = {k: start + timedelta(seconds=v) if k in ("since", "until") else v for k, v in q.items()}
                expected = brute_force(j, clock, start, q)
                found = j.find_runs(**given_q, limit=100_000)
                assert [r.run_id for r in found.runs] == expected, q
                assert found.total == len(expected)
                limit, offset = page
                paged = j.find_runs(**given_q, limit=limit, offset=offset)
                assert [r.run_id for r in paged.runs] == expected[offset:offset + limit]
                assert paged.total == len(expected)
                if expected:
                    found_by.update(q)
                    found_by.update(_edge_cases(j, q, expected))

    property_()
    assert found_by == FILTERS, FILTERS - found_by


def test_a_bad_filter_is_refused_naming_it(journal: Journal) -> None:
    for bad, field in (({"state": "sleeping"}, "state"), ({"decision": "maybe"}, "decision"), ({"limit": 0}, "limit"),
                       ({"offset": -1}, "offset"), ({"waiting_longer": timedelta(seconds=-1)}, "waiting_longer"),
                       ({"error": ""}, "error")):
        with pytest.raises(InvalidInput) as caught:
            journal.find_runs(**bad)
        assert caught.value.field == field


def test_the_error_filter_finds_errors_sealed_in_an_encrypted_views_file(sqlite_url, monkeypatch, tmp_path) -> None:
    from eventsourcing.cryptography import AESCipher

    monkeypatch.setenv("RUNJOURNAL_CIPHER_KEY", AESCipher.create_key(num_bytes=32))
    clock = ManualClock()
    with Journal.open(sqlite_url, clock=clock) as j:
        for error in ("Disk full", "Permission denied", "disk quota exceeded"):
            clock.advance(1)
            j.submit(agent_id="a", input={"m": 1})
            j.fail(j.claim_next(worker_id="w", start=True), error=error)
        page = j.find_runs(error="DISK", limit=1, offset=1)
        assert (page.total, [r.error for r in page.runs]) == (2, ["disk quota exceeded"])
        views = (tmp_path / "journal.views.db").read_bytes()
    assert b"Disk full" not in views and b"quota" not in views  # the errors are sealed where they are stored


def test_pages_read_along_the_creation_index_find_the_same_runs(monkeypatch) -> None:
    from runjournal.app import run_query

    monkeypatch.setattr(run_query, "DENSE", 0)  # every page with a fact filter is read along the index
    clock = ManualClock()
    start = clock.now()
    with Journal.open("memory://", clock=clock) as j:
        build(j, clock, EVERY_KIND_OF_RUN * 3)
        for q in EVERY_FILTER + [{"tool": "search", "approved_by": "alice"}, {"tool": "mail", "state": "failed"}]:
            given_q = {k: start + timedelta(seconds=v) if k in ("since", "until") else v for k, v in q.items()}
            expected = brute_force(j, clock, start, q)
            for limit, offset in ((100, 0), (2, 1), (1, 3)):
                page = j.find_runs(**given_q, limit=limit, offset=offset)
                assert [r.run_id for r in page.runs] == expected[offset:offset + limit], q
                assert page.total == len(expected), q
