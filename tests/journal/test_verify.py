"""verify() recomputes every chain from the stored bytes and names what was broken."""

from __future__ import annotations

import sqlite3

import pytest

from runjournal import Journal

from .helpers import finished_run


@pytest.fixture
def store(sqlite_url: str):
    j = Journal.open(sqlite_url)
    runs = [finished_run(j, f"hello {i}") for i in range(3)]
    yield j, runs, str(sqlite_url).removeprefix("sqlite:///")
    j.close()


def _edit(path: str, sql: str, *params) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute(sql, params).rowcount == 1


def test_an_untouched_log_verifies(store) -> None:
    j, runs, _ = store
    report = j.verify()
    assert (report.ok, report.runs_checked, report.events_checked) == (True, 3, 15)
    assert set(report.heads) == set(runs)


def test_editing_one_byte_of_a_stored_event_is_found_with_run_and_version(store) -> None:
    j, runs, path = store
    victim = runs[1]
    _edit(
        path,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'hello 1', 'hellO 1') AS BLOB)"
        " WHERE originator_id = ? AND originator_version = 1",
        victim.replace("-", ""),
    )
    report = Journal.open(j.url).verify()
    assert not report.ok
    (problem,) = report.problems
    assert (problem.run_id, problem.version) == (victim, 1)
    assert "edited" in problem.problem


def test_editing_the_output_is_found(store) -> None:
    j, runs, path = store
    _edit(
        path,
        "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'done', 'DONE') AS BLOB)"
        " WHERE originator_id = ? AND originator_version = 5",
        runs[0].replace("-", ""),
    )
    (problem,) = Journal.open(j.url).verify().problems
    assert (problem.run_id, problem.version) == (runs[0], 5)


def test_deleting_an_event_in_the_middle_is_found(store) -> None:
    j, runs, path = store
    _edit(path, "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 3", runs[2].replace("-", ""))
    (problem,) = Journal.open(j.url).verify().problems
    assert (problem.run_id, problem.version) == (runs[2], 4)
    assert "missing" in problem.problem


def test_an_undecodable_event_is_a_finding_not_a_crash(store) -> None:
    j, runs, path = store
    _edit(path, "UPDATE stored_events SET state = X'7b7b' WHERE originator_id = ? AND originator_version = 2",
          runs[0].replace("-", ""))
    (problem,) = Journal.open(j.url).verify().problems
    assert problem.version == 2 and "cannot be decoded" in problem.problem
