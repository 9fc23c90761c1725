"""Every command and file of docs/tutorial.md, executed in order in a fresh folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str, str]]:
    """(language, info, body) of every fenced block."""
    return [(m[0], m[1].strip(), m[2]) for m in BLOCK.findall(TUTORIAL.read_text())]


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    script = ["set -euo pipefail"]
    for language, info, body in blocks():
        if "skip-in-test" in info:
            continue
        if info.startswith("file="):  # written at its place in the story, as a reader would
            script.append(f"cat > {info.removeprefix('file=')} <<'TUTORIAL_FILE'\n{body}TUTORIAL_FILE")
        elif language == "sh":
            script.append(body)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "RUNJOURNAL_ACTOR": "tutorial"}
    env.pop("RUNJOURNAL_URL", None)
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting_for_approval" in result.stdout
    assert "Shipped v1.4.2 to staging." in result.stdout
    assert "every chain verifies" in result.stdout
    assert (tmp_path / "timeline.html").exists()
