"""User data shaped like the store's own type envelopes is data: stored, read and verified as given."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from eventsourcing.application import Application
from runjournal.adapters.storage.urls import store_env

from runjournal import Journal
from runjournal.app.audit import export_events, import_events
from runjournal.app.unit_of_work import RunStore

POISONS: list[Any] = [
    {"_type_": "no_such_type", "_data_": 1},
    {"_type_": "datetime_iso", "_data_": "2020-01-01T00:00:00+00:00"},
    {"_type_": "uuid_hex", "_data_": "0" * 32},
    {"_type_": "decimal_str", "_data_": "1.5"},
    {"deep": [{"_type_": "no_such_type", "_data_": {"_type_": "uuid_hex", "_data_": "x"}}]},
]


def _drive(j: Journal, poison: Any) -> str:
    """A run with the poison in every payload a user or an agent can send."""
    run = j.submit(agent_id="a", input=poison, actor="alice")
    claim = j.claim_next(worker_id="w")
    assert claim is not None and claim.input == poison
    j.start(claim)
    j.record_step(claim, "tool_result", poison)
    approval = j.request_approval(claim, tool_name="t", tool_args={"p": poison}, content=poison)
    j.resolve_approval(approval, decision="edit", edits={"p": poison, "q": poison}, actor="bob")
    claim = j.claim_next(worker_id="w")
    assert claim is not None
    j.start(claim)
    j.complete(claim, output=poison)
    return run.run_id


def _assert_intact(j: Journal, run_id: str, poison: Any) -> None:
    run = j.get_run(run_id)
    assert (run.state, run.input, run.output) == ("completed", poison, poison)
    data = {e.type: e.data for e in j.history(run_id)}
    assert data["StepRecorded"]["content"] == poison
    assert data["ApprovalRequested"]["tool_args"] == {"p": poison}
    assert data["ApprovalResolved"]["edits"] == {"p": poison, "q": poison}
    assert data["Resumed"]["decision"]["edited_args"] == {"p": poison, "q": poison}
    report = j.verify()
    assert report.ok, report.problems


@pytest.mark.parametrize("poison", POISONS, ids=lambda p: json.dumps(p)[:40])
def test_envelope_shaped_payloads_round_trip_exactly(store_url: str, poison: Any) -> None:
    with Journal.open(store_url) as j:
        run_id = _drive(j, poison)
        j.submit(agent_id="a", input={"after": True})  # the queue is not blocked behind it
        assert j.claim_next(worker_id="w2") is not None
        _assert_intact(j, run_id, poison)
        j.catch_up()
        assert j.runs(state="completed")[0].run_id == run_id


@pytest.mark.parametrize("poison", POISONS[:2], ids=["unknown", "datetime"])
def test_poison_survives_export_and_import(sqlite_url: str, tmp_path, poison: Any) -> None:  # type: ignore[no-untyped-def]
    with Journal.open(sqlite_url) as j:
        run_id = _drive(j, poison)
        lines = [json.dumps(r, sort_keys=True, default=str) for r in export_events(j)]
    with Journal.open(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        import_events(copy, io.StringIO("\n".join(lines)))
        _assert_intact(copy, run_id, poison)


def test_a_snapshot_keeps_poison_as_data(store_url: str) -> None:
    """Snapshots (every 50 events) hold the run's input and pending decisions too."""
    poison = POISONS[0]
    with Journal.open(store_url) as j:
        run = j.submit(agent_id="a", input=poison)
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        for _ in range(60):
            j.record_step(claim, "step", poison)
        fresh = Journal.open(store_url) if store_url != "memory://" else j
        assert fresh.get_run(run.run_id).input == poison
        assert fresh.verify().ok


class _LegacyStore(RunStore):
    """A store written by the stock JSON transcoder, as runjournal wrote them before."""

    def construct_transcoder(self) -> Any:
        return Application.construct_transcoder(self)


def test_a_store_written_by_the_stock_transcoder_stays_readable(sqlite_url: str) -> None:
    poison = {"_type_": "datetime_iso", "_data_": "2020-01-01T00:00:00+00:00"}
    legacy = Journal(_LegacyStore(env=store_env(sqlite_url)), url=sqlite_url)
    run = legacy.submit(agent_id="a", input=poison)
    claim = legacy.claim_next(worker_id="w")
    legacy.start(claim)
    legacy._store.close()
    with Journal.open(sqlite_url) as j:
        assert j.get_run(run.run_id).input == poison
        j.complete(claim, output={"ok": 1})
        report = j.verify()
        assert report.ok, report.problems
