"""The workspace file ``runjournal.yaml``: agents, routing, limits, recovery and policy.

``load_workspace(path)`` reads and validates a file; ``parse_workspace(text)`` does the
same for text and ``Workspace.from_dict(data)`` for data built in code. A bad file
raises one ``WorkspaceError`` listing every problem found in it, one per line, each
reading ``FILE:LINE: FIELD.PATH: PROBLEM`` (its ``problems`` holds them as records).

Over 400 lines for now: it is to be split into models and YAML line mapping under ``runjournal/config/``,
in one reshaping step with the journal's split.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..domain import AUTO_AGENT, WorkspaceError

__all__ = [
    "EXAMPLE_WORKSPACE", "AgentConfig", "ConcurrencyConfig", "PolicyConfig", "RecoveryConfig",
    "RoutingConfig", "RoutingRule", "ScriptStep", "StorageConfig", "StreamingConfig", "ToolCall",
    "Workspace", "WorkspaceError", "load_workspace", "parse_workspace", "write_example",
]

DEFAULT_FILENAME = "runjournal.yaml"
AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
CALLABLE_REF = re.compile(r"^[\w.]+:[\w.]+$")
STEP_ACTIONS = ("say", "reasoning", "step", "tool_call", "fail", "sleep")


_Loc = tuple[str | int, ...]  # where in the workspace: keys and list indexes


class _Problem(ValueError):
    """Validation problems, each a (location below the model that raised it, message)."""

    def __init__(self, *items: tuple[_Loc, str]) -> None:
        super().__init__("; ".join(message for _, message in items))
        self.items = items


def _did_you_mean(word: str, choices: list[str], listed: str) -> str:
    """`` (did you mean 'x'?)`` for a close choice, else the list of choices."""
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({listed}: {', '.join(choices) or 'none'})"


class _Section(BaseModel):
    """A part of the workspace: unknown keys are errors, an empty section means defaults."""

    # Unknown keys are left to extra="forbid": pydantic then reports each of them together
    # with the section's other problems (a validator raising here would hide those).
    model_config = ConfigDict(extra="forbid", strict=True)

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
            raise _Problem(((), f"needs exactly one of: {', '.join(STEP_ACTIONS)} ({found})"))
        problems: list[tuple[_Loc, str]] = []
        for extra in ("requires_approval", "result", "rejected"):
            if actions[0] != "tool_call" and getattr(self, extra) not in (None, False):
                problems.append(((extra,), "only applies to a tool_call step"))
        if actions[0] == "tool_call" and self.rejected is not None and not self.requires_approval:
            # Only a call that waits for approval can be rejected: the text would never show.
            problems.append((("rejected",), "only applies with requires_approval: true"))
        if problems:
            raise _Problem(*problems)
        return self

    @property
    def action(self) -> str:
        """The name of the step's action, e.g. ``"say"``."""
        return next(name for name in STEP_ACTIONS if getattr(self, name) is not None)

    def as_dict(self) -> dict[str, Any]:
        """The step as plain data, without unset keys (what the scripted adapter takes)."""
        return self.model_dump(exclude_none=True)


class AgentConfig(_Section):
    """An agent: a ``scripted`` script or a ``python`` ``module:callable``."""

    adapter: Literal["scripted", "python"]
    script: list[ScriptStep] | None = None
    callable: str | None = None
    supports_replay: bool | None = None

    @field_validator("callable")
    @classmethod
    def _callable_ref(cls, value: str | None) -> str | None:
        """A ``module:callable`` reference."""
        if value is not None and not CALLABLE_REF.match(value):
            raise ValueError(f"must be 'module:callable', e.g. 'pkg.mod:agent' (got {value!r})")
        return value

    @model_validator(mode="after")
    def _adapter_fields(self) -> AgentConfig:
        """Scripted agents need a script, python agents a callable; default supports_replay."""
        need, other = ("callable", "script")
        if self.adapter == "scripted":
            need, other = other, need
        problems: list[tuple[_Loc, str]] = []
        if getattr(self, other) is not None:
            problems.append(((other,), f"is not allowed for adapter {self.adapter!r} (use {need})"))
        if getattr(self, need) is None:
            problems.append(((need,), f"is required for adapter {self.adapter!r}"))
        elif self.adapter == "scripted" and not self.script:
            problems.append((("script",), "must not be empty"))
        if problems:
            raise _Problem(*problems)
        if self.supports_replay is None:
            self.supports_replay = self.adapter == "scripted"
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
            got = f"{_show(self.heartbeat_seconds)} >= {_show(self.lease_seconds)}"
            raise _Problem((("heartbeat_seconds",), f"must be < lease_seconds (got {got})"))
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
            raise _Problem(*problems)
        return self

    @classmethod
    def from_dict(cls, data: Any) -> Workspace:
        """A workspace from plain data (as a YAML file would give); raises WorkspaceError."""
        return _validate(data, None, None)


def _unknown_agents(data: Any) -> list[tuple[_Loc, str]]:
    """Each routing or policy entry naming an agent the workspace (plain data) does not define."""
    def section(name: str) -> dict[Any, Any]:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    agents = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(agents, dict) or not agents:
        return []  # nothing to check against; a problem of its own, reported as such
    routing, policy = section("routing"), section("policy")
    rules, denied = routing.get("rules"), policy.get("deny_agents")
    refs: list[tuple[_Loc, Any]] = [
        (("routing", "default_agent"), routing.get("default_agent")),
        *((("routing", "rules", i, "agent"), rule.get("agent"))
          for i, rule in enumerate(rules if isinstance(rules, list) else [])
          if isinstance(rule, dict)),
        *((("policy", "deny_agents", i), name)
          for i, name in enumerate(denied if isinstance(denied, list) else [])),
    ]
    names = [str(name) for name in agents]
    return [
        (loc, f"unknown agent {name!r}{_did_you_mean(name, names, 'agents defined')}")
        for loc, name in refs
        if isinstance(name, str) and name not in agents  # other values are type problems
    ]


# -- errors: pydantic's error -> "FILE:LINE: FIELD.PATH: MESSAGE" ---------------------------

_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
          "dict": "a mapping", "model": "a mapping", "list": "a list"}


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)


def _message(error: Mapping[str, Any]) -> str:
    """A short human message for one pydantic error."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, _show(error.get("input"))
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "missing":
        return "is required"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return f"must be {op} {_show(ctx[key])} (got {got})"
    if kind == "literal_error":
        options = ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
        return f"must be one of: {options} (got {got})"
    if kind.endswith("too_short"):
        return "must not be empty"
    if kind.split("_")[0] in _KINDS and kind.endswith(("_type", "_parsing", "_from_float")):
        return f"must be {_KINDS[kind.split('_')[0]]} (got {got})"
    return str(error["msg"][:1].lower() + error["msg"][1:])


def _unwrap(kind: Any) -> Any:
    """``X`` for an annotation ``X | None``; any other annotation as it is."""
    if get_origin(kind) in (Union, types.UnionType):
        args = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _model_at(loc: _Loc) -> type[BaseModel] | None:
    """The section model that validates the mapping at ``loc`` in a workspace, if any."""
    kind: Any = Workspace
    for part in loc:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return None
            kind = field.annotation
        elif get_origin(kind) in (list, dict):
            kind = get_args(kind)[-1]  # the items of a list, the values of a mapping
        else:
            return None
    kind = _unwrap(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _entries(exc: ValidationError) -> list[tuple[_Loc, str]]:
    """(location, message) of every problem pydantic found, each of a _Problem's on its own."""
    entries: list[tuple[_Loc, str]] = []
    for error in exc.errors():
        loc, problem = tuple(error["loc"]), (error.get("ctx") or {}).get("error")
        if error["type"] == "extra_forbidden":
            key, model = str(loc[-1]), _model_at(loc[:-1])
            hint = _did_you_mean(key, list(model.model_fields), "allowed keys") if model else ""
            entries.append(((*loc[:-1], key), f"unknown key {key!r}{hint}"))
        elif isinstance(problem, _Problem):
            entries.extend(((*loc, *below), message) for below, message in problem.items)
        else:
            entries.append((loc, _message(error)))
    return entries


def _dotted(loc: tuple[str | int, ...]) -> str:
    """``agents.deployer.script[2].tool_call`` for a location."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(node: yaml.Node) -> int:
    """The 1-based line a YAML node starts on."""
    return node.start_mark.line + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node giving the line, the value node) one step along a location, or None."""
    if isinstance(node, yaml.MappingNode):
        return next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part]
    return None


def _line_at(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node found along ``loc``; a mapping entry gives its key's line."""
    line = _line(node) if node is not None else None
    for part in loc:
        found = _child(node, part) if node is not None else None
        if found is None:
            break
        line, node = _line(found[0]), found[1]
    return line


def _validate(data: Any, root: yaml.Node | None, file: str | None) -> Workspace:
    """The workspace ``data`` describes, or one WorkspaceError listing every problem in it."""
    try:
        return Workspace.model_validate(data)
    except ValidationError as exc:
        entries = _entries(exc)
        if all(error["loc"] for error in exc.errors()):
            # Some section failed, so pydantic skipped the checks across sections (they run
            # only on a valid model): run them on the data, to report their problems too.
            entries += _unknown_agents(data)
    raise _workspace_error(entries, root, file)


def _workspace_error(
    entries: list[tuple[_Loc, str]], root: yaml.Node | None, file: str | None
) -> WorkspaceError:
    """One WorkspaceError for all ``entries``, in the order of their lines in the file."""
    rows: dict[tuple[int | None, str, str], int] = {}
    for index, (loc, message) in enumerate(entries):
        rows.setdefault((_line_at(root, loc), _dotted(loc), message), index)
    ordered = sorted(rows, key=lambda row: (row[0] or 0, rows[row]))
    problems: list[dict[str, object]] = [
        {"file": file, "line": line, "field": field or None, "problem": message}
        for line, field, message in ordered
    ]
    line, field, message = ordered[0]
    return WorkspaceError(message, file=file, line=line, field=field or None, more=problems[1:])


# -- reading and writing files --------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe YAML loader, refusing a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping, unless a key in it is written twice."""
        first: dict[tuple[str, Any], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and not key.tag.endswith(":merge"):
                if (key.tag, key.value) in first:
                    where = f"(first on line {first[key.tag, key.value]})"
                    problem = f"duplicate key {key.value!r} {where}"
                    raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
                first[key.tag, key.value] = _line(key)
        return super().construct_mapping(node, deep=deep)


def _compose(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree and the data it builds; syntax errors become WorkspaceError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and start.line != getattr(mark, "line", None):
            problem += f" ({context} from line {start.line + 1})"
        line = mark.line + 1 if mark is not None else None
        raise WorkspaceError(f"invalid YAML: {problem}", file=filename, line=line) from None
    finally:
        loader.dispose()


def parse_workspace(text: str, filename: str = DEFAULT_FILENAME) -> Workspace:
    """A workspace from YAML text; ``filename`` is used in error messages."""
    root, data = _compose(text, filename)
    if not isinstance(data, dict):
        line = _line(root) if root is not None else 1
        problem = "the workspace must be a mapping of sections"
        raise WorkspaceError(problem, file=filename, line=line)
    return _validate(data, root, filename)


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


EXAMPLE_WORKSPACE = """\
# runjournal workspace: the agents runs go to, and how workers run them.
# Every section but `agents` is optional; the values below are the defaults.

# Agents, by name (letters, digits, '_', '.', '-').
#   adapter: scripted  plays `script`, a list of steps, each exactly one of:
#              say: TEXT           answer text ({message} is the run's input message)
#              reasoning: TEXT     thinking shown while streaming
#              step: {...}         a progress step with any data
#              tool_call: {name: NAME, args: {...}}   a tool call; add
#                                  `requires_approval: true` to wait for a person,
#                                  `result: {...}` for what the tool returns,
#                                  `rejected: TEXT` for the answer if the person
#                                  rejects it (the script then stops there)
#              fail: TEXT          fail the run with this error
#              sleep: SECONDS      pause
#   adapter: python    calls `callable: "package.module:function"`, an async generator
#   supports_replay    may a run cut off mid-way be re-run from the start on recovery?
#                      (default: true for scripted, false for python)
agents:
  echo:
    adapter: scripted
    script:
      - {say: "Hello from echo"}
  deployer:
    adapter: scripted
    supports_replay: true
    script:
      - {reasoning: "Checking the release before deploying"}
      - {step: {phase: plan}}
      - tool_call: {name: deploy, args: {env: prod}}
        requires_approval: true
        result: {ok: true}
        rejected: "Not deployed: the deploy was rejected"
      - {say: "Deployed"}
  # custom:
  #   adapter: python
  #   callable: "mypkg.agents:deployer"

# Which agent a run goes to when none is named (and its thread has none yet):
# the first rule whose `match` regex is found in the message, else `default_agent`.
routing:
  default_agent: echo
  rules:
    - {match: "deploy", agent: deployer}   # Python regex; "(?i)deploy" ignores case

# Per worker: how many runs hold a slot at once (0: no limit); how long a claim's lease
# lasts; how often the worker renews it (less than lease_seconds; 0: never, so a run
# that outlasts its lease may be taken over); how long a worker backs off and retries
# while the store is unavailable before it exits with one line.
concurrency:
  max_concurrent_runs: 4
  lease_seconds: 30
  heartbeat_seconds: 10
  store_outage_seconds: 60

# Recovery of runs a stopped worker left behind: at startup, by `runjournal recover`,
# and in every worker's loop (expired leases). enabled: false switches all of it off.
recovery:
  enabled: true
  resume_resuming_runs_on_startup: true   # resume runs whose approval was decided
  max_recovery_attempts: 3                # then the run fails "recovery attempts exhausted"
  stale_running_after_seconds: 60         # a running run silent this long is re-run or failed

# Limits on one agent call.
streaming:
  invoke_timeout_seconds: 60   # longer -> the run fails "timed out after N s"

# Agents and tools no run may use (runs fail before start, listing the reason).
policy:
  deny_agents: []
  deny_tools: []

# Where the journal is stored: sqlite:///PATH, memory:// or postgresql://...
storage:
  url: "sqlite:///.runjournal/journal.db"
"""
