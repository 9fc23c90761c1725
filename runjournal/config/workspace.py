"""The workspace file ``runjournal.yaml``: agents, routing, limits, recovery and policy.

``load_workspace(path)`` reads and validates a file; ``parse_workspace(text)`` does the
same for text and ``Workspace.from_dict(data)`` for data built in code. A bad file
raises one ``WorkspaceError`` listing every problem found in it, one per line, each
reading ``FILE:LINE: FIELD.PATH: PROBLEM`` (its ``problems`` holds them as records).

The sections are ``models``, the messages ``problems``, the YAML node tree
``yaml_lines``; the commented example ``runjournal init`` writes is ``example.yaml``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..domain import WorkspaceError
from .models import (
    DEFAULT_FILENAME,
    AgentConfig,
    ConcurrencyConfig,
    PolicyConfig,
    RecoveryConfig,
    RoutingConfig,
    RoutingRule,
    ScriptStep,
    StorageConfig,
    StreamingConfig,
    ToolCall,
    Workspace,
    validate_workspace,
)
from .yaml_lines import _line, compose

__all__ = [
    "DEFAULT_FILENAME", "EXAMPLE_WORKSPACE", "AgentConfig", "ConcurrencyConfig", "PolicyConfig", "RecoveryConfig",
    "RoutingConfig", "RoutingRule", "ScriptStep", "StorageConfig", "StreamingConfig", "ToolCall",
    "Workspace", "WorkspaceError", "load_workspace", "parse_workspace", "write_example",
]

# The commented example ``runjournal init`` writes (package data, so it reads as YAML).
EXAMPLE_WORKSPACE = files(__package__).joinpath("example.yaml").read_text(encoding="utf-8")


def parse_workspace(text: str, filename: str = DEFAULT_FILENAME) -> Workspace:
    """A workspace from YAML text; ``filename`` is used in error messages."""
    root, data = compose(text, filename)
    if not isinstance(data, dict):
        line = _line(root) if root is not None else 1
        problem = "the workspace must be a mapping of sections"
        raise WorkspaceError(problem, file=filename, line=line)
    return validate_workspace(data, root, filename)


def load_workspace(path: str | Path = DEFAULT_FILENAME) -> Workspace:
    """The workspace in the file at ``path``; raises WorkspaceError."""
    path, name = Path(path), str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = "file not found (create one with `runjournal init`)"
        raise WorkspaceError(problem, file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise WorkspaceError(f"cannot be read ({reason})", file=name) from None
    workspace = parse_workspace(text, name)
    workspace.path = path
    return workspace


def write_example(path: str | Path = DEFAULT_FILENAME, *, force: bool = False) -> Path:
    """Write EXAMPLE_WORKSPACE to ``path``; an existing file is kept unless ``force``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("w" if force else "x", encoding="utf-8") as out:
            out.write(EXAMPLE_WORKSPACE)
    except FileExistsError:
        fix = "already exists (run `runjournal init --force` to overwrite it)"
        raise WorkspaceError(fix, file=str(path)) from None
    return path
