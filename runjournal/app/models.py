"""Pydantic models at the journal's boundary: validated inputs and frozen snapshots out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..domain import AUTO_AGENT, InvalidInput, Run, RunState
from .payload import PayloadRule, checked

T = TypeVar("T", bound=BaseModel)
MAX_TEXT = 64 * 1024  # reasons and error messages


# Strings: pydantic refuses lone surrogates itself. Payload fields are checked by ``validate`` against the journal's PayloadRule (see payload.py)
# before the model is built, so an oversized value is never echoed back in an error.
JSONValue = Any
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    payload_fields: ClassVar[tuple[str, ...]] = ()


class Invocation(_Input):
    """The envelope an agent gets beside the input: context, named inputs (state) and attachments."""

    context: dict[str, JSONValue] | None = None
    inputs: dict[str, JSONValue] | None = None
    attachments: list[JSONValue] | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_parts(cls, value: Any) -> Any:
        if isinstance(value, dict) and (unknown := sorted(set(value) - set(cls.model_fields), key=str)):
            raise ValueError(f"unknown part {unknown[0]!r}: an invocation has context, inputs and attachments")
        return value

    def recorded(self) -> dict[str, Any] | None:
        """What ``Created`` keeps: the parts given, or None when none was."""
        parts = self.model_dump(exclude_none=True)
        return parts or None


class SubmitInput(_Input):
    payload_fields = ("input", "invocation", "fork")
    agent_id: Name
    requested_agent_id: Name | None = None  # None: the caller named agent_id itself
    execution_mode: Name | None = None
    input: JSONValue
    invocation: Invocation | None = None
    thread_id: Name | None = None
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000, strict=True)  # "3", 1.5 and True alike refused
    idempotency_key: Name | None = None
    actor: Name
    parent_run_id: Name | None = None
    parent_version: int | None = Field(default=None, ge=1)
    fork: dict[str, JSONValue] | None = None  # what a fork of parent_run_id changed (see Journal.fork)

    @field_validator("input")
    @classmethod
    def _present(cls, value: Any) -> Any:
        if value is None:  # a worker and recovery must agree on what to run: there is always a request
            raise ValueError("a run needs an input (any JSON value but null): it is the request workers run")
        return value

    @field_validator("agent_id")
    @classmethod
    def _named(cls, value: str) -> str:
        if value == AUTO_AGENT:  # the journal records runs; choosing their agent is the harness's routing
            raise ValueError(f"{AUTO_AGENT!r} asks routing to choose: submit through a Harness, or name the agent")
        return value


class ClaimInput(_Input):
    worker_id: Name
    lease_seconds: float = Field(gt=0, le=86_400)
    agents: tuple[Name, ...] | None = Field(default=None, min_length=1)  # None: runs of every agent

    @field_validator("agents", mode="before")
    @classmethod
    def _agents_as_tuple(cls, value: Any) -> Any:
        # A set or list of names, kept in a stable order (they become query parameters).
        if isinstance(value, str):
            raise ValueError("must be a collection of agent names, not one string")
        return tuple(sorted(value)) if isinstance(value, (set, frozenset, list, tuple)) else value


class StepInput(_Input):
    payload_fields = ("content",)
    kind: Literal["step", "tool_result", "message", "reasoning", "output"]
    content: JSONValue


class ApprovalInput(_Input):
    payload_fields = ("tool_args", "content", "output")
    tool_name: Name
    tool_args: JSONValue = Field(default_factory=dict)
    tool_call_id: Name | None = None
    content: JSONValue = None
    checkpoint_ref: Text | None = None
    output: str | None = None
    expires_in: float | None = Field(default=None, gt=0, le=366 * 86_400)  # seconds until it expires undecided
    assignees: list[Name] | None = Field(default=None, min_length=1)  # who alone may decide
    on_expiry: Literal["reject", "fail"] = "reject"


class DecisionInput(_Input):
    payload_fields = ("edits",)
    approval_id: Name
    decision: Literal["approve", "reject", "edit"]
    edits: JSONValue = None
    actor: Name

    def model_post_init(self, _: Any) -> None:
        if self.decision == "edit" and not isinstance(self.edits, dict):
            raise ValueError("edits: an 'edit' decision needs the edited tool arguments as an object")


class OutcomeInput(_Input):
    payload_fields = ("output",)
    output: JSONValue = None


class ErrorInput(_Input):
    error: Annotated[Text, Field(min_length=1)]
    actor: Name


class CancelInput(_Input):
    reason: Text | None = None
    actor: Name


def validate(model: type[T], rule: PayloadRule | None = None, **values: Any) -> T:
    """Build an input model, turning pydantic's error into ``InvalidInput`` naming the field.

    Payload fields are checked against ``rule`` (the journal's limits) first.
    """
    for name in getattr(model, "payload_fields", ()):
        if name in values:
            values[name] = checked(values[name], field=name, rule=rule or PayloadRule())
    try:
        return model(**values)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or model.__name__
        got = first.get("input")
        shown = "" if isinstance(got, dict) and field == model.__name__ else f" (got {_short(got)})"
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidInput(field, f"{message}{shown}") from None
    except ValueError as e:  # raised by model_post_init
        field, _, problem = str(e).partition(": ")
        raise InvalidInput(field, problem) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


class Claim(BaseModel):
    """A worker's hold on a run: present it with every worker command."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    worker_id: str
    epoch: int
    lease_expires_at: datetime
    agent_id: str
    thread_id: str
    input: Any
    invocation: dict[str, Any] | None = None
    resume: dict[str, Any] | None = None
    fork_of: dict[str, Any] | None = None  # {"run_id", "version", "parent_chain", "input"}: what a fork continues


class RunSnapshot(BaseModel):
    """A run as it is (or was, at a version): a frozen copy, safe to keep."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    thread_id: str
    agent_id: str
    requested_agent_id: str | None = None  # None: created before it was recorded
    execution_mode: str | None = None
    state: str
    version: int
    priority: int
    input: Any
    invocation: dict[str, Any] | None = None
    output: Any = None
    error: str | None = None
    epoch: int
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    pending_approval: dict[str, Any] | None = None
    pending_resume: dict[str, Any] | None = None
    recovery_attempts: int = 0
    steps: int = 0
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_version: int | None = None
    fork: dict[str, Any] | None = None
    cancel_reason: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    chain: str

    @property
    def is_terminal(self) -> bool:
        """True when the run can change no more."""
        return RunState(self.state).is_terminal

    @classmethod
    def of(cls, run: Run) -> RunSnapshot:
        """Copy a run aggregate's state.

        Built without validation: every value comes from the aggregate, which only holds
        what its events validated. The dicts are copied so a caller's edit cannot reach it.
        """
        return cls.model_construct(
            run_id=run.run_id,
            thread_id=run.thread_id,
            agent_id=run.agent_id,
            requested_agent_id=run.requested_agent_id,
            execution_mode=run.execution_mode,
            state=str(run.state),
            version=run.version,
            priority=run.priority,
            input=run.input,
            invocation=_copied(run.invocation),
            output=run.output,
            error=run.error,
            epoch=run.epoch,
            worker_id=run.worker_id,
            lease_expires_at=run.lease_expires_at,
            pending_approval=_copied(run.pending_approval),
            pending_resume=_copied(run.pending_resume),
            recovery_attempts=run.recovery_attempts,
            steps=run.steps,
            idempotency_key=run.idempotency_key,
            parent_run_id=run.parent_run_id,
            parent_version=run.parent_version,
            fork=_copied(run.fork),
            cancel_reason=run.cancel_reason,
            created_by=run.created_by,
            created_at=run.created_on,
            updated_at=run.modified_on,
            chain=run.chain,
        )


def _copied(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


class RecordedEvent(BaseModel):
    """One stored event of a run, as a reader sees it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    version: int
    type: str
    timestamp: datetime
    actor: str
    data: dict[str, Any]
    chain: str
    position: int | None = None


class VerifyProblem(BaseModel):
    """One broken link found by ``verify``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    version: int | None
    problem: str


class VerifyReport(BaseModel):
    """What ``verify`` checked and what it found."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ok: bool
    runs_checked: int
    events_checked: int
    problems: list[VerifyProblem]
    heads: dict[str, str] = Field(default_factory=dict, repr=False)
    versions: dict[str, int] = Field(default_factory=dict, repr=False)
    log_head: str = ""
    anchored: dict[str, str] = Field(default_factory=dict, repr=False)
    log_head_at: str = ""
