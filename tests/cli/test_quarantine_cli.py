"""`runjournal quarantine`: one line per quarantined run; `--release RUN` once the run checks again."""

from __future__ import annotations

import sqlite3

from runjournal import Journal


def _tampered(cli) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(a run whose step was edited and that a worker's claim quarantined, a clean run)."""
    url = cli.url
    with Journal.open(url) as j:
        bad = j.submit(agent_id="echo", input={"message": "one"})
        good = j.submit(agent_id="echo", input={"message": "two"})
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'one', 'One') AS BLOB)"
                   " WHERE originator_id = ? AND originator_version = 1", (bad.run_id.replace("-", ""),))
    with Journal.open(url) as j:
        claim = j.claim_next(worker_id="w1")
        assert claim is not None and claim.run_id == good.run_id  # the tampered run was passed over
    return bad.run_id, good.run_id


def test_quarantined_runs_are_listed_one_line_each_and_released_by_the_operator(cli) -> None:  # type: ignore[no-untyped-def]
    bad, _ = _tampered(cli)
    listed = cli("quarantine")
    assert listed.code == 0, listed.err
    (line,) = listed.out.strip().splitlines()
    assert bad in line and "version 1" in line and "chain mismatch" in line and "worker:w1" in line
    (row,) = cli("quarantine", "--json").json()
    assert (row["run_id"], row["version"], row["quarantined_by"]) == (bad, 1, "worker:w1")

    status = cli("status", bad)
    assert status.code == 1 and bad in status.message and "version 1" in status.message

    refused = cli("quarantine", "--release", bad)  # still broken: the release is refused
    assert refused.code == 1 and "chain mismatch" in refused.message

    with sqlite3.connect(cli.url.removeprefix("sqlite:///")) as db:  # the repair
        db.execute("UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'One', 'one') AS BLOB)"
                   " WHERE originator_id = ? AND originator_version = 1", (bad.replace("-", ""),))
    released = cli("quarantine", "--release", bad, "--actor", "ops")
    assert released.code == 0, released.err
    assert "released" in released.out
    assert cli("quarantine").out.strip() == "no quarantined runs"
    assert cli("quarantine", "--json").json() == []
    assert cli("status", bad).code == 0


def test_releasing_a_run_that_is_not_quarantined_is_one_clear_error(cli) -> None:  # type: ignore[no-untyped-def]
    _, good = _tampered(cli)
    result = cli("quarantine", "--release", good)
    assert result.code == 1 and "not quarantined" in result.message
