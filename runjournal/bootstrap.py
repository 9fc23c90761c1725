"""The composition root: where the store is, which workspace, and what is built from them.

Every configuration choice is made here and nowhere else:

- the store URL: ``--store`` (or ``store=``), else ``$RUNJOURNAL_URL``, else the
  workspace's ``storage.url``, else ``sqlite:///.runjournal/journal.db``;
- the workspace file, read at most once per command (``Setup``);
- the agents it names, built as adapters (a ``python`` agent's module is looked
  for beside the workspace file first, without touching ``sys.path``);
- the journal and the harness wired on them (clock and cipher key come from the
  caller and ``$RUNJOURNAL_CIPHER_KEY``, read by the store adapter).

The CLI builds everything through a ``Setup``; ``Harness.from_workspace`` and
``Harness(journal, workspace)`` call ``open_harness`` and ``build_adapters``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapters.storage.urls import resolve_url

if TYPE_CHECKING:  # imported where they are used: a command that only reads opens no harness and no agents
    from .adapters.agents import AgentAdapter
    from .adapters.clock import Clock
    from .config.workspace import Workspace
    from .runtime.harness import Harness

# config.workspace.DEFAULT_FILENAME, spelled here so that choosing the store reads
# (and imports) the workspace parser only when the file is there to be read.
DEFAULT_FILENAME = "runjournal.yaml"


def store_url(
    given: str | None,
    workspace: Workspace | Callable[[], Workspace | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The store to open: ``given``, else $RUNJOURNAL_URL, else the workspace's storage.url, else the default.

    ``workspace`` may be a function, called only when neither of the first two is set
    (so a broken workspace file does not stop a command that names its store).
    """
    def configured() -> str | None:
        chosen = workspace() if callable(workspace) else workspace
        return chosen.storage.url if chosen is not None else None

    return resolve_url(given, environ, configured=configured)


def load_workspace(path: str | Path = DEFAULT_FILENAME) -> Workspace:
    """The workspace in the file at ``path`` (the parser is imported on the first call)."""
    from .config.workspace import load_workspace as load

    return load(path)


def build_adapters(workspace: Workspace) -> dict[str, AgentAdapter]:
    """One adapter per agent of the workspace; python agents are looked for beside its file first."""
    from .adapters.agents import build_adapter

    folder = Path(workspace.path).resolve().parent if workspace.path is not None else None
    adapters: dict[str, AgentAdapter] = {}
    for name, agent in workspace.agents.items():
        if agent.adapter == "scripted":
            steps = [s.model_dump(exclude_none=True, exclude_defaults=True) for s in agent.script or []]
            options: dict[str, Any] = {"script": steps}
        elif agent.adapter == "langgraph":
            options = {"graph": agent.graph, "folder": folder, "input_key": agent.input_key,
                       "config": agent.config, "tool_nodes": agent.tool_nodes or ()}
            if agent.stream_mode is not None:
                options["stream_mode"] = agent.stream_mode
        else:
            options = {"target": agent.callable, "folder": folder}
        if agent.supports_replay is not None:
            options["supports_replay"] = agent.supports_replay
        adapters[name] = build_adapter(agent.adapter, **options)
    return adapters


def open_harness(
    workspace: Workspace | str | Path = DEFAULT_FILENAME,
    *,
    store: str | None = None,
    clock: Clock | None = None,
    worker_id: str | None = None,
    store_outage_seconds: float | None = None,
    agents: Collection[str] | None = None,
) -> Harness:
    """A harness for a workspace (a file, or one already read) on its store, owning its journal."""
    from .app.journal import Journal
    from .config.workspace import Workspace
    from .runtime.harness import Harness
    from .runtime.routing import served_agents

    if not isinstance(workspace, Workspace):
        workspace = load_workspace(workspace)
    served_agents(agents, workspace.agents)  # a wrong name is refused before the store is opened
    journal = Journal.open(store_url(store, workspace), clock=clock)
    return Harness(journal, workspace, worker_id=worker_id, owns_journal=True,
                   store_outage_seconds=store_outage_seconds, agents=agents)


@dataclass
class Setup:
    """What one command chose: its ``--store`` and its workspace file, the file read at most once."""

    store: str | None = None
    workspace_path: str = DEFAULT_FILENAME
    _workspace: Workspace | None = field(default=None, init=False, repr=False)

    def workspace(self) -> Workspace:
        """The workspace, read on first use; raises WorkspaceError for a missing or broken file."""
        if self._workspace is None:
            self._workspace = load_workspace(self.workspace_path)
        return self._workspace

    def url(self) -> str:
        """The store URL (the workspace is read only when neither --store nor $RUNJOURNAL_URL says)."""
        return store_url(self.store, lambda: self.workspace() if Path(self.workspace_path).exists() else None)

    def harness(
        self, *, worker_id: str | None = None, agents: Collection[str] | None = None
    ) -> Harness:
        """A harness for this command's workspace, on its store."""
        return open_harness(self.workspace(), store=self.url(), worker_id=worker_id, agents=agents)
