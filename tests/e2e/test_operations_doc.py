"""The approvals section of docs/operations.md runs as written: its workspace written, its commands run, compared."""

from __future__ import annotations

from pathlib import Path

from .transcripts import run_page, steps

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_operations_pages_sessions_run_as_written(tmp_path: Path) -> None:
    assert any(kind == "file" for kind, _name, _lines in steps(PAGE))  # the approvals section's workspace
    transcript = run_page(PAGE, tmp_path)
    assert len(transcript.real) >= 3  # both runs (and a thread) were bound to real ids
