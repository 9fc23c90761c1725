"""Workers with different workspaces share one store (reference L1778-1781, L2084-2088).

A worker claims only runs of the agents it has (or of those ``agents=`` / ``--agents``
names); a run of any other agent is left, untouched, for a worker that has it.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from runjournal import InvalidInput, Journal, UnknownAgent

from .conftest import DEPLOYER, ECHO, types, workspace

ECHO_ONLY = workspace({"echo": ECHO})
DEPLOYER_ONLY = workspace({"deployer": DEPLOYER}, routing={"default_agent": "deployer"})
BOTH = workspace()


def work(h) -> None:
    asyncio.run(h.work(until_idle=True))


def test_a_run_of_an_agent_this_worker_lacks_is_left_for_a_worker_that_has_it(make_harness, sqlite_url):
    journal = Journal.open(sqlite_url)
    echo_worker = make_harness(ECHO_ONLY, journal=journal, worker_id="echo-worker")
    deploy_run = journal.submit(agent_id="deployer", input={"message": "deploy"})
    echo_run = journal.submit(agent_id="echo", input={"message": "hi"})

    work(echo_worker)

    assert journal.get_run(echo_run.run_id).state == "completed"
    assert types(journal, deploy_run.run_id) == ["Created", "Queued"]  # not claimed, not failed
    journal.close()

    other = Journal.open(sqlite_url)  # another process, with the other workspace
    deploy_worker = make_harness(DEPLOYER_ONLY, journal=other, worker_id="deploy-worker")
    work(deploy_worker)
    assert other.get_run(deploy_run.run_id).state == "waiting_for_approval"
    assert types(other, deploy_run.run_id)[2:4] == ["Dequeued", "Started"]
    assert other.history(deploy_run.run_id)[2].actor == "worker:deploy-worker"
    other.close()


def test_agents_narrows_what_a_worker_claims(make_harness):
    h = make_harness(BOTH, agents=["echo"])
    deploy_run = h.journal.submit(agent_id="deployer", input={"message": "deploy"})
    echo_run = h.journal.submit(agent_id="echo", input={"message": "hi"})

    work(h)

    assert h.agents == ("echo",)
    assert h.journal.get_run(echo_run.run_id).state == "completed"
    assert h.journal.get_run(deploy_run.run_id).state == "queued"
    assert h.health().queued == 1


def test_agents_must_name_agents_of_the_workspace(make_harness):
    with pytest.raises(UnknownAgent, match=r"unknown agent 'nope' \(agents defined: deployer, echo\)"):
        make_harness(BOTH, agents=["echo", "nope"])
    with pytest.raises(InvalidInput, match="agents: name one or more agents"):
        make_harness(BOTH, agents=[])


def test_resuming_a_run_of_an_agent_this_worker_lacks_raises_and_records_nothing(make_harness):
    deploy_worker = make_harness(DEPLOYER_ONLY)
    paused = asyncio.run(deploy_worker.run({"message": "deploy"}))
    echo_worker = make_harness(ECHO_ONLY, journal=deploy_worker.journal, worker_id="w2")
    end = deploy_worker.journal.max_position()

    with pytest.raises(UnknownAgent, match="unknown agent 'deployer'"):
        asyncio.run(echo_worker.resume(approval_id=paused.approval_id, decision="approve"))

    assert deploy_worker.journal.max_position() == end
    done = asyncio.run(deploy_worker.resume(approval_id=paused.approval_id, decision="approve"))
    assert done.state == "completed"


def test_a_store_from_before_queue_rows_named_their_agent_is_labelled_on_open(make_harness, sqlite_url):
    with Journal.open(sqlite_url) as journal:
        deploy_run = journal.submit(agent_id="deployer", input={"message": "deploy"})
        echo_run = journal.submit(agent_id="echo", input={"message": "hi"})
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:  # as an earlier release left it
        db.execute("ALTER TABLE runjournal_queue DROP COLUMN agent_id")

    journal = Journal.open(sqlite_url)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        labels = dict(db.execute("SELECT run_id, agent_id FROM runjournal_queue").fetchall())
    assert labels == {deploy_run.run_id: "deployer", echo_run.run_id: "echo"}
    work(make_harness(ECHO_ONLY, journal=journal))
    assert [journal.get_run(r.run_id).state for r in (deploy_run, echo_run)] == ["queued", "completed"]
    assert journal.verify().ok
    journal.close()


def test_a_read_only_open_of_an_unlabelled_store_writes_nothing(sqlite_url):
    with Journal.open(sqlite_url) as journal:
        run = journal.submit(agent_id="echo", input="x")
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE runjournal_queue ADD COLUMN spare TEXT")  # any change would show
        db.execute("UPDATE runjournal_queue SET agent_id = NULL")

    with Journal.open(sqlite_url, read_only=True) as journal:
        assert [r.run_id for r in journal.queue()] == [run.run_id]

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT agent_id FROM runjournal_queue").fetchall() == [(None,)]
