"""The public surface is curated: ``runjournal.__all__`` is deliberate, sorted, documented and enough for the docs."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import runjournal

ROOT = Path(__file__).resolve().parents[2]

# Adding or removing a public name is a decision: change this list with the docs.
PUBLIC = {
    "AgentAdapter", "AgentFailed", "AgentLoadError", "AgentRequest", "ApprovalNotFound", "Chunk", "Claim",
    "ConcurrencyConflict", "Harness", "Health", "InvalidInput", "InvalidTransition", "Journal", "JournalCheckpointer",
    "LeaseLost",
    "ManualClock", "ProjectedEvent", "Projection", "ProjectionError", "RecordedEvent", "ResumeFailedError",
    "RunNotFound", "RunResult", "RunSnapshot", "RunState", "RunjournalError", "StoreError", "StoreUnavailable",
    "StreamEvent", "TamperDetected", "UnknownAgent", "VerifyProblem", "VerifyReport", "Workspace",
    "WorkspaceError", "load_workspace",
}


def test_all_is_the_curated_list_sorted_and_every_name_resolves() -> None:
    assert runjournal.__all__ == sorted(runjournal.__all__)
    assert set(runjournal.__all__) == PUBLIC
    for name in runjournal.__all__:
        assert getattr(runjournal, name) is not None, name


def test_importing_the_package_loads_no_wing_until_a_name_is_used() -> None:
    """``import runjournal`` is cheap (each name is imported on first use), and every name still comes from it."""
    program = """
import sys, runjournal
wings = [m for m in sys.modules if m.startswith("runjournal.")]
assert not wings, wings
from runjournal import Journal, RunState
assert Journal.__module__ == "runjournal.app.journal" and "runjournal.runtime.harness" not in sys.modules
assert set(runjournal.__all__) <= set(dir(runjournal))
from runjournal import *
assert Harness.__module__ == "runjournal.runtime.harness" and load_workspace.__module__ == "runjournal.config.workspace"
try:
    runjournal.NoSuchName
except AttributeError as e:
    assert "NoSuchName" in str(e)
else:
    raise AssertionError("an unknown name resolved")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_every_public_name_and_its_public_methods_say_what_they_are() -> None:
    for name in runjournal.__all__:
        obj = getattr(runjournal, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"
        if not (inspect.isclass(obj) and obj.__module__.startswith("runjournal")):
            continue
        for member, value in vars(obj).items():
            function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            if not member.startswith("_") and inspect.isfunction(function):
                assert inspect.getdoc(function), f"{name}.{member} has no docstring"


IMPORT = re.compile(r"^\s*from (runjournal[\w.]*) import (?:\(([^)]*)\)|([^\n#]+))", re.M)


def test_everything_the_docs_and_examples_import_is_exported_at_the_top() -> None:
    """What a reader is shown importing from any module of ours, ``from runjournal import ...`` offers too."""
    sources = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*.py")]
    wanted: set[str] = set()
    for source in sources:
        for match in IMPORT.finditer(source.read_text(encoding="utf-8")):
            names = (match[2] or match[3]).replace("\n", ",").split(",")
            wanted |= {n.strip().split(" as ")[0] for n in names if n.strip()}
    assert {"Journal", "Harness", "Chunk", "ManualClock", "ProjectedEvent"} <= wanted  # the sweep reads them
    assert wanted <= set(runjournal.__all__), sorted(wanted - set(runjournal.__all__))
