"""A worker never acts on a run whose stored events fail their check: it quarantines it and goes on."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentRequest, Chunk
from runjournal.domain.errors import TamperDetected

from runjournal import Journal
from runjournal.bootstrap import build_adapters

from .conftest import ECHO, MakeHarness, workspace


def sync(test: Any) -> Any:
    """Run an async test body with asyncio.run (its fixtures as the test's)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run


class Deployer:
    """Asks to deploy; deploys (records it) only when resumed with an approval."""

    supports_replay = False

    def __init__(self) -> None:
        self.deployed: list[tuple[str, Any]] = []

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        if request.resume is None:
            yield Chunk.interrupt("deploy", {"env": "prod"}, message="deploy to prod?")
            return
        self.deployed.append((request.run_id, request.resume))
        yield Chunk.tool("deploy", {"env": "prod"}, "deployed")
        yield Chunk.say("Deployed")


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _hex(run_id: str) -> str:
    return run_id.replace("-", "")


def _forge_approval(url: str, run_id: str, template_run: str) -> None:
    """What an attacker with write access does: append an ApprovalResolved (chain of garbage, actor "cfo")
    and make the queue row say the run is claimable."""
    with sqlite3.connect(_path(url)) as db:
        (version,) = db.execute("SELECT MAX(originator_version) FROM stored_events WHERE originator_id = ?",
                                (_hex(run_id),)).fetchone()
        topic, state = db.execute(
            "SELECT topic, state FROM stored_events WHERE originator_id = ? AND topic LIKE '%ApprovalResolved%'",
            (_hex(template_run),),
        ).fetchone()
        fields = json.loads(state)
        fields.update(approval_id=f"{run_id}.a1", actor="cfo", decision="approve", chain="0badc0de" * 8)
        db.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
                   (_hex(run_id), version + 1, topic, json.dumps(fields).encode()))
        db.execute("UPDATE runjournal_queue SET state = 'resuming', claimable = 1 WHERE run_id = ?", (run_id,))


async def _waiting_and_template(make_harness: MakeHarness, url: str, adapter: Deployer) -> tuple[str, str]:
    """(a deploy run waiting for approval, a deploy run approved and completed: the forger's template)."""
    ws = workspace({"deployer": {"adapter": "scripted", "script": [{"say": "x"}]}, "echo": ECHO})
    h = make_harness(ws, url=url, adapters={"deployer": adapter, "echo": build_adapters(ws)["echo"]})
    template = await h.run("deploy", agent_id="deployer")
    await h.resume(approval_id=template.approval_id, decision="approve", actor="alice")
    victim = await h.run("deploy", agent_id="deployer")
    assert victim.state == "waiting_for_approval"
    h.journal.close()
    return victim.run_id, template.run_id


def _harness_on(make_harness: MakeHarness, url: str, adapter: Deployer, worker_id: str = "w2") -> Any:
    ws = workspace({"deployer": {"adapter": "scripted", "script": [{"say": "x"}]}, "echo": ECHO})
    echo = build_adapters(ws)["echo"]
    return make_harness(ws, url=url, adapters={"deployer": adapter, "echo": echo}, worker_id=worker_id)


@sync
async def test_a_forged_approval_is_never_acted_on_and_the_rest_of_the_queue_completes(
    make_harness: MakeHarness, sqlite_url: str
) -> None:
    adapter = Deployer()
    victim, template = await _waiting_and_template(make_harness, sqlite_url, adapter)
    assert adapter.deployed == [(template, adapter.deployed[0][1])]
    _forge_approval(sqlite_url, victim, template)

    h = _harness_on(make_harness, sqlite_url, adapter)
    others = [h.submit(f"hello {i}") for i in range(3)]
    await h.work()

    assert [run_id for run_id, _ in adapter.deployed] == [template]  # the tool never ran for the victim
    assert all(h.journal.get_run(r.run_id).state == "completed" for r in others)
    (row,) = h.journal.quarantined()
    assert (row.run_id, row.version, row.quarantined_by) == (victim, 6, "worker:w2")
    assert "chain mismatch" in row.what
    assert h.health().quarantined == 1
    assert victim not in {r.run_id for r in h.journal.queue()}
    with pytest.raises(TamperDetected):
        h.journal.get_run(victim)
    with pytest.raises(TamperDetected):
        h.journal.history(victim)


@sync
async def test_startup_recovery_quarantines_and_goes_on(make_harness: MakeHarness, sqlite_url: str) -> None:
    adapter = Deployer()
    victim, template = await _waiting_and_template(make_harness, sqlite_url, adapter)
    _forge_approval(sqlite_url, victim, template)
    h = _harness_on(make_harness, sqlite_url, adapter)
    report = await h.recover()  # the views saw the forged event: recovery would resume the run
    assert victim not in report.resumed
    assert [r.run_id for r in h.journal.quarantined()] == [victim]
    await h.recover()  # again: nothing left to trip on
    await h.work()
    assert [run_id for run_id, _ in adapter.deployed] == [template]


@sync
async def test_quarantine_survives_a_restart_and_the_operator_releases_the_repaired_run(
    make_harness: MakeHarness, sqlite_url: str
) -> None:
    adapter = Deployer()
    victim, template = await _waiting_and_template(make_harness, sqlite_url, adapter)
    _forge_approval(sqlite_url, victim, template)
    h = _harness_on(make_harness, sqlite_url, adapter)
    await h.work()
    assert h.journal.quarantined_ids() == {victim}
    with pytest.raises(TamperDetected):
        h.journal.release(victim)  # still broken: refused
    h.journal.close()

    with sqlite3.connect(_path(sqlite_url)) as db:  # the repair: the forged row goes
        db.execute("DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 6", (_hex(victim),))

    h = _harness_on(make_harness, sqlite_url, adapter, worker_id="w3")
    assert h.journal.quarantined_ids() == {victim}  # kept in the store
    await h.work()
    assert [run_id for run_id, _ in adapter.deployed] == [template]  # still skipped until released
    h.journal.release(victim, actor="ops")
    assert h.journal.quarantined() == [] and h.health().quarantined == 0
    run = h.journal.get_run(victim)
    assert run.state == "waiting_for_approval"
    result = await h.resume(approval_id=run.pending_approval["approval_id"], decision="approve", actor="alice")
    assert result.state == "completed"
    assert [run_id for run_id, _ in adapter.deployed] == [template, victim]


@sync
async def test_a_run_tampered_with_while_it_runs_is_quarantined_not_failed(
    make_harness: MakeHarness, sqlite_url: str
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    class Slow:
        supports_replay = False

        async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
            yield Chunk.step({"n": 1})
            started.set()
            await gate.wait()
            yield Chunk.step({"n": 2})  # appended on a log that no longer checks
            yield Chunk.say("done")

    ws = workspace({"slow": {"adapter": "scripted", "script": [{"say": "x"}]}, "echo": ECHO})
    h = make_harness(ws, url=sqlite_url, adapters={"slow": Slow(), "echo": build_adapters(ws)["echo"]})
    run = h.submit("go", agent_id="slow")
    other = h.submit("hello")
    worker = asyncio.create_task(h.work())
    await asyncio.wait_for(started.wait(), 10)
    with sqlite3.connect(_path(sqlite_url)) as db:  # the step of version 5 edited under the worker
        db.execute("UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '\"n\":1', '\"n\":7') AS BLOB)"
                   " WHERE originator_id = ? AND originator_version = 5", (_hex(run.run_id),))
        db.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) SELECT"
                   " originator_id, 6, topic, state FROM stored_events WHERE originator_id = ? AND"
                   " originator_version = 5", (_hex(run.run_id),))
    gate.set()
    await asyncio.wait_for(worker, 20)
    assert h.journal.quarantined_ids() == {run.run_id}
    assert h.journal.get_run(other.run_id).state == "completed"
    with sqlite3.connect(_path(sqlite_url)) as db:
        kinds = [t for (t,) in db.execute("SELECT topic FROM stored_events WHERE originator_id = ?"
                                          " ORDER BY originator_version", (_hex(run.run_id),))]
    assert not any("Failed" in t or "Completed" in t for t in kinds)  # nothing more appended to it


@pytest.mark.parametrize("url_fixture", ["memory", "sqlite_url", "postgres_url"])
def test_claims_and_lease_expiry_skip_a_quarantined_run_on_every_store(request, url_fixture: str) -> None:
    url = "memory://" if url_fixture == "memory" else request.getfixturevalue(url_fixture)
    with Journal.open(url) as j:
        first = j.submit(agent_id="a", input={}, priority=5)
        second = j.submit(agent_id="a", input={})
        j.quarantine(TamperDetected(first.run_id, 2, "chain mismatch"), by="test")
        assert [r.run_id for r in j.quarantined()] == [first.run_id]
        assert [r.run_id for r in j.queue()] == [second.run_id]
        claim = j.claim_next(worker_id="w")
        assert claim is not None and claim.run_id == second.run_id
        assert j.claim_next(worker_id="w") is None
        assert j.claim_many(worker_id="w", count=3) == []
        j.release(first.run_id, actor="ops")
        assert j.quarantined() == []
        again = j.claim_next(worker_id="w")
        assert again is not None and again.run_id == first.run_id
        with pytest.raises(Exception, match="not quarantined"):
            j.release(first.run_id)


def test_rebuilding_the_index_keeps_the_quarantine(sqlite_url: str) -> None:
    with Journal.open(sqlite_url) as j:
        run = j.submit(agent_id="a", input={})
        j.quarantine(TamperDetected(run.run_id, None, "found by hand"), by="ops")
        j.rebuild_index()
        assert j.quarantined_ids() == {run.run_id}
        assert j.claim_next(worker_id="w") is None
        j.release(run.run_id)
        assert j.claim_next(worker_id="w") is not None


def test_lease_expiry_skips_a_quarantined_run(sqlite_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    with Journal.open(sqlite_url, clock=clock) as j:
        run = j.submit(agent_id="a", input={})
        j.claim_next(worker_id="w", lease_seconds=5)
        j.quarantine(TamperDetected(run.run_id, 3, "chain mismatch"), by="test")
        clock.advance(60)
        assert j.expire_leases() == []
        assert j.get_run(run.run_id).state == "claimed"  # untouched
        j.release(run.run_id)
        assert j.expire_leases() == [run.run_id]


@sync
async def test_a_forged_topic_is_refused_by_the_views_and_quarantined_by_the_worker(
    make_harness: MakeHarness, sqlite_url: str
) -> None:
    adapter = Deployer()
    h = _harness_on(make_harness, sqlite_url, adapter, worker_id="w1")
    victim = h.submit("hello")  # queued, never claimed
    h.journal.close()
    with sqlite3.connect(_path(sqlite_url)) as db:  # its Queued event names code
        assert db.execute("UPDATE stored_events SET topic = 'tempfile:_TemporaryFileCloser' WHERE originator_id = ?"
                          " AND originator_version = 2", (_hex(victim.run_id),)).rowcount == 1

    h = _harness_on(make_harness, sqlite_url, adapter)
    others = [h.submit(f"hello {i}") for i in range(2)]
    await h.recover()  # reads the views: they refuse the victim and go on
    await h.work()
    assert all(h.journal.get_run(r.run_id).state == "completed" for r in others)
    assert [r.run_id for r in h.journal.refused_runs()] == [victim.run_id]
    assert [r.run_id for r in h.journal.quarantined()] == [victim.run_id]  # the claim met it: set aside
    health = h.health()
    assert (health.refused_by_views, health.quarantined) == (1, 1)
