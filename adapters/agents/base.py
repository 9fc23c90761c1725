"""The agent adapter contract: what an agent gets (AgentRequest) and what it yields (Chunk)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from ...domain.errors import RunjournalError

ChunkKind = Literal["content", "reasoning", "step", "tool_result", "interrupt"]
CHUNK_KINDS: tuple[str, ...] = get_args(ChunkKind)


class AgentFailed(RunjournalError):
    """Raised by an agent that reports a failure; the message is the run's error."""

    code = "agent_failed"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class AgentLoadError(RunjournalError):
    """Raised when an agent cannot be imported or built from its configuration."""

    code = "agent_load_error"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of agent output.

    ``content`` is text for content/reasoning, any JSON for step, the output for
    tool_result and a message for interrupt. ``tool_*`` are for tool_result and
    interrupt, ``is_error`` for tool_result, ``checkpoint_ref`` for interrupt.
    """

    kind: ChunkKind
    content: Any = None
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    tool_call_id: str | None = None
    is_error: bool = False
    checkpoint_ref: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CHUNK_KINDS:
            raise ValueError(
                f"chunk kind must be one of {', '.join(CHUNK_KINDS)} (got {self.kind!r})"
            )

    @classmethod
    def say(cls, text: str) -> Chunk:
        """A content chunk."""
        return cls("content", text)

    @classmethod
    def think(cls, text: str) -> Chunk:
        """A reasoning chunk."""
        return cls("reasoning", text)

    @classmethod
    def step(cls, obj: Any) -> Chunk:
        """A step chunk carrying any JSON value."""
        return cls("step", obj)

    @classmethod
    def tool(
        cls,
        name: str,
        args: Mapping[str, Any] | None,
        output: Any,
        call_id: str | None = None,
        is_error: bool = False,
    ) -> Chunk:
        """A tool_result chunk: tool ``name`` called with ``args`` returned ``output``."""
        return cls(
            "tool_result",
            output,
            tool_name=name,
            tool_args=dict(args or {}),
            tool_call_id=call_id,
            is_error=is_error,
        )

    @classmethod
    def interrupt(
        cls,
        name: str,
        args: Mapping[str, Any] | None,
        *,
        call_id: str | None = None,
        message: str | None = None,
        checkpoint_ref: str | None = None,
    ) -> Chunk:
        """An interrupt chunk: tool ``name`` needs approval; resume at ``checkpoint_ref``."""
        return cls(
            "interrupt",
            message,
            tool_name=name,
            tool_args=dict(args or {}),
            tool_call_id=call_id,
            checkpoint_ref=checkpoint_ref,
        )


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """What an agent gets: the run's persisted input and invocation, thread history and any resume payload.

    ``context``, ``inputs`` and ``attachments`` are the invocation envelope the run was
    submitted with (persisted beside the input, so a recovered run gets them too).
    """

    run_id: str
    thread_id: str
    agent_id: str
    input: Any
    messages: tuple[dict[str, str], ...] = ()
    resume: dict[str, Any] | None = None
    resume_kind: str | None = None
    context: Mapping[str, Any] | None = None
    inputs: Mapping[str, Any] | None = None
    attachments: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(self.messages))
        if not isinstance(self.attachments, tuple):
            object.__setattr__(self, "attachments", tuple(self.attachments))

    @property
    def message(self) -> str:
        """The input's ``message`` when it is a dict with a str message, else ``str(input)``."""
        if isinstance(self.input, Mapping) and isinstance(self.input.get("message"), str):
            return str(self.input["message"])
        return str(self.input)

    @property
    def decision(self) -> str | None:
        """The approval decision being resumed with, if any."""
        return self.resume.get("decision") if self.resume else None


@runtime_checkable
class AgentAdapter(Protocol):
    """An agent: ``stream`` yields chunks; ``supports_replay`` says a rerun from scratch is safe.

    An adapter may name its ``kind`` (``"scripted"``, ``"python"``): a run records it as
    its execution mode (see ``adapter_kind``).
    """

    supports_replay: bool

    def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        """The run's answer, chunk by chunk."""
        ...


@runtime_checkable
class CanInvoke(Protocol):
    """An agent that can also answer in one call (the harness's fallback when streaming fails)."""

    async def invoke(self, request: AgentRequest) -> list[Chunk]:
        """The run's answer in one call."""
        ...


def adapter_can_invoke(adapter: object) -> bool:
    """Whether ``adapter`` offers a working ``invoke``.

    An adapter may expose ``can_invoke`` to say so itself (a lazily loaded one
    does); an adapter that cannot even be loaded cannot invoke.
    """
    if not callable(getattr(adapter, "invoke", None)):
        return False
    try:
        return bool(getattr(adapter, "can_invoke", True))
    except AgentLoadError:
        return False


def adapter_kind(adapter: object) -> str:
    """What a run records as its execution mode: the adapter's ``kind``, else its class name."""
    kind = getattr(adapter, "kind", None)
    return kind if isinstance(kind, str) and kind else type(adapter).__name__


async def collect(chunks: AsyncIterable[Chunk]) -> list[Chunk]:
    """All chunks of a stream, in order."""
    return [chunk async for chunk in chunks]
