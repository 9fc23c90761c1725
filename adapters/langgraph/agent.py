"""LangGraphAgent: a compiled LangGraph graph as a runjournal agent (``adapter: langgraph``).

Each run is a LangGraph thread of its own (its id is the run's), checkpointed in the
journal's store by ``JournalCheckpointer`` with ``durability="sync"``: a checkpoint is
saved before the next super-step starts, so a run whose worker died goes on from its last
checkpoint on another worker, and no node that finished runs again. The graph's stream
becomes chunks:

- model tokens (``messages``) -> content, reasoning blocks -> reasoning;
- each super-step -> one step: the nodes' updates and the checkpoint saved, with its
  digest (what ``verify`` recomputes from the store);
- tool messages of a tool node -> tool_result, with the call's id and arguments, recorded
  just after their super-step's checkpoint (a fork at a tool result goes on from the state
  that holds it, and does not call the tool again);
- the graph stops before every tool node: each pending call is announced (a
  ``tool_call`` chunk) and the harness refuses a denied tool before it can run;
- ``interrupt(value)`` -> an approval whose tool, args and message come from the value;
  its decision resumes the graph with ``Command(resume={interrupt_id: decision})``;
- the final state -> the run's result.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Interrupt

from ..agents.base import AgentFailed, AgentLoadError, AgentRequest, Chunk
from ..agents.python import resolve
from .checkpointer import JournalCheckpointer

MODES = ("messages", "updates", "custom")  # what a workspace may ask to stream; "updates" is always on
REF_PREFIX = "langgraph:"  # an interrupt's checkpoint_ref: langgraph:<thread>:<checkpoint id>


class LangGraphAgent:
    """A graph named ``module:attribute``: a compiled graph, a ``StateGraph`` or a function returning one."""

    kind = "langgraph"

    def __init__(
        self,
        graph: str,
        *,
        folder: str | Path | None = None,
        input_key: str | None = None,
        stream_mode: Sequence[str] = ("messages", "updates"),
        config: Mapping[str, Any] | None = None,
        tool_nodes: Sequence[str] = (),
        supports_replay: bool = True,
        checkpointer: JournalCheckpointer | None = None,
    ) -> None:
        self.target = graph
        self.folder = Path(folder) if folder is not None else None
        self.input_key = input_key
        self.stream_mode = tuple(dict.fromkeys(("updates", *stream_mode)))
        self.config = dict(config or {})
        self.tool_nodes = tuple(tool_nodes)
        # A run cut off is continued from its last checkpoint: re-running it is safe.
        self.supports_replay = supports_replay
        self._checkpointer = checkpointer
        self._journal: Any = None
        self._graph: Any = None  # the compiled graph, once loaded
        self._tools: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"LangGraphAgent({self.target!r})"

    def use_journal(self, journal: Any) -> None:
        """Keep checkpoints in ``journal``'s store (the harness calls this with its own journal)."""
        if self._checkpointer is None:
            self._journal = journal

    @property
    def checkpointer(self) -> JournalCheckpointer:
        """The journal-backed checkpointer runs are saved with (never an in-memory one)."""
        if self._checkpointer is None:
            if self._journal is None:
                raise AgentLoadError(f"graph {self.target!r} has no journal to keep its checkpoints in "
                                     "(run it through a Harness)")
            try:
                self._checkpointer = JournalCheckpointer.of(self._journal)
            except ValueError as e:
                raise AgentLoadError(str(e)) from None
        return self._checkpointer

    def load(self) -> Any:
        """The graph, compiled with the journal's checkpointer; raises AgentLoadError."""
        if self._graph is not None:
            return self._graph
        obj, _, _ = resolve(self.target, self.folder)
        if not isinstance(obj, (Pregel, StateGraph)) and callable(obj):
            try:
                obj = obj()
            except Exception as e:
                raise AgentLoadError(f"cannot build graph {self.target!r}: {type(e).__name__}: {e}") from e
        if isinstance(obj, StateGraph):
            graph: Any = obj.compile(checkpointer=self.checkpointer)
        elif isinstance(obj, Pregel):
            # Whatever saver it was compiled with, its runs are checkpointed where the journal is.
            graph = obj.copy(update={"checkpointer": self.checkpointer})
        else:
            raise AgentLoadError(f"cannot load graph {self.target!r}: expected a compiled graph, a StateGraph or "
                                 f"a function returning one, got {type(obj).__name__}")
        found = {name for name, node in graph.nodes.items() if isinstance(node.bound, ToolNode)}
        unknown = [n for n in self.tool_nodes if n not in graph.nodes]
        if unknown:
            raise AgentLoadError(f"graph {self.target!r} has no node {unknown[0]!r} (tool_nodes names nodes of "
                                 f"the graph: {', '.join(sorted(graph.nodes))})")
        self._tools = frozenset(found | set(self.tool_nodes))
        self._graph = graph
        return graph

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        """Run (or continue) the run's graph and yield its stream as chunks."""
        graph = self.load()
        config = self._config(request)
        state = await graph.aget_state(config)
        if not state.created_at and (parent := _fork_checkpoint(request)) is not None:
            await self.checkpointer.acopy_thread_up_to(parent[0], request.run_id, parent[1])
            state = await graph.aget_state(config)
        calls = _tool_calls(state.values)
        pending = {i.id for t in state.tasks for i in t.interrupts}
        decided = (request.resume or {}).get("tool_call_id")
        if request.resume and decided in pending:
            entry: Any = Command(resume={decided: resume_value(request.resume)})
        elif state.created_at:
            entry = None  # a run cut off, or resumed past its decision: it goes on from its last checkpoint
        else:
            entry = self._graph_input(request)
        while True:
            if entry is None:
                state = await graph.aget_state(config)
                if stop := _first_interrupt(state, request.run_id):
                    yield stop
                    return
                if not state.next:
                    yield Chunk("output", plain(state.values))
                    return
                if self._tools & set(state.next):  # announced first: a denied tool never runs
                    calls.update(_tool_calls(state.values))
                    for call in _last_tool_calls(state.values):
                        yield Chunk("tool_call", tool_name=call["name"], tool_args=dict(call.get("args") or {}),
                                    tool_call_id=call.get("id"))
            async for chunk in self._run(graph, entry, config, calls):
                yield chunk
            entry = None

    async def _run(self, graph: Any, entry: Any, config: Any,
                   calls: dict[str, dict[str, Any]]) -> AsyncIterator[Chunk]:
        """One stream of the graph until it ends or stops (before a tool node, or at an interrupt)."""
        updates: dict[str, Any] = {}
        results: list[Chunk] = []  # the super-step's tool results: recorded after its checkpoint (see below)
        saved: Any = None  # the super-step's checkpoint: recorded once it is stored (LangGraph streams it first)
        tokens = "messages" in self.stream_mode
        async for mode, item in graph.astream(entry, config, stream_mode=[*self.stream_mode, "checkpoints"],
                                              durability="sync", interrupt_before=sorted(self._tools)):
            if saved is not None:
                # The checkpoint first: a fork at a tool result goes on from the state holding it.
                yield self._checkpoint_step(saved, updates)
                for chunk in results:
                    yield chunk
                saved, updates, results = None, {}, []
            if mode == "messages":
                message, _ = item
                if isinstance(message, AIMessage):
                    for chunk in _text_chunks(message):
                        yield chunk
            elif mode == "updates":
                if "__interrupt__" in item or item.get("__metadata__", {}).get("cached"):
                    continue  # interrupts are read from the state; a cached update is recorded already
                for node, update in item.items():
                    for message in _messages(update):
                        if isinstance(message, AIMessage):
                            calls.update(_calls_by_id(message))
                            if not tokens:
                                for chunk in _text_chunks(message):
                                    yield chunk
                        elif isinstance(message, ToolMessage) and node in self._tools:
                            call = calls.get(message.tool_call_id, {})
                            results.append(Chunk.tool(message.name or call.get("name") or "(unnamed tool)",
                                             call.get("args") or {}, plain(message.content),
                                             call_id=message.tool_call_id, is_error=message.status == "error"))
                    if node not in self._tools:
                        updates[node] = plain(update)
            elif mode == "custom":
                yield Chunk.step({"custom": plain(item)})
            elif mode == "checkpoints":
                saved = item
        if saved is not None:
            yield self._checkpoint_step(saved, updates)
        for chunk in results:
            yield chunk

    def _checkpoint_step(self, saved: Mapping[str, Any], updates: dict[str, Any]) -> Chunk:
        """One super-step as a step: the checkpoint saved (id, step, digest) and the nodes' updates."""
        config = saved["config"]
        checkpoint = {"id": config["configurable"]["checkpoint_id"], "step": saved["metadata"].get("step"),
                      "digest": self.checkpointer.digest(config)}
        return Chunk.step({"checkpoint": checkpoint, **({"updates": updates} if updates else {})})

    def _config(self, request: AgentRequest) -> Any:
        configurable = {**self.config.get("configurable", {}), "thread_id": request.run_id}
        metadata = {**self.config.get("metadata", {}), "runjournal_run_id": request.run_id,
                    "runjournal_thread_id": request.thread_id}
        return {**self.config, "configurable": configurable, "metadata": metadata}

    def _graph_input(self, request: AgentRequest) -> Any:
        """The graph's input: the run's input object, or the thread's messages and the run's under ``input_key``."""
        if self.input_key is not None:
            return {self.input_key: [*request.messages, {"role": "user", "content": request.message}]}
        if not isinstance(request.input, Mapping):
            raise AgentFailed(f"graph {self.target!r} takes a JSON object as input (got {type(request.input).__name__}"
                              "); give one, or set input_key to pass the message as the graph's messages")
        return dict(request.input)


def resume_value(decision: Mapping[str, Any]) -> dict[str, Any]:
    """What ``interrupt()`` returns in the graph once its approval is decided: the decision and the args to use."""
    edited = decision.get("decision") == "edit" and decision.get("edited_args") is not None
    value = {"decision": decision.get("decision"), "actor": decision.get("actor"),
             "args": decision.get("edited_args") if edited else decision.get("tool_args")}
    if decision.get("expired"):
        value["expired"] = True
    return value


def _first_interrupt(state: Any, thread_id: str) -> Chunk | None:
    """The approval the graph waits for first, if it waits for one (each interrupt is asked for in turn)."""
    checkpoint_id = (state.config or {}).get("configurable", {}).get("checkpoint_id")
    for task in state.tasks:
        for found in task.interrupts:
            return interrupt_chunk(task.name, found, f"{REF_PREFIX}{thread_id}:{checkpoint_id}")
    return None


def interrupt_chunk(node: str, found: Interrupt, checkpoint_ref: str) -> Chunk:
    """An approval request from ``interrupt(value)``: tool, args and message from the value, else the node's name."""
    value = found.value
    message: Any = None
    if isinstance(value, Mapping):
        name = value.get("tool") or value.get("tool_name") or value.get("action") or node
        args = value.get("args", value.get("tool_args"))
        message = value.get("message") or value.get("content") or value.get("description")
    else:
        name, args = node, None
        message = value if isinstance(value, str) else None
        if not isinstance(value, str):
            args = {"value": plain(value)}
    if args is not None and not isinstance(args, Mapping):
        args = {"value": plain(args)}
    return Chunk.interrupt(str(name), plain(args or {}), call_id=found.id,
                           message=None if message is None else str(message), checkpoint_ref=checkpoint_ref)


def _fork_checkpoint(request: AgentRequest) -> tuple[str, str] | None:
    """(parent thread, checkpoint) a fork that kept its input goes on from: the last its parent recorded before it."""
    fork = request.fork
    if not fork or fork.get("input") != "kept" or request.tape is None:
        return None
    for step in reversed(request.tape.steps):
        checkpoint = step.content.get("checkpoint") if isinstance(step.content, Mapping) else None
        if isinstance(checkpoint, Mapping) and checkpoint.get("id"):
            return step.run_id, str(checkpoint["id"])
    return None


def _messages(update: Any) -> list[Any]:
    if not isinstance(update, Mapping):
        return []
    found: list[Any] = []
    for value in update.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        found.extend(m for m in items if isinstance(m, BaseMessage))
    return found


def _tool_calls(values: Any) -> dict[str, dict[str, Any]]:
    """Every tool call of the state's AI messages, by id."""
    calls: dict[str, dict[str, Any]] = {}
    for message in _messages(values):
        if isinstance(message, AIMessage):
            calls.update(_calls_by_id(message))
    return calls


def _calls_by_id(message: AIMessage) -> dict[str, dict[str, Any]]:
    return {str(c["id"]): dict(c) for c in message.tool_calls if c.get("id")}


def _last_tool_calls(values: Any) -> list[dict[str, Any]]:
    """The tool calls of the state's last AI message: what a tool node is about to run."""
    for message in reversed(_messages(values)):
        if isinstance(message, AIMessage):
            return [dict(c) for c in message.tool_calls]
    return []


def _text_chunks(message: AIMessage) -> list[Chunk]:
    chunks = []
    blocks: list[dict[str, Any]] = [dict(b) for b in message.content_blocks]
    for block in blocks:
        if block.get("type") == "text" and block.get("text"):
            chunks.append(Chunk.say(str(block["text"])))
        elif block.get("type") == "reasoning" and block.get("reasoning"):
            chunks.append(Chunk.think(str(block["reasoning"])))
    return chunks


def plain(value: Any) -> Any:
    """``value`` as JSON: messages as their role, content and calls; models as their fields; else its text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, BaseMessage):
        out: dict[str, Any] = {"type": value.type, "content": plain(value.content)}
        if value.id:
            out["id"] = value.id
        if isinstance(value, AIMessage) and value.tool_calls:
            out["tool_calls"] = [{"id": c.get("id"), "name": c["name"], "args": plain(c.get("args"))}
                                 for c in value.tool_calls]
        if isinstance(value, ToolMessage):
            out.update(tool_call_id=value.tool_call_id, name=value.name, status=value.status)
        return out
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)
