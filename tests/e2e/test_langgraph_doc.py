"""docs/langgraph.md runs as written: the example graph beside its workspace, every command and its output."""

from __future__ import annotations

import shutil
from pathlib import Path

from .transcripts import run_page

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "langgraph.md"


def test_the_langgraph_pages_deploy_runs_as_written_with_the_example_graph(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "langgraph_agent.py", tmp_path / "langgraph_agent.py")
    transcript = run_page(PAGE, tmp_path)
    assert len(transcript.real) >= 2  # the run and its thread were bound to real ids
