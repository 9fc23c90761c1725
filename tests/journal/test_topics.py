"""Stored topics resolve only through runjournal's registry: data read from a store never names code.

A topic is resolved by eventsourcing as ``module:attribute`` (it imports the module). Each
reader here (the mapper under the loader and snapshots, the views' decoder, export, import,
verify) must refuse a topic that is not one of ours before importing or constructing anything.
``this`` is the probe: importing it prints the Zen of Python, and it shows in ``sys.modules``;
the scripts run in a fresh interpreter, so nothing else in the test session can have imported it.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from runjournal.adapters.storage import topics
from runjournal.adapters.storage.urls import MAPPER_KEY, store_env
from runjournal.domain import Run, events, transitions
from runjournal.domain.errors import TamperDetected

from runjournal import Journal, StoreError

ZEN = "Beautiful is better than ugly"
FOREIGN = ["this", "tempfile:_TemporaryFileCloser", "os:system", "runjournal.Run.Created.v2",
           "runjournal.domain.events:Created", " runjournal.Run.Created.v1", ""]


# -- the registry ---------------------------------------------------------------------------------


def test_the_registry_holds_every_run_event_class_under_its_own_topic() -> None:
    assert [c.__name__ for c in events.EVENT_CLASSES] == list(transitions.EVENT_NAMES)
    assert all(getattr(Run, c.__name__) is c for c in events.EVENT_CLASSES)
    assert set(topics.EVENT_TOPICS) == {c.TOPIC for c in events.EVENT_CLASSES} | set(events.OLD_TOPICS)
    assert all(topics.EVENT_TOPICS[c.TOPIC] is c for c in events.EVENT_CLASSES)
    assert all(cls in events.EVENT_CLASSES for cls in events.OLD_TOPICS.values())
    assert topics.AGGREGATE_TOPICS == {"runjournal.Run": Run}
    assert topics.SNAPSHOT_TOPICS == {get_topic(Run.Snapshot): Run.Snapshot}


@pytest.mark.parametrize("topic", [*FOREIGN, 7, None, b"runjournal.Run.Created.v1", ["x"]])
def test_anything_else_is_refused_naming_the_topic(topic: Any) -> None:
    with pytest.raises(topics.UnknownTopic) as caught:
        topics.resolve(topic, run_id="r1", version=3)
    error = caught.value
    assert isinstance(error, TamperDetected) and isinstance(error, StoreError)
    assert (error.run_id, error.version) == ("r1", 3)
    assert repr(topic)[:40] in str(error) and "refused without loading" in str(error)


def test_each_kind_of_topic_resolves_only_in_its_own_table() -> None:
    created, snapshot = events.Created.TOPIC, get_topic(Run.Snapshot)
    assert topics.resolve(created) is events.Created
    assert topics.resolve_stored(snapshot) is Run.Snapshot
    assert topics.resolve_aggregate(Run.TOPIC) is Run
    for resolve, topic in [(topics.resolve, Run.TOPIC), (topics.resolve, snapshot),
                           (topics.resolve_aggregate, created), (topics.resolve_snapshot, created),
                           (topics.resolve_stored, Run.TOPIC)]:
        with pytest.raises(topics.UnknownTopic):
            resolve(topic)


def test_the_error_pickles_and_describes_itself() -> None:
    for error in (topics.UnknownTopic("this", run_id="r1", version=2, where="position 9"),
                  topics.UnknownTopic(["x"], kind="aggregate", where="log.jsonl:3")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is topics.UnknownTopic and str(copy) == str(error) and vars(copy) == vars(error)
        assert error.to_dict()["code"] == "unknown_topic" and error.to_dict()["topic"] == error.topic
    assert str(topics.UnknownTopic("x" * 500)).count("x") < 100  # a huge topic is clipped


# -- the mapper -----------------------------------------------------------------------------------


def test_the_journal_store_decodes_with_the_registry_mapper_and_no_other_application_does() -> None:
    env = store_env("memory://", environ={})
    assert env[MAPPER_KEY] == "runjournal.adapters.storage.topics:RegistryMapper"
    with Journal.open("memory://") as j:
        assert type(j._store.mapper) is topics.RegistryMapper
    other = Application(env=env)  # another eventsourcing application given the same settings
    assert type(other.mapper) is Mapper


def _stored(topic: str, state: dict[str, Any], version: int = 1) -> StoredEvent:
    return StoredEvent(originator_id=uuid.uuid4(), originator_version=version, topic=topic,
                       state=json.dumps(state).encode())


def test_the_mapper_refuses_a_foreign_topic_and_a_foreign_inner_topic() -> None:
    with Journal.open("memory://") as j:
        mapper = j._store.mapper
        run = j.submit(agent_id="a", input={})
        (first, *_) = next(j.notifications())
        assert type(mapper.to_domain_event(first)) is events.Created
        for topic in FOREIGN:
            with pytest.raises(topics.UnknownTopic, match="is not an event or snapshot type"):
                mapper.to_domain_event(_stored(topic, {"name": "/etc/passwd"}))
        forged = dict(j._store.mapper.transcoder.decode(first.state), originator_topic="this")
        with pytest.raises(topics.UnknownTopic, match="field originator_topic"):
            mapper.to_domain_event(StoredEvent(first.originator_id, 1, first.topic, json.dumps(
                forged, default=str).encode()))
        snapshot = {"timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"},
                    "topic": "this", "state": {}}
        with pytest.raises(topics.UnknownTopic, match="field topic"):
            mapper.to_domain_event(_stored(get_topic(Run.Snapshot), snapshot))
        assert j.get_run(run.run_id).state == "queued"


# -- every reader, in a fresh interpreter ---------------------------------------------------------

BUILD = """
import json, sys
from runjournal import Journal
with Journal.open(sys.argv[1]) as j:
    runs = [j.submit(agent_id="a", input={"n": i}).run_id for i in range(3)]
    claim = j.claim_next(worker_id="w")
    j.start(claim)
    for i in range(55):  # past the snapshot interval (50)
        j.record_step(claim, "step", {"i": i})
print(json.dumps({"runs": runs, "long": claim.run_id}))
"""

READ = """
import contextlib, io, json, sys
from runjournal import Journal
from runjournal.app.audit import export_events
url, run_id = sys.argv[1], sys.argv[2]
printed, found = io.StringIO(), {}
with contextlib.redirect_stdout(printed), Journal.open(url) as j:
    calls = {
        "status": lambda: j.get_run(run_id).state,
        "history": lambda: len(j.history(run_id)),
        "claim": lambda: [j.claim_next(worker_id="w2") for _ in range(3)] and "claimed",
        "views": lambda: sorted((r.run_id, r.state) for r in j.runs()),
        "refused": lambda: [(r.run_id, r.version) for r in j.refused_runs()],
        "export": lambda: len(list(export_events(j))),
        "verify": lambda: [p.problem for p in j.verify().problems],
    }
    for name, call in calls.items():
        if name in sys.argv[3:]:
            try:
                found[name] = call()
            except Exception as e:
                found[name] = f"{type(e).__name__}: {e}"
found["imported"] = "this" in sys.modules
found["printed"] = printed.getvalue()
print(json.dumps(found))
"""


def _python(script: str, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert ZEN not in done.stdout + done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def forged_store(tmp_path: Path) -> tuple[str, Path, dict[str, Any]]:
    path = tmp_path / "j.db"
    url = f"sqlite:///{path}"
    return url, path, _python(BUILD, url)


def _hex(run_id: str) -> str:
    return uuid.UUID(run_id).hex


def test_a_stored_event_topic_of_this_is_refused_by_every_reader(forged_store) -> None:
    url, path, built = forged_store
    victim = built["runs"][1]
    with sqlite3.connect(path) as db:
        assert db.execute("UPDATE stored_events SET topic = 'this' WHERE originator_id = ? AND "
                          "originator_version = 2", (_hex(victim),)).rowcount == 1
    found = _python(READ, url, victim, "status", "history", "claim", "views", "refused", "export")
    assert found["imported"] is False and found["printed"] == ""
    for name in ("status", "history"):
        assert found[name].startswith(("TamperDetected", "UnknownTopic")), found[name]
        assert f"run {victim} at version 2" in found[name]
    assert found["claim"] == "claimed"  # the other runs are claimed; the forged one is set aside
    # The views refuse the run at the forged row (never resolved) and follow every other run.
    assert found["refused"] == [[victim, 2]], found
    assert [victim, "created"] in found["views"] and len(found["views"]) == 3, found["views"]
    assert found["export"].startswith("UnknownTopic") and "'this'" in found["export"], found["export"]


def test_verify_refuses_a_stored_topic_without_importing_it(forged_store) -> None:
    url, path, built = forged_store
    victim = built["runs"][1]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stored_events SET topic = 'this' WHERE originator_id = ? AND originator_version = 2",
                   (_hex(victim),))
    found = _python(READ, url, victim, "verify")
    assert found["imported"] is False and found["printed"] == "", found
    assert any("'this'" in p for p in found["verify"]), found["verify"]


def test_a_snapshot_naming_another_class_is_never_used(forged_store) -> None:
    url, path, built = forged_store
    long_run = _hex(built["long"])
    with sqlite3.connect(path) as db:
        state = db.execute("SELECT state FROM stored_snapshots WHERE originator_id = ?", (long_run,)).fetchone()[0]
        assert b'"topic":"runjournal.Run"' in state
        db.execute("UPDATE stored_snapshots SET state = ? WHERE originator_id = ?",
                   (state.replace(b'"topic":"runjournal.Run"', b'"topic":"this"'), long_run))
    found = _python(READ, url, built["long"], "status", "history")
    assert found == {"status": "running", "history": 59, "imported": False, "printed": ""}
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stored_snapshots SET topic = 'this' WHERE originator_id = ?", (long_run,))
    found = _python(READ, url, built["long"], "status")
    assert found == {"status": "running", "imported": False, "printed": ""}


def test_a_created_event_naming_another_aggregate_is_refused(forged_store) -> None:
    url, path, built = forged_store
    victim = built["runs"][2]
    with sqlite3.connect(path) as db:
        state = db.execute("SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = 1",
                           (_hex(victim),)).fetchone()[0]
        db.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 1",
                   (state.replace(b'"originator_topic":"runjournal.Run"', b'"originator_topic":"this"'),
                    _hex(victim)))
    found = _python(READ, url, victim, "status", "views", "refused", "verify")
    assert found["imported"] is False and found["printed"] == ""
    assert f"run {victim} at version 1" in found["status"]
    assert found["refused"] == [[victim, 1]] and len(found["views"]) == 2, found  # never followed at all
    assert victim not in {run_id for run_id, _ in found["views"]}
    assert found["verify"], "the edited Created event verified"
