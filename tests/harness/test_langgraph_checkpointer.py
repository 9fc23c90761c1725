"""JournalCheckpointer against LangGraph's own checkpointer conformance suite, on the journal's SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from runjournal.adapters.langgraph import JournalCheckpointer

from runjournal import Journal

BASE = ("put", "put_writes", "get_tuple", "list", "delete_thread")
# LangGraph's extended capabilities: detected from the async methods, each must run tests and pass them.
EXTENDED = ("delete_for_runs", "copy_thread", "prune")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> str:
    """The journal's store: a SQLite file, or a fresh schema on the test PostgreSQL server."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_the_checkpointer_passes_langgraphs_conformance_suite_in_the_journals_store(store: str) -> None:
    @checkpointer_test(name="JournalCheckpointer")
    async def saver() -> AsyncIterator[JournalCheckpointer]:
        journal = Journal.open(store)
        checkpointer = JournalCheckpointer.of(journal)
        for thread_id in {c.config["configurable"]["thread_id"] for c in checkpointer.list(None)}:
            checkpointer.delete_thread(thread_id)  # each capability's suite starts from no checkpoint at all
        yield checkpointer
        checkpointer.close()
        journal.close()

    report = asyncio.run(validate(saver))
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    for name in (*BASE, *EXTENDED):  # a capability the suite did not detect would "pass" with nothing run
        assert report.results[name].detected and report.results[name].tests_passed > 0, name
        assert report.results[name].tests_failed == 0, (name, report.results[name].failures)


def test_checkpoints_live_in_the_stores_file_and_outlive_the_process_that_wrote_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with Journal.open(url) as journal:
        saver = JournalCheckpointer.of(journal)
        config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
        checkpoint = {"v": 1, "id": "1f0", "ts": "2026-12-04T00:00:00+00:00", "channel_values": {"n": 1},
                      "channel_versions": {"n": "1"}, "versions_seen": {}, "updated_channels": ["n"]}
        saved = saver.put(config, checkpoint, {"source": "loop", "step": 0}, {"n": "1"})
        saver.put_writes(saved, [("n", 2)], task_id="task-1")
        saver.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "journal.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runjournal_lg_checkpoints", "runjournal_lg_writes", "stored_events"} <= tables
    with Journal.open(url) as journal:
        again = JournalCheckpointer.of(journal).get_tuple({"configurable": {"thread_id": "t1"}})
        assert again is not None and again.checkpoint["channel_values"] == {"n": 1}
        assert again.pending_writes == [("task-1", "n", 2)]


def test_a_store_that_keeps_nothing_is_refused_by_name() -> None:
    with Journal.open("memory://") as journal, pytest.raises(ValueError, match="memory://"):
        JournalCheckpointer.of(journal)


def test_the_docs_example_runs_and_reads_its_state_back_from_the_store(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    page = (Path(__file__).resolve().parents[2] / "docs" / "langgraph.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["{'n': 42}", "{'n': 42}"]
    with Journal.open(f"sqlite:///{tmp_path / '.runjournal' / 'journal.db'}") as journal:
        saved = JournalCheckpointer.of(journal).get_tuple({"configurable": {"thread_id": "t1"}})
    assert saved is not None and saved.checkpoint["channel_values"]["n"] == 42
