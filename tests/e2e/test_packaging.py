"""The package builds as a wheel holding every mapped sub-package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_contains_domain_projections_and_adapters(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("runjournal-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("runjournal/journal.py", "runjournal/domain/run.py", "runjournal/domain/transitions.py",
                   "runjournal/adapters/storage/sqlite.py", "runjournal/projections/__init__.py"):
        assert module in names, module
    assert any(n.endswith("entry_points.txt") for n in names)
