"""LangGraph graphs for the adapter's tests: a scripted chat model, a safe tool, a deploy behind ``interrupt()``.

Copied beside each test's workspace file and loaded from there, as a user's module is.
Every node and tool appends to the file ``$LG_TRACE`` (a side-effect counter that
outlives a killed worker); while the file ``$LG_HANG`` exists the model waits, so a test
can kill a worker mid-graph.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt


def trace(what: str, **data: Any) -> None:
    """Note that ``what`` ran (in the file the test reads back)."""
    with Path(os.environ.get("LG_TRACE", "trace.jsonl")).open("a", encoding="utf-8") as f:
        f.write(json.dumps({"what": what, **data}) + "\n")


@tool
def check_status(service: str) -> str:
    """The service's health."""
    trace("check_status", service=service)
    return f"{service} is healthy"


@tool
def deploy(service: str, version: str) -> str:
    """Deploy ``version`` of ``service``."""
    trace("deploy", service=service, version=version)
    return f"deployed {service} {version}"


@tool
def wipe(target: str) -> str:
    """Erase everything (the tests' policy denies it)."""
    trace("wipe", target=target)
    return f"wiped {target}"


class ScriptedModel(BaseChatModel):
    """Asks for a tool from the user's words ("deploy web 1.2", "status web", "wipe db"), then says what it got."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"Done: {last.content}.")
        words = str(last.content).split()
        call_id = f"call-{len(messages)}"
        tools = {"deploy": ("deploy", ("service", "version")), "status": ("check_status", ("service",)),
                 "wipe": ("wipe", ("target",))}
        if words and words[0] in tools:
            name, params = tools[words[0]]
            return AIMessage(content="", tool_calls=[{"name": name, "args": dict(zip(params, words[1:])),
                                                      "id": call_id}])
        return AIMessage(content=f"You said: {last.content}")

    def _wait(self) -> None:
        hang = os.environ.get("LG_HANG")
        if hang and Path(hang).exists():
            trace("model_waiting")
            while Path(hang).exists():
                time.sleep(0.02)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self._wait()
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        self._wait()
        reply = self._reply(messages)
        if reply.tool_calls:
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(reply.tool_calls)]))
            return
        yield ChatGenerationChunk(message=AIMessageChunk(
            content=[{"type": "reasoning", "reasoning": "Reading the result.", "index": 0}]))
        for word in re.split(r"(\s+)", str(reply.content)):
            if word:
                yield ChatGenerationChunk(message=AIMessageChunk(content=[{"type": "text", "text": word,
                                                                           "index": 1}]))


MODEL = ScriptedModel()


def plan(state: MessagesState) -> dict[str, Any]:
    trace("plan")
    return {"messages": []}


def agent(state: MessagesState) -> dict[str, Any]:
    trace("agent")
    return {"messages": [MODEL.invoke(state["messages"])]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "review" if isinstance(last, AIMessage) and last.tool_calls else END


def review(state: MessagesState) -> Command[Any]:
    """A deploy waits for a person: approve runs it, edit runs it with the edited args, reject tells the model."""
    trace("review")
    last = state["messages"][-1]
    call = last.tool_calls[0]
    if call["name"] != "deploy":
        return Command(goto="tools")
    answer = interrupt({"tool": "deploy", "args": call["args"],
                        "message": f"Deploy {call['args'].get('service')} {call['args'].get('version')}?"})
    if answer["decision"] == "reject":
        trace("rejected", actor=answer["actor"])
        refusal = ToolMessage(content=f"rejected by {answer['actor']}", tool_call_id=call["id"], name="deploy")
        return Command(goto="agent", update={"messages": [refusal]})
    if answer["decision"] == "edit":
        edited = AIMessage(content=last.content, id=last.id, tool_calls=[{**call, "args": answer["args"]}])
        return Command(goto="tools", update={"messages": [edited]})
    return Command(goto="tools")


builder = StateGraph(MessagesState)
builder.add_node("plan", plan)
builder.add_node("agent", agent)
builder.add_node("review", review, destinations=("tools", "agent"))
builder.add_node("tools", ToolNode([check_status, deploy, wipe]))
builder.add_edge(START, "plan")
builder.add_edge("plan", "agent")
builder.add_conditional_edges("agent", route, ["review", END])
builder.add_edge("tools", "agent")
graph = builder.compile()


class Tally(TypedDict):
    log: Annotated[list[str], lambda a, b: a + b]


def _asks(name: str):  # noqa: ANN202 - a node factory
    def node(state: Tally) -> dict[str, Any]:
        trace(name)
        answer = interrupt({"tool": f"sign_{name}", "args": {"who": name}, "message": f"{name} signs?"})
        return {"log": [f"{name}:{answer['decision']}"]}

    return node


def two_signatures() -> Any:
    """Two nodes of one super-step, each waiting for its own approval (a factory: built when loaded)."""
    b = StateGraph(Tally)
    b.add_node("first", lambda state: trace("first") or {"log": ["first"]})
    b.add_node("legal", _asks("legal"))
    b.add_node("finance", _asks("finance"))
    b.add_edge(START, "first")
    b.add_edge("first", "legal")
    b.add_edge("first", "finance")
    b.add_edge("legal", END)
    b.add_edge("finance", END)
    return b
