"""The README's Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_examples() -> list[str]:
    """Complete programs among the README's python blocks (fragments that use names defined elsewhere are left out)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if b.startswith(("from runjournal import", "import asyncio"))]


def test_the_readme_examples_run(tmp_path: Path) -> None:
    examples = python_examples()
    assert len(examples) == 2
    from runjournal.config.workspace import write_example

    write_example(tmp_path / "runjournal.yaml")
    for code in examples:
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
    assert "waiting_for_approval" in result.stdout and "Deployed" in result.stdout
