"""docs/debugging.md runs as written: its files written, its commands run, their output compared."""

from __future__ import annotations

from pathlib import Path

from .transcripts import run_page, steps

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "debugging.md"


def test_the_debugging_page_runs_as_written(tmp_path: Path) -> None:
    transcript = run_page(PAGE, tmp_path)
    assert len(transcript.real) >= 4  # the root run, its thread and two forks were bound to real ids


def test_the_pages_agent_is_the_example_shipped_with_runjournal() -> None:
    files = {name: lines for kind, name, lines in steps(PAGE) if kind == "file"}
    shipped = (ROOT / "examples" / "replayable_agent.py").read_text(encoding="utf-8").rstrip("\n").split("\n")
    assert files["replayable_agent.py"] == shipped
