"""`verify` recomputes the inline queue and leases from the log and names every row that differs.

A queue row deleted by hand strands a queued run; one made claimable offers a run
that is not waiting; a lease moved changes what recovery expires. None of these
breaks a chain, so verify compares each row with what a save of the run writes.
"""

from __future__ import annotations

import dataclasses

from runjournal.adapters.storage.index import IndexEntry

from runjournal import Journal

from .helpers import finished_run


def _live_store(j: Journal) -> dict[str, str]:
    """A run in each live kind of state (and a finished one); run ids by name."""
    runs = {"done": finished_run(j, "done")}
    runs["queued"] = j.submit(agent_id="a", input={"n": 1}, priority=2).run_id
    j.submit(agent_id="a", input={"n": 2}, priority=9)
    claim = j.claim_next(worker_id="w1")
    runs["claimed"] = claim.run_id
    j.submit(agent_id="a", input={"n": 3}, priority=8)
    running = j.claim_next(worker_id="w1", start=True)
    runs["running"] = running.run_id
    j.submit(agent_id="a", input={"n": 4}, priority=7)
    waiting = j.claim_next(worker_id="w1", start=True)
    j.request_approval(waiting, tool_name="deploy", tool_args={"env": "prod"})
    runs["waiting"] = waiting.run_id
    return runs


def _entries(j: Journal, change: dict[str, IndexEntry | None]) -> list[tuple[IndexEntry, int]]:
    """The index a rebuild writes, with some runs' entries replaced (None: left out)."""
    first: dict[str, int] = {}
    for page in j.notifications():
        for n in page:
            first.setdefault(str(n.originator_id), n.id)
    entries = []
    for run_id, position in first.items():
        entry = change.get(run_id, IndexEntry.of(j.get_run(run_id)))
        if entry is not None and entry.live:
            entries.append((entry, position))
    return entries


def _problems(j: Journal) -> dict[str, str]:
    return {p.run_id: p.problem for p in j.verify().problems}


def test_the_rows_of_every_live_state_verify(any_journal: Journal) -> None:
    _live_store(any_journal)
    assert any_journal.verify().ok, any_journal.verify().problems
    any_journal.rebuild_index()
    assert any_journal.verify().ok


def test_a_deleted_row_a_claimable_finished_run_and_a_moved_lease_are_each_named(any_journal: Journal) -> None:
    j = any_journal
    runs = _live_store(j)
    done = IndexEntry.of(j.get_run(runs["done"]))
    running = IndexEntry.of(j.get_run(runs["running"]))
    assert running.lease is not None
    j.inline_views.replace_index(_entries(j, {
        runs["queued"]: None,  # stranded: no worker would ever claim it
        runs["done"]: dataclasses.replace(done, live=True, claimable=True, state="queued"),
        runs["running"]: dataclasses.replace(running, lease=(running.lease[0], running.lease[1], running.lease[2] + 3600)),
        runs["claimed"]: dataclasses.replace(IndexEntry.of(j.get_run(runs["claimed"])), priority=99),
    }))
    found = _problems(j)
    assert set(found) == {runs["queued"], runs["done"], runs["running"], runs["claimed"]}, found
    assert found[runs["queued"]].startswith("the inline queue has no row for this run, the log gives (2, ")
    assert found[runs["done"]].startswith("the inline queue holds a row (0, ")
    assert "the log gives no such row for" in found[runs["done"]]
    assert found[runs["running"]].startswith("the inline lease row is ('w1', 1, ")
    assert found[runs["claimed"]].startswith("the inline queue row is (99, ")
    assert all("run `runjournal projections rebuild`" in p for p in found.values())

    j.rebuild_index()  # the repair the message names
    assert j.verify().ok


def test_a_row_for_a_run_with_no_events_is_named(any_journal: Journal) -> None:
    j = any_journal
    _live_store(j)
    ghost = "00000000-0000-4000-8000-000000000001"
    entries = _entries(j, {})
    entries.append((IndexEntry(run_id=ghost, state="queued", priority=0, live=True, claimable=True, lease=None), 1))
    j.inline_views.replace_index(entries)
    assert _problems(j) == {ghost: "the inline queue or leases hold a row for a run with no events in the log; "
                                   "run `runjournal projections rebuild` to rebuild the queue and leases from the log"}
