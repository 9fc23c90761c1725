"""A run is found by its full id or by any unique start of it, on every store (an index range, not a scan)."""

from __future__ import annotations

import pytest

from runjournal import InvalidInput, Journal, RunNotFound


def _shared_head(a: str, b: str) -> int:
    """How many leading characters two ids share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


def test_the_shortest_unique_start_of_each_id_finds_that_run(any_journal: Journal) -> None:
    runs = any_journal.submit_many([{"agent_id": "echo", "input": {"i": i}} for i in range(12)])  # one millisecond
    ids = sorted(r.run_id for r in runs)
    for i, run_id in enumerate(ids):
        neighbours = [ids[j] for j in (i - 1, i + 1) if 0 <= j < len(ids)]
        unique = max(_shared_head(run_id, n) for n in neighbours) + 1
        assert any_journal.resolve_run_id(run_id[:unique]) == run_id
        assert any_journal.resolve_run_id(run_id[:unique].upper()) == run_id  # case is ignored
        assert any_journal.resolve_run_id(run_id.replace("-", "")) == run_id  # so are dashes
        assert any_journal.resolve_run_id(run_id) == run_id


def test_a_start_shared_by_several_runs_names_them_and_asks_for_more(any_journal: Journal) -> None:
    runs = any_journal.submit_many([{"agent_id": "echo", "input": {"i": i}} for i in range(3)])
    head = runs[0].run_id[:8]  # the time-ordered head: the same millisecond for all three
    with pytest.raises(InvalidInput) as caught:
        any_journal.resolve_run_id(head)
    message = str(caught.value)
    assert head in message and "give more of it" in message
    assert all(r.run_id in message for r in runs)
    assert any_journal.max_position() == 6  # nothing appended


@pytest.mark.parametrize("text", ["", "zz", "not-a-run", "0" * 33, "ffffffff"])
def test_no_run_starting_so_is_not_found(any_journal: Journal, text: str) -> None:
    any_journal.submit(agent_id="echo", input={})
    with pytest.raises(RunNotFound):
        any_journal.resolve_run_id(text)


def test_more_candidates_than_shown_are_summed_up(journal: Journal) -> None:
    runs = journal.submit_many([{"agent_id": "echo", "input": {"i": i}} for i in range(9)])
    with pytest.raises(InvalidInput) as caught:
        journal.resolve_run_id(runs[0].run_id[:4])
    assert str(caught.value).count(runs[0].run_id[:4]) == 6 and ", ..." in str(caught.value)
