"""Lineage: retries and forks, forks of forks, as one tree from the first ancestor, asked from any run in it."""

from __future__ import annotations

import pytest

from runjournal import Journal, RunNotFound


def test_fork_of_fork_and_retries_form_one_tree_seen_from_any_member(any_journal: Journal, clock) -> None:
    j = any_journal
    root = j.submit(agent_id="a", input={"m": 0}, actor="alice")
    clock.advance(1)
    fork = j.fork(root.run_id, at_version=1, edits={"m": 1}, actor="bob")
    clock.advance(1)
    fork_of_fork = j.fork(fork.run_id, at_version=2, input={"m": 2}, actor="carol")
    clock.advance(1)
    retry = j.submit(agent_id="a", input={"m": 0}, parent_run_id=root.run_id, parent_version=2)
    unrelated = j.submit(agent_id="a", input={"m": 9})
    for member in (root, fork, fork_of_fork, retry):
        tree = j.lineage(member.run_id)
        assert tree.run_id == root.run_id and tree.lineage == "root"
        assert [(n.run_id, n.lineage, n.parent_version) for n in tree.walk()] == [
            (root.run_id, "root", None), (fork.run_id, "fork", 1), (fork_of_fork.run_id, "fork", 2),
            (retry.run_id, "retry", 2)]
    assert [n.created_by for n in j.lineage(fork.run_id).walk()][:3] == ["alice", "bob", "carol"]
    assert [n.run_id for n in j.lineage(unrelated.run_id).walk()] == [unrelated.run_id]
    chains = {e.version: e.chain for e in j.history(fork.run_id)}
    assert j.history(fork_of_fork.run_id)[0].data["fork"]["parent_chain"] == chains[2]


def test_the_lineage_of_an_unknown_run_is_not_found(journal: Journal) -> None:
    with pytest.raises(RunNotFound):
        journal.lineage("0193b7c2-0000-7000-8000-000000000000")
