"""The agent adapter contract: what an agent gets (AgentRequest) and what it yields (Chunk)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from ...domain.errors import RunjournalError
from .tape import Tape

ChunkKind = Literal["content", "reasoning", "step", "tool_result", "interrupt", "tool_call", "output"]
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
    tool_result and a message for interrupt. ``tool_*`` are for tool_result, interrupt and
    tool_call, ``is_error`` for tool_result, ``checkpoint_ref`` for interrupt. A ``tool_call``
    announces a call the agent is about to make (policy refuses a denied tool before it runs;
    nothing is recorded); ``output`` is the run's result value (JSON), recorded in ``Completed``
    as ``output.result`` beside the text. ``served_from``
    names the event whose recorded output a tool result or model step repeats (see tape.py).
    """

    kind: ChunkKind
    content: Any = None
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    tool_call_id: str | None = None
    is_error: bool = False
    checkpoint_ref: str | None = None
    served_from: Mapping[str, Any] | None = None

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
    def model(cls, name: str, args: Any, output: Any, *, served_from: Mapping[str, Any] | None = None) -> Chunk:
        """A step recording that model ``name`` asked with ``args`` answered ``output``."""
        return cls("step", {"model": name, "args": args, "output": output}, served_from=served_from)

    @property
    def output(self) -> Any:
        """What a tool returned or a model answered (``content``, or a model step's ``output``)."""
        if self.kind == "step" and isinstance(self.content, Mapping) and "model" in self.content:
            return self.content.get("output")
        return self.content

    @classmethod
    def tool(
        cls,
        name: str,
        args: Mapping[str, Any] | None,
        output: Any,
        call_id: str | None = None,
        is_error: bool = False,
        served_from: Mapping[str, Any] | None = None,
    ) -> Chunk:
        """A tool_result chunk: tool ``name`` called with ``args`` returned ``output``."""
        return cls(
            "tool_result",
            output,
            tool_name=name,
            tool_args=dict(args or {}),
            tool_call_id=call_id,
            is_error=is_error,
            served_from=served_from,
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
    ``tape`` holds recorded outputs to serve instead of calling (a fork's parent, a replay):
    an agent that calls through ``tool`` and ``model`` gets them without any call made.
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
    tape: Tape | None = None
    fork: Mapping[str, Any] | None = None  # a fork's {"run_id", "version", "input": kept|replaced|edited}

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

    @property
    def replaying(self) -> bool:
        """True in a replay: every call is served from the run's record, none is made."""
        return self.tape is not None and self.tape.strict

    async def tool(
        self, name: str, args: Mapping[str, Any], call: Callable[..., Any], *, call_id: str | None = None,
    ) -> Chunk:
        """The tool_result of ``call(**args)``: from the record when it holds this call, else called now.

        Yield the chunk (it is recorded) and read ``chunk.output``. A call that raises is
        returned as an ``is_error`` result with the error's text.
        """
        served = self.tape.tool(name, args, call_id) if self.tape is not None else None
        if served is not None:
            c = served.content
            return Chunk.tool(name, args, c.get("output"), call_id=call_id, is_error=bool(c.get("is_error")),
                              served_from=served.source)
        try:
            output = await _called(call, **dict(args))
        except Exception as e:  # noqa: BLE001 - a failing tool is a result the agent sees, as a real one is
            return Chunk.tool(name, args, f"{type(e).__name__}: {e}", call_id=call_id, is_error=True)
        return Chunk.tool(name, args, output, call_id=call_id)

    async def model(self, name: str, call: Callable[[], Any], *, args: Any = None) -> Chunk:
        """A model step with the answer of ``call()``: from the record when it holds this call, else called now.

        ``args`` (any JSON: the prompt, the settings) is recorded beside the answer and must
        match for a recorded answer to be served. Yield the chunk and read ``chunk.output``.
        """
        served = self.tape.model(name, args) if self.tape is not None else None
        if served is not None:
            return Chunk.model(name, args, served.content.get("output"), served_from=served.source)
        return Chunk.model(name, args, await _called(call))


async def _called(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What ``call`` returns, awaited when it is a coroutine."""
    result = call(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


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
