"""examples/find_by_model.py: a projection of one's own finds runs by one more fact, beside find_runs."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from runjournal import Journal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "find_by_model.py"


def test_the_example_runs_as_a_program() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["drafter: 2 runs", "critic: 2 runs", "critic and failed: 1 runs"]


def test_the_view_follows_the_log_once_and_answers_with_the_other_filters(sqlite_url: str) -> None:
    example = runpy.run_path(str(EXAMPLE), run_name="find_by_model_example")
    with Journal.open(sqlite_url) as journal:
        first = example["record"](journal, ["drafter", "drafter"])
        journal.add_projection(example["ModelCalls"]())
        assert example["runs_that_asked"](journal, "drafter") == [first]  # two steps, one run
        second = example["record"](journal, ["drafter"], fail=True)  # recorded after the view was added
        assert example["runs_that_asked"](journal, "drafter") == [first, second]
        assert example["runs_that_asked"](journal, "drafter", state="failed") == [second]
        assert example["runs_that_asked"](journal, "critic") == []
        rows = journal.runner.db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0]
        assert rows == 3  # each model step once, however often the view was caught up
