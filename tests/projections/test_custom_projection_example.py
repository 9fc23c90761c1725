"""examples/custom_projection.py runs as a program and its projection counts exactly."""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from runjournal.adapters.clock import ManualClock

from runjournal import Journal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_projection.py"

EXPECTED = [
    {"agent_id": "summarizer", "started": 3, "completed": 2, "failed": 1, "total_seconds": 30.0, "avg_seconds": 15.0},
    {"agent_id": "translator", "started": 2, "completed": 2, "failed": 0, "total_seconds": 75.0, "avg_seconds": 37.5},
]


@pytest.fixture(scope="module")
def example() -> dict:
    """The example's module namespace, loaded from its file path."""
    return runpy.run_path(str(EXAMPLE), run_name="custom_projection_example")


def test_the_example_runs_as_a_program_and_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "25 events projected into runs_per_agent (views file: journal.views.db)"
    assert lines[1].split() == ["agent", "started", "completed", "failed", "avg_seconds"]
    assert lines[3].split() == ["summarizer", "3", "2", "1", "15.0"]
    assert lines[4].split() == ["translator", "2", "2", "0", "37.5"]
    assert len(lines) == 5


def test_main_returns_exact_counts_and_average_durations(example: dict, capsys) -> None:
    rows = example["main"]()
    assert rows == EXPECTED
    assert "summarizer" in capsys.readouterr().out


def test_the_projection_is_incremental_and_keeps_only_unfinished_starts(example: dict, tmp_path) -> None:
    clock = ManualClock()
    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}", clock=clock) as journal:
        journal.add_projection(example["RunsPerAgent"]())
        example["drive_run"](journal, clock, "a", 8)
        assert journal.catch_up() == 5
        run = journal.submit(agent_id="a", input={})
        claim = journal.claim_next(worker_id="w")
        journal.start(claim)
        journal.catch_up()
        started = journal.runner.db["runs_per_agent_started"]
        assert [r["run_id"] for r in started.rows] == [run.run_id]  # only the unfinished run
        clock.advance(4)
        journal.complete(claim)
        journal.catch_up()
        assert list(started.rows) == []
        assert example["read_rows"](journal) == [
            {"agent_id": "a", "started": 2, "completed": 2, "failed": 0, "total_seconds": 12.0, "avg_seconds": 6.0}
        ]
        # A rebuild drops both tables and replays the log into them: same rows.
        assert journal.rebuild("runs_per_agent") == journal.max_position()
        assert example["read_rows"](journal)[0]["avg_seconds"] == 6.0


def test_docs_projections_shows_the_example_class_verbatim() -> None:
    source = EXAMPLE.read_text()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RunsPerAgent")
    class_source = "\n".join(source.splitlines()[cls.lineno - 1 : cls.end_lineno])
    assert class_source in (ROOT / "docs" / "projections.md").read_text()
