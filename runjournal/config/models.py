"""The workspace's sections as pydantic models: what each key may hold, and the checks across sections.

A model raises ``Problem`` with every problem it finds (a location below it, a message);
``problems.validate`` turns them, with pydantic's own, into one ``WorkspaceError``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..domain import AUTO_AGENT
from .problems import Loc, Problem, did_you_mean, shown, validate

DEFAULT_FILENAME = "runjournal.yaml"
AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
CALLABLE_REF = re.compile(r"^[\w.]+:[\w.]+$")
STEP_ACTIONS = ("say", "reasoning", "step", "tool_call", "fail", "sleep")


class _Section(BaseModel):
    """A part of the workspace: unknown keys are errors, an empty section means defaults."""

    # Unknown keys are left to extra="forbid": pydantic then reports each of them together
    # with the section's other problems (a validator raising here would hide those).
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        """An empty section (``concurrency:``) means all its defaults."""
        return {} if data is None else data


class ToolCall(_Section):
    """A tool the scripted agent calls: its name and arguments."""

    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class ScriptStep(_Section):
    """One scripted step: exactly one of say, reasoning, step, tool_call, fail, sleep.

    A tool call may add ``requires_approval``, ``result`` (what the tool returns) and
    ``rejected`` (the answer when a person rejects the call; the script stops there).
    """

    say: str | None = None
    reasoning: str | None = None
    step: dict[str, Any] | None = None
    tool_call: ToolCall | None = None
    fail: str | None = None
    sleep: float | None = Field(default=None, ge=0)
    requires_approval: bool = False
    result: Any = None
    rejected: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> ScriptStep:
        """Exactly one action; approval, result and rejected text only on a tool call."""
        actions = [name for name in STEP_ACTIONS if getattr(self, name) is not None]
        if len(actions) != 1:
            found = f"got {', '.join(actions)}" if actions else "got none"
            raise Problem(((), f"needs exactly one of: {', '.join(STEP_ACTIONS)} ({found})"))
        problems: list[tuple[Loc, str]] = []
        for extra in ("requires_approval", "result", "rejected"):
            if actions[0] != "tool_call" and getattr(self, extra) not in (None, False):
                problems.append(((extra,), "only applies to a tool_call step"))
        if actions[0] == "tool_call" and self.rejected is not None and not self.requires_approval:
            # Only a call that waits for approval can be rejected: the text would never show.
            problems.append((("rejected",), "only applies with requires_approval: true"))
        if problems:
            raise Problem(*problems)
        return self

    @property
    def action(self) -> str:
        """The name of the step's action, e.g. ``"say"``."""
        return next(name for name in STEP_ACTIONS if getattr(self, name) is not None)

    def as_dict(self) -> dict[str, Any]:
        """The step as plain data, without unset keys (what the scripted adapter takes)."""
        return self.model_dump(exclude_none=True)


class ApprovalsConfig(_Section):
    """What the approvals an agent asks for carry: a deadline, and who alone may decide them."""

    expires_in_seconds: float | None = Field(default=None, gt=0, le=366 * 86_400)
    on_expiry: Literal["reject", "fail"] = "reject"  # an expired approval rejects the call, or fails the run
    assignees: list[str] | None = Field(default=None, min_length=1)


# The keys each adapter takes (beside supports_replay and approvals); the first is required.
ADAPTER_FIELDS: dict[str, tuple[str, ...]] = {
    "scripted": ("script",),
    "python": ("callable",),
    "langgraph": ("graph", "input_key", "stream_mode", "config", "tool_nodes", "durability"),
}
GRAPH_STREAM_MODES = ("messages", "updates", "custom")
RESERVED_GRAPH_CONFIG = ("callbacks", "run_id")  # set by runjournal for each run, not by the workspace


class AgentConfig(_Section):
    """An agent: a ``scripted`` script, a ``python`` ``module:callable`` or a ``langgraph`` ``module:graph``."""

    adapter: Literal["scripted", "python", "langgraph"]
    script: list[ScriptStep] | None = None
    callable: str | None = None
    graph: str | None = None
    input_key: str | None = Field(default=None, min_length=1)
    stream_mode: list[Literal["messages", "updates", "custom"]] | None = None
    config: dict[str, Any] | None = None
    tool_nodes: list[str] | None = None
    durability: str | None = None
    supports_replay: bool | None = None
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)

    @field_validator("callable", "graph")
    @classmethod
    def _callable_ref(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A ``module:callable`` (or for a graph ``module:graph``) reference."""
        if value is not None and not CALLABLE_REF.match(value):
            named = info.field_name
            raise ValueError(f"must be 'module:{named}', e.g. 'pkg.mod:{'agent' if named == 'callable' else 'graph'}' "
                             f"(got {value!r})")
        return value

    @field_validator("durability")
    @classmethod
    def _sync_only(cls, value: str | None) -> str | None:
        """Graphs run with durability "sync": with "async" or "exit" a killed worker can run a tool again."""
        if value is not None and value != "sync":
            raise ValueError(f'must be "sync" (got {value!r}): each checkpoint is saved before the next step '
                             "starts, so a worker killed mid-graph resumes without running a finished node or "
                             "tool again")
        return value

    @field_validator("config")
    @classmethod
    def _graph_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """A graph's config may not set what runjournal sets for each run."""
        if value is None:
            return value
        if reserved := [k for k in RESERVED_GRAPH_CONFIG if k in value]:
            raise ValueError(f"{reserved[0]!r} is set by runjournal for each run; remove it")
        configurable = value.get("configurable", {})
        if not isinstance(configurable, dict):
            raise ValueError("configurable must be a mapping")
        if "thread_id" in configurable or "checkpoint_id" in configurable:
            raise ValueError("configurable.thread_id and checkpoint_id are the run's own (each run is a LangGraph "
                             "thread of its own); remove them")
        return value

    @model_validator(mode="after")
    def _adapter_fields(self) -> AgentConfig:
        """Each adapter takes its own keys and needs the first of them; default supports_replay."""
        own = ADAPTER_FIELDS[self.adapter]
        problems: list[tuple[Loc, str]] = []
        for adapter, fields in ADAPTER_FIELDS.items():
            for key in fields:
                if adapter != self.adapter and key not in own and getattr(self, key) is not None:
                    problems.append(((key,), f"is not allowed for adapter {self.adapter!r} (use {own[0]})"))
        need = own[0]
        if getattr(self, need) is None:
            problems.append(((need,), f"is required for adapter {self.adapter!r}"))
        elif self.adapter == "scripted" and not self.script:
            problems.append((("script",), "must not be empty"))
        if problems:
            raise Problem(*problems)
        if self.supports_replay is None:
            # A graph goes on from its last checkpoint: a run cut off mid-way is continued, not redone.
            self.supports_replay = self.adapter in ("scripted", "langgraph")
        return self


class RoutingRule(_Section):
    """Send messages matching ``match`` (a regex, searched) to ``agent``."""

    match: str
    agent: str

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        """A regex that compiles."""
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
        return value


class RoutingConfig(_Section):
    """Where a run goes without an explicit agent: the first matching rule, else the default."""

    default_agent: str | None = None
    rules: list[RoutingRule] = Field(default_factory=list)


class ConcurrencyConfig(_Section):
    """Slots per worker, a claim's lease and its renewal, and how long a store outage is waited out."""

    max_concurrent_runs: int = Field(default=4, ge=0)  # 0: no limit
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, ge=0)  # 0: leases are never renewed
    store_outage_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> ConcurrencyConfig:
        """A lease must be renewed before it runs out (unless heartbeats are off)."""
        if self.heartbeat_seconds and self.heartbeat_seconds >= self.lease_seconds:
            got = f"{shown(self.heartbeat_seconds)} >= {shown(self.lease_seconds)}"
            raise Problem((("heartbeat_seconds",), f"must be < lease_seconds (got {got})"))
        return self


class RecoveryConfig(_Section):
    """What startup recovery does with runs a crashed worker left behind."""

    enabled: bool = True
    resume_resuming_runs_on_startup: bool = True
    max_recovery_attempts: int = Field(default=3, ge=1)
    stale_running_after_seconds: float = Field(default=60.0, gt=0)


class StreamingConfig(_Section):
    """Limits on one adapter call."""

    invoke_timeout_seconds: float = Field(default=60.0, gt=0)


class PolicyConfig(_Section):
    """Agents and tools no run may use."""

    deny_agents: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)


class StorageConfig(_Section):
    """Where the journal lives; None lets the caller pick its default."""

    url: str | None = None


def _plain_agent_name(name: str) -> str:
    """An agent name of letters, digits, '_', '.' and '-'."""
    if not AGENT_NAME.match(name):
        raise ValueError("agent names may use only letters, digits, '_', '.', '-'")
    if name == AUTO_AGENT:
        raise ValueError(f"{AUTO_AGENT!r} is reserved: `--agent {AUTO_AGENT}` asks routing to choose (rename the agent)")
    return name


# Checked as the mapping's keys (not after it), so that a bad name is reported even when an
# agent's settings have problems of their own.
AgentName = Annotated[str, AfterValidator(_plain_agent_name)]


class Workspace(_Section):
    """A validated workspace file."""

    agents: dict[AgentName, AgentConfig]
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    streaming: StreamingConfig = Field(default_factory=StreamingConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    # Set by load_workspace, never read from the file: a private attribute, so that a
    # `path:` key in the file is an unknown key like any other.
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The file the workspace was loaded from; None for one built from data."""
        return self._path

    @path.setter
    def path(self, value: Path | None) -> None:
        self._path = value

    @field_validator("agents")
    @classmethod
    def _some_agent(cls, agents: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        """At least one agent."""
        if not agents:
            raise ValueError("must define at least one agent")
        return agents

    @model_validator(mode="after")
    def _known_agents(self) -> Workspace:
        """Routing and policy name only agents the workspace defines."""
        data = {"agents": self.agents, "routing": self.routing.model_dump(),
                "policy": self.policy.model_dump()}
        if problems := _unknown_agents(data):
            raise Problem(*problems)
        return self

    @classmethod
    def from_dict(cls, data: Any) -> Workspace:
        """A workspace from plain data (as a YAML file would give); raises WorkspaceError."""
        return validate_workspace(data, None, None)


def _unknown_agents(data: Any) -> list[tuple[Loc, str]]:
    """Each routing or policy entry naming an agent the workspace (plain data) does not define."""
    def section(name: str) -> dict[Any, Any]:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    agents = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(agents, dict) or not agents:
        return []  # nothing to check against; a problem of its own, reported as such
    routing, policy = section("routing"), section("policy")
    rules, denied = routing.get("rules"), policy.get("deny_agents")
    refs: list[tuple[Loc, Any]] = [
        (("routing", "default_agent"), routing.get("default_agent")),
        *((("routing", "rules", i, "agent"), rule.get("agent"))
          for i, rule in enumerate(rules if isinstance(rules, list) else [])
          if isinstance(rule, dict)),
        *((("policy", "deny_agents", i), name)
          for i, name in enumerate(denied if isinstance(denied, list) else [])),
    ]
    names = [str(name) for name in agents]
    return [
        (loc, f"unknown agent {name!r}{did_you_mean(name, names, 'agents defined')}")
        for loc, name in refs
        if isinstance(name, str) and name not in agents  # other values are type problems
    ]


def validate_workspace(data: Any, root: Any, file: str | None) -> Workspace:
    """The workspace ``data`` describes (``root``: its YAML node tree, for lines), or one WorkspaceError."""
    workspace: Workspace = validate(Workspace, data, root, file, across=_unknown_agents)
    return workspace
