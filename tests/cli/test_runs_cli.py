"""`runjournal runs` (find runs by what happened) and paged `threads`, as a user runs them."""

from __future__ import annotations

from typing import Any

from .conftest import CLI
from .test_cli import domain_error, ok


def test_runs_filters_by_what_happened_and_pages(populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, hello, deploy = populated
    ok(cli("approve", deploy["approval_id"], "--edit", '{"env": "staging"}', "--actor", "carol"))
    ok(cli("worker", "--until-idle"))
    every, edited, by_carol, by_dave, tool, page, old = cli.many(
        ("runs", "--json"), ("runs", "--decision", "edit", "--json"), ("runs", "--approved-by", "carol", "--json"),
        ("runs", "--approved-by", "dave", "--json"), ("runs", "--tool", "deploy", "--json"),
        ("runs", "--limit", "1", "--offset", "1"), ("runs", "--until", "2000-01-01", "--json"))
    assert [r["run_id"] for r in ok(every).json()["runs"]] == [hello["run_id"], deploy["run_id"]]
    assert [r["run_id"] for r in ok(edited).json()["runs"]] == [deploy["run_id"]]
    assert ok(by_carol).json()["total"] == 1 and ok(by_dave).json()["total"] == 0
    assert [r["run_id"] for r in ok(tool).json()["runs"]] == [deploy["run_id"]]
    assert deploy["run_id"] in ok(page).out and hello["run_id"] not in page.out
    assert "rows 2-2 of 2" in page.err
    assert ok(old).json() == {"runs": [], "total": 0, "limit": 100, "offset": 0}


def test_runs_refuses_bad_filters_naming_the_option(populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, _hello, _deploy = populated
    state, decision, waited, since = cli.many(
        ("runs", "--state", "sleeping"), ("runs", "--decision", "maybe"), ("runs", "--waiting-longer", "soon"),
        ("runs", "--since", "yesterday"))
    domain_error(state, "--state", "unknown state 'sleeping'")
    domain_error(decision, "--decision")
    domain_error(waited, "--waiting-longer", "not a duration")
    domain_error(since, "--since", "neither a time")
    assert cli("runs", "--limit", "0").code == 2


def test_threads_page_with_limit_and_offset(populated: tuple[CLI, dict[str, Any], dict[str, Any]]) -> None:
    cli, _hello, _deploy = populated
    first, second, both = cli.many(("threads", "--limit", "1", "--json"), ("threads", "--limit", "1", "--offset", "1"),
                                   ("threads", "--json"))
    everything = [t["thread_id"] for t in ok(both).json()]
    assert len(everything) == 2 and [t["thread_id"] for t in ok(first).json()] == everything[:1]
    assert everything[1] in ok(second).out and everything[0] not in second.out
    assert "rows 2-2 of 2" in second.err
