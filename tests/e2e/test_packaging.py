"""The package builds as a wheel holding every wing, every mapped sub-package and a py.typed marker.

It is built from a copy of the source without ``build/``: setuptools reuses that folder,
so a stale one would hide a module the package no longer ships, or one it lost.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".mypy_cache",
                                    ".pytest_cache", ".runjournal", "bench", "tests", "node_modules")


def test_the_wheel_holds_every_wing_the_mapped_folders_and_a_py_typed_marker(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("runjournal-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("", "app/", "runtime/", "config/", "cli/", "domain/", "projections/", "adapters/",
                    "adapters/storage/", "adapters/agents/"):
        assert f"runjournal/{package}__init__.py" in names, package
    for module in ("runjournal/bootstrap.py", "runjournal/app/journal.py", "runjournal/domain/run.py",
                   "runjournal/domain/transitions.py", "runjournal/adapters/storage/sqlite.py", "runjournal/py.typed",
                   "runjournal/config/example.yaml"):
        assert module in names, module
    assert not any(n.startswith("runjournal/journal.py") for n in names)  # moved to app/: nothing stale
    assert any(n.endswith("entry_points.txt") for n in names)
