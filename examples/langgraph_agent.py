"""A LangGraph deploy assistant run by runjournal: a model, a tool node, and a person approving each deploy.

The model here is scripted (no network, no key): swap ``DeployModel()`` for a real chat
model (``ChatOpenAI(model=...).bind_tools(TOOLS)``, ...) and nothing else changes. The
workspace names the graph (``graph: "langgraph_agent:graph"``); runjournal compiles it
with the journal's own checkpointer, so a run survives its worker, and turns the
``interrupt()`` below into an approval: ``runjournal approve`` / ``reject`` / ``--edit``
resumes the graph right there, with the decision as ``interrupt()``'s return value.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt


@tool
def check_health(service: str) -> str:
    """Whether ``service`` is healthy."""
    return f"{service} is healthy"


@tool
def deploy(service: str, version: str) -> str:
    """Deploy ``version`` of ``service``."""
    return f"{service} {version} is live"


TOOLS = [check_health, deploy]


class DeployModel(BaseChatModel):
    """A stand-in for a chat model: "deploy web 1.4" asks for a health check, then the deploy, then sums up."""

    @property
    def _llm_type(self) -> str:
        return "scripted-deploys"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        asked = next(m for m in reversed(messages) if m.type == "human").content.split()
        service, version = (asked + ["web", "1.0"])[1:3]
        done = [m for m in messages if isinstance(m, ToolMessage)]
        if not done:
            call = {"name": "check_health", "args": {"service": service}, "id": "health-1"}
        elif len(done) == 1 and "healthy" in str(done[0].content):
            call = {"name": "deploy", "args": {"service": service, "version": version}, "id": "deploy-1"}
        else:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=str(done[-1].content)))])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="", tool_calls=[call]))])


model = DeployModel()


def agent(state: MessagesState) -> dict[str, Any]:
    return {"messages": [model.invoke(state["messages"])]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "review" if isinstance(last, AIMessage) and last.tool_calls else END


def review(state: MessagesState) -> Command[Any]:
    """A deploy waits for a person; anything else goes straight to the tools."""
    last = state["messages"][-1]
    call = last.tool_calls[0]
    if call["name"] != "deploy":
        return Command(goto="tools")
    decision = interrupt({"tool": "deploy", "args": call["args"],
                          "message": f"Deploy {call['args']['service']} {call['args']['version']}?"})
    if decision["decision"] == "reject":
        refusal = ToolMessage(f"Not deployed: {decision['actor']} rejected it.", tool_call_id=call["id"])
        return Command(goto="agent", update={"messages": [refusal]})
    # approve, or edit: the args the person approved (their edits applied)
    approved = AIMessage(content="", id=last.id, tool_calls=[{**call, "args": decision["args"]}])
    return Command(goto="tools", update={"messages": [approved]})


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("review", review, destinations=("tools", "agent"))
builder.add_node("tools", ToolNode(TOOLS))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", route, ["review", END])
builder.add_edge("tools", "agent")
graph = builder  # runjournal compiles it with the journal's checkpointer
