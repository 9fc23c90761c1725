"""Agent adapters: the scripted agent, the python agent and the adapter registry."""

from __future__ import annotations

import asyncio
import textwrap
import time
import uuid
from typing import Any

import pytest
from runjournal.adapters.agents import (
    ADAPTERS,
    AgentAdapter,
    AgentFailed,
    AgentLoadError,
    AgentRequest,
    Chunk,
    PythonAgent,
    ScriptedAgent,
    adapter_can_invoke,
    build_adapter,
    collect,
)

DEPLOY = {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True}


def request(message: Any = "deploy to prod", **kw: Any) -> AgentRequest:
    """A request for run r1 with ``{"message": message}`` as input."""
    return AgentRequest(
        run_id="r1", thread_id="t1", agent_id="a1", input={"message": message}, **kw
    )


def play(agent: AgentAdapter, req: AgentRequest | None = None) -> list[Chunk]:
    """All chunks the agent streams for ``req``."""
    return asyncio.run(collect(agent.stream(req or request())))


def resumed(decision: str, **extra: Any) -> AgentRequest:
    """A request resuming the DEPLOY approval at step 1 with ``decision``."""
    payload = {
        "decision": decision,
        "approval_id": "ap1",
        "tool_name": "deploy",
        "tool_args": {"env": "prod"},
        "tool_call_id": "call-1",
        "checkpoint_ref": "step:1",
        **extra,
    }
    return request(resume=payload, resume_kind="cross-restart")


# -- Chunk and AgentRequest ------------------------------------------------------------------


def test_chunk_helpers():
    assert Chunk.say("hi") == Chunk("content", "hi")
    assert Chunk.think("hmm") == Chunk("reasoning", "hmm")
    assert Chunk.step({"n": 1}) == Chunk("step", {"n": 1})
    tool = Chunk.tool("ls", {"dir": "/"}, ["a"], call_id="c1", is_error=True)
    assert (tool.kind, tool.tool_name, tool.tool_args, tool.content) == (
        "tool_result",
        "ls",
        {"dir": "/"},
        ["a"],
    )
    assert (tool.tool_call_id, tool.is_error) == ("c1", True)
    stop = Chunk.interrupt("rm", {"p": "x"}, call_id="c2", message="ok?", checkpoint_ref="s:1")
    assert (stop.kind, stop.tool_name, stop.tool_args, stop.content) == (
        "interrupt",
        "rm",
        {"p": "x"},
        "ok?",
    )
    assert (stop.tool_call_id, stop.checkpoint_ref) == ("c2", "s:1")
    with pytest.raises(ValueError, match="chunk kind"):
        Chunk("bogus")  # type: ignore[arg-type]


def test_request_message():
    assert request("hello").message == "hello"
    assert AgentRequest("r", "t", "a", input="plain").message == "plain"
    assert AgentRequest("r", "t", "a", input={"message": 3}).message == str({"message": 3})
    req = AgentRequest("r", "t", "a", input={}, messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    assert req.messages == ({"role": "user", "content": "x"},)


# -- ScriptedAgent ---------------------------------------------------------------------------


def test_scripted_every_step_kind():
    agent = ScriptedAgent.from_steps(
        {"say": "Hello"},
        {"reasoning": "thinking"},
        {"step": {"plan": [1, 2]}},
        {"tool_call": {"name": "search", "args": {"q": "x"}}, "result": {"hits": 2}},
        {"tool_call": {"name": "ping", "args": {}}},
        {"sleep": 0},
        {"say": "Done"},
    )
    assert play(agent) == [
        Chunk.say("Hello"),
        Chunk.think("thinking"),
        Chunk.step({"plan": [1, 2]}),
        Chunk.tool("search", {"q": "x"}, {"hits": 2}, call_id="call-3"),
        Chunk.tool("ping", {}, {"ok": True}, call_id="call-4"),
        Chunk.say("Done"),
    ]
    assert agent.supports_replay is True
    assert isinstance(agent, AgentAdapter)


def test_scripted_message_substitution():
    agent = ScriptedAgent([{"say": "echo: {message}"}, {"say": "{literal} stays"}])
    assert play(agent, request("hi there")) == [
        Chunk.say("echo: hi there"),
        Chunk.say("{literal} stays"),
    ]


def test_scripted_rejects_unknown_steps():
    with pytest.raises(ValueError, match="script step 1"):
        ScriptedAgent([{"say": "ok"}, {"shout": "no"}])


def test_scripted_fail_raises_after_earlier_output():
    agent = ScriptedAgent([{"say": "partial"}, {"fail": "boom"}, {"say": "never"}])
    seen: list[Chunk] = []

    async def consume() -> None:
        async for chunk in agent.stream(request()):
            seen.append(chunk)

    with pytest.raises(AgentFailed, match="boom") as info:
        asyncio.run(consume())
    assert info.value.message == "boom"
    assert seen == [Chunk.say("partial")]


def test_scripted_sleep_is_cancellable():
    agent = ScriptedAgent([{"say": "start"}, {"sleep": 60}, {"say": "never"}])

    async def main() -> tuple[list[Chunk], float]:
        seen: list[Chunk] = []

        async def consume() -> None:
            async for chunk in agent.stream(request()):
                seen.append(chunk)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen, time.monotonic() - started

    seen, took = asyncio.run(main())
    assert seen == [Chunk.say("start")]
    assert took < 1.0


def test_scripted_approval_interrupts_and_ends_stream():
    agent = ScriptedAgent([{"say": "planning"}, DEPLOY, {"say": "Deployed"}])
    chunks = play(agent)
    assert chunks[0] == Chunk.say("planning")
    assert len(chunks) == 2
    stop = chunks[1]
    assert (stop.kind, stop.tool_name, stop.tool_args) == ("interrupt", "deploy", {"env": "prod"})
    assert (stop.checkpoint_ref, stop.tool_call_id) == ("step:1", "call-1")
    assert "deploy" in stop.content


def test_scripted_resume_approve_continues():
    agent = ScriptedAgent(
        [{"say": "planning"}, {**DEPLOY, "result": {"url": "u"}}, {"say": "Deployed"}]
    )
    assert play(agent, resumed("approve")) == [
        Chunk.tool("deploy", {"env": "prod"}, {"url": "u"}, call_id="call-1"),
        Chunk.say("Deployed"),
    ]


def test_scripted_resume_edit_uses_edited_args():
    agent = ScriptedAgent([{"say": "planning"}, DEPLOY, {"say": "Deployed"}])
    assert play(agent, resumed("edit", edited_args={"env": "staging"})) == [
        Chunk.tool("deploy", {"env": "staging"}, {"ok": True}, call_id="call-1"),
        Chunk.say("Deployed"),
    ]


def test_scripted_resume_reject_runs_neither_the_tool_nor_the_rest_of_the_script():
    agent = ScriptedAgent([{"say": "planning"}, DEPLOY, {"say": "Deployed"}, {"step": {"done": 1}}])
    chunks = play(agent, resumed("reject"))
    assert chunks == [Chunk.say("Tool deploy was rejected. It was not run.")]
    assert all(c.kind != "tool_result" and "Deployed" not in str(c.content) for c in chunks)


def test_scripted_resume_reject_answers_the_steps_rejected_text():
    step = {**DEPLOY, "rejected": "Not deployed: {message} was rejected"}
    agent = ScriptedAgent([{"say": "planning"}, step, {"say": "Deployed"}])
    assert play(agent, resumed("reject")) == [Chunk.say("Not deployed: deploy to prod was rejected")]
    # The text is for a rejection only: approved, the call runs and the script goes on.
    assert [c.kind for c in play(agent, resumed("approve"))] == ["tool_result", "content"]


@pytest.mark.parametrize("source", ["demo", "init"])
def test_the_shipped_deployer_reports_a_rejected_deploy_as_not_deployed(make_harness, source):
    from runjournal.cli.demo import DEMO_WORKSPACE
    from runjournal.config.workspace import EXAMPLE_WORKSPACE, Workspace, parse_workspace

    ws = Workspace.from_dict(DEMO_WORKSPACE) if source == "demo" else parse_workspace(EXAMPLE_WORKSPACE)

    async def main(decision: str) -> Any:
        h = make_harness(ws)
        paused = await h.run({"message": "deploy to prod"})
        assert (paused.agent_id, paused.state) == ("deployer", "waiting_for_approval")
        done = await h.resume(approval_id=paused.approval_id, decision=decision, actor="bob")
        steps = [e.data["kind"] for e in h.journal.history(done.run_id) if e.type == "StepRecorded"]
        return done, steps

    rejected, steps = asyncio.run(main("reject"))
    assert rejected.state == "completed"
    assert rejected.output["text"].startswith("Not deployed: the deploy")
    assert "rejected" in rejected.output["text"] and "Deployed" not in rejected.output["text"]
    assert "tool_result" not in steps  # the tool never ran
    approved, steps = asyncio.run(main("approve"))
    assert approved.output["text"].startswith("Deployed") and "tool_result" in steps


def test_scripted_resume_can_interrupt_again():
    second = {"tool_call": {"name": "notify", "args": {}}, "requires_approval": True}
    agent = ScriptedAgent([{"say": "planning"}, DEPLOY, second, {"say": "never yet"}])
    chunks = play(agent, resumed("approve"))
    assert [c.kind for c in chunks] == ["tool_result", "interrupt"]
    assert (chunks[1].tool_name, chunks[1].checkpoint_ref) == ("notify", "step:2")


def test_scripted_resume_with_bad_checkpoint_fails():
    agent = ScriptedAgent([{"say": "planning"}, DEPLOY])
    with pytest.raises(AgentFailed, match="checkpoint_ref"):
        play(agent, resumed("approve", checkpoint_ref="nowhere"))
    with pytest.raises(AgentFailed, match="not a tool call"):
        play(agent, resumed("approve", checkpoint_ref="step:0"))
    with pytest.raises(AgentFailed, match="unknown decision"):
        play(agent, resumed("maybe"))


def test_scripted_replay_restarts_from_the_top():
    agent = ScriptedAgent([{"say": "one"}, {"say": "two"}])
    replay = request(resume={"checkpoint_ref": "step:1"}, resume_kind="startup-running-recovery")
    assert play(agent, replay) == [Chunk.say("one"), Chunk.say("two")]
    assert play(agent, request(resume_kind="startup-running-recovery")) == play(agent)


def test_scripted_invoke_collects_the_stream():
    agent = ScriptedAgent([{"say": "a"}, {"step": 1}, DEPLOY, {"say": "b"}], supports_replay=False)
    chunks = asyncio.run(agent.invoke(request()))
    assert [c.kind for c in chunks] == ["content", "step", "interrupt"]
    assert adapter_can_invoke(agent)
    assert agent.supports_replay is False


# -- PythonAgent -----------------------------------------------------------------------------


@pytest.fixture
def agent_module(tmp_path, monkeypatch):
    """Write a module under tmp_path, importable by name; returns its name."""
    name = f"agent_mod_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("""
        from runjournal.adapters.agents import Chunk

        async def agent(request):
            yield f"hi {request.message}"
            yield {"kind": "reasoning", "content": "pondering"}
            yield Chunk.tool("search", {"q": request.message}, [1, 2])
            yield {"kind": "interrupt", "tool_name": "deploy", "checkpoint_ref": "x"}

        async def agent_invoke(request):
            return ["all at once", {"kind": "step", "content": 7}]

        async def plain(request):
            yield "plain"

        async def broken(request):
            yield {"kind": "nope"}

        class Agents:
            async def nested(request):
                yield "nested"

        class ObjAgent:
            supports_replay = True

            async def stream(self, request):
                yield "from object"

            async def invoke(self, request):
                return [Chunk.say("invoked object")]

        instance = ObjAgent()
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_python_agent_async_generator(agent_module):
    agent = PythonAgent(f"{agent_module}:agent")
    assert agent.supports_replay is False
    chunks = play(agent, request("world"))
    assert chunks[:3] == [
        Chunk.say("hi world"),
        Chunk.think("pondering"),
        Chunk.tool("search", {"q": "world"}, [1, 2]),
    ]
    assert (chunks[3].kind, chunks[3].tool_name, chunks[3].checkpoint_ref) == (
        "interrupt",
        "deploy",
        "x",
    )


def test_python_agent_invoke_from_sibling_function(agent_module):
    agent = PythonAgent(f"{agent_module}:agent")
    assert adapter_can_invoke(agent)
    assert asyncio.run(agent.invoke(request())) == [Chunk.say("all at once"), Chunk.step(7)]


def test_python_agent_without_invoke(agent_module):
    agent = PythonAgent(f"{agent_module}:plain")
    assert play(agent) == [Chunk.say("plain")]
    assert not adapter_can_invoke(agent)
    with pytest.raises(NotImplementedError):
        asyncio.run(agent.invoke(request()))


def test_python_agent_dotted_target_and_objects(agent_module):
    assert play(PythonAgent(f"{agent_module}:Agents.nested")) == [Chunk.say("nested")]
    for target in (f"{agent_module}:ObjAgent", f"{agent_module}:instance"):
        agent = PythonAgent(target, supports_replay=True)
        assert play(agent) == [Chunk.say("from object")]
        assert adapter_can_invoke(agent)
        assert asyncio.run(agent.invoke(request())) == [Chunk.say("invoked object")]


def test_python_agent_invalid_chunk(agent_module):
    with pytest.raises(TypeError, match="invalid chunk"):
        play(PythonAgent(f"{agent_module}:broken"))


def test_python_agent_bad_targets(agent_module):
    with pytest.raises(AgentLoadError, match="cannot import agent 'no_such_module_xyz:agent'"):
        play(PythonAgent("no_such_module_xyz:agent"))
    with pytest.raises(AgentLoadError, match=f"'{agent_module}:missing'.*no attribute 'missing'"):
        play(PythonAgent(f"{agent_module}:missing"))
    with pytest.raises(AgentLoadError, match="expected 'module:callable'"):
        PythonAgent("no_colon").load()
    assert not adapter_can_invoke(PythonAgent("no_such_module_xyz:agent"))


def test_python_agent_loads_lazily():
    PythonAgent("no_such_module_xyz:agent")  # no error until used


# -- registry --------------------------------------------------------------------------------


def test_build_adapter():
    assert set(ADAPTERS) == {"scripted", "python", "langgraph"}
    scripted = build_adapter("scripted", script=[{"say": "x"}], supports_replay=False)
    assert isinstance(scripted, ScriptedAgent) and scripted.supports_replay is False
    python = build_adapter("python", target="mod:fn")
    assert isinstance(python, PythonAgent) and python.target == "mod:fn"
    graph = build_adapter("langgraph", graph="mod:graph", input_key="messages")
    assert (graph.kind, graph.target, graph.supports_replay) == ("langgraph", "mod:graph", True)


def test_build_adapter_unknown_kind():
    with pytest.raises(ValueError, match="unknown agent adapter 'crewai'.*langgraph, python, scripted"):
        build_adapter("crewai")
