"""The request as asked (reference L1040, L1085, L101, L776, L2106-2110).

``Created`` records what the caller asked for (``auto`` when routing chose) beside the
agent selected and its adapter kind; the invocation envelope (context, inputs,
attachments) is persisted beside the input and reaches the agent's ``AgentRequest``,
also when another process runs the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from runjournal.adapters.agents import AgentRequest, Chunk, ScriptedAgent

from runjournal import InvalidInput, Journal, UnknownAgent, WorkspaceError

from .conftest import ECHO, event, workspace


class Recorder:
    """An agent that says nothing of interest and keeps every request it got."""

    kind = "recorder"
    supports_replay = True

    def __init__(self) -> None:
        self.requests: list[AgentRequest] = []

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        yield Chunk.say("seen")


def work(h) -> None:
    asyncio.run(h.work(until_idle=True))


def created(h, run_id: str) -> dict[str, Any]:
    return event(h.journal, run_id, "Created").data


def test_routing_records_auto_as_asked_beside_the_agent_it_chose_and_its_adapter_kind(make_harness):
    h = make_harness(workspace(routing={"default_agent": "echo", "rules": [{"match": "deploy", "agent": "deployer"}]}))
    routed = h.submit({"message": "deploy it"})
    auto = h.submit({"message": "hello"}, agent_id="auto")
    named = h.submit({"message": "deploy it"}, agent_id="echo")

    assert [(created(h, r.run_id)["requested_agent_id"], created(h, r.run_id)["agent_id"])
            for r in (routed, auto, named)] == [("auto", "deployer"), ("auto", "echo"), ("echo", "echo")]
    assert {created(h, r.run_id)["execution_mode"] for r in (routed, auto, named)} == {"scripted"}
    snapshot = h.journal.get_run(routed.run_id)
    assert (snapshot.requested_agent_id, snapshot.agent_id, snapshot.execution_mode) == ("auto", "deployer", "scripted")


def test_a_thread_continued_without_an_agent_is_asked_as_auto_and_keeps_the_threads_agent(make_harness):
    h = make_harness()
    first = h.submit({"message": "hi"}, agent_id="deployer")
    second = h.submit({"message": "again"}, thread_id=first.thread_id)
    assert (created(h, second.run_id)["requested_agent_id"], second.agent_id) == ("auto", "deployer")


def test_the_execution_mode_is_the_adapters_kind_or_its_class_name(make_harness):
    class Plain:
        supports_replay = True

        async def stream(self, request):
            yield Chunk.say("plain")

    h = make_harness(workspace({"echo": ECHO}), adapters={"recorder": Recorder(), "plain": Plain()})
    assert created(h, h.submit("x", agent_id="recorder").run_id)["execution_mode"] == "recorder"
    assert created(h, h.submit("x", agent_id="plain").run_id)["execution_mode"] == "Plain"


def test_the_invocation_envelope_is_persisted_apart_from_the_input_and_reaches_the_agent(make_harness):
    agent = Recorder()
    h = make_harness(adapters={"recorder": agent})
    run = h.submit({"message": "summarise"}, agent_id="recorder", context={"user": "u-7", "locale": "fr"},
                   inputs={"ticket": 42}, attachments=[{"name": "notes.txt", "uri": "s3://b/notes.txt"}])
    work(h)

    data = created(h, run.run_id)
    assert data["input"] == {"message": "summarise"}
    assert data["invocation"] == {"context": {"user": "u-7", "locale": "fr"}, "inputs": {"ticket": 42},
                                  "attachments": [{"name": "notes.txt", "uri": "s3://b/notes.txt"}]}
    (request,) = agent.requests
    assert request.input == {"message": "summarise"}
    assert (request.context, request.inputs, request.attachments) == (
        {"user": "u-7", "locale": "fr"}, {"ticket": 42}, ({"name": "notes.txt", "uri": "s3://b/notes.txt"},))


def test_a_run_without_an_envelope_records_none_and_its_agent_gets_empty_parts(make_harness):
    agent = Recorder()
    h = make_harness(adapters={"recorder": agent})
    run = h.submit("plain", agent_id="recorder", inputs={})  # an empty part is a part given
    bare = h.submit("plain", agent_id="recorder")
    work(h)
    assert (created(h, run.run_id)["invocation"], created(h, bare.run_id)["invocation"]) == ({"inputs": {}}, None)
    assert [(r.context, r.inputs, r.attachments) for r in agent.requests] == [(None, {}, ()), (None, None, ())]


def test_the_envelope_reaches_the_agent_of_another_process_after_a_restart(make_harness, sqlite_url):
    submitter = Journal.open(sqlite_url)
    make_harness(journal=submitter, adapters={"recorder": Recorder()}).submit(
        "later", agent_id="recorder", context={"tenant": "acme"}, attachments=["a.pdf"])
    submitter.close()

    agent = Recorder()
    later = Journal.open(sqlite_url)
    work(make_harness(journal=later, adapters={"recorder": agent}, worker_id="w2"))
    (request,) = agent.requests
    assert (request.context, request.attachments) == ({"tenant": "acme"}, ("a.pdf",))
    later.close()


def test_the_envelope_is_there_when_a_decision_resumes_the_run(make_harness):
    seen: list[AgentRequest] = []
    script = ScriptedAgent.from_steps(
        {"tool_call": {"name": "deploy", "args": {}}, "requires_approval": True}, {"say": "done"})

    class Watching:
        kind = "scripted"
        supports_replay = True

        def stream(self, request):
            seen.append(request)
            return script.stream(request)

    h = make_harness(adapters={"watching": Watching()})
    run = h.submit("deploy", agent_id="watching", context={"change": "CHG-1"})
    work(h)
    asyncio.run(h.resume(thread_id=run.thread_id, decision="approve"))
    assert h.journal.get_run(run.run_id).state == "completed"
    assert [(r.decision is not None, r.context) for r in seen] == [(False, {"change": "CHG-1"}),
                                                                   (True, {"change": "CHG-1"})]


def test_submit_many_records_the_same_envelope_for_each(make_harness):
    h = make_harness()
    runs = h.submit_many(["a", "b"], agent_id="auto", context={"batch": 1})
    assert [(created(h, r.run_id)["requested_agent_id"], created(h, r.run_id)["invocation"]) for r in runs] == [
        ("auto", {"context": {"batch": 1}})] * 2


@pytest.mark.parametrize(("options", "field", "needle"), [
    ({"context": ["not", "a", "mapping"]}, "invocation.context", "dictionary"),
    ({"inputs": "x"}, "invocation.inputs", "dictionary"),
    ({"attachments": {"a": 1}}, "invocation.attachments", "list"),
    ({"context": {"n": float("nan")}}, "invocation", "NaN"),
])
def test_a_bad_envelope_is_refused_naming_the_part_and_appends_nothing(make_harness, options, field, needle):
    h = make_harness()
    with pytest.raises(InvalidInput) as refused:
        h.submit("x", **options)
    assert refused.value.field == field and needle in str(refused.value)
    assert h.journal.runs() == []


def test_an_invocation_with_an_unknown_part_names_the_parts_there_are():
    journal = Journal.open("memory://")
    with pytest.raises(InvalidInput, match="unknown part 'files': an invocation has context, inputs and attachments"):
        journal.submit(agent_id="echo", input="x", invocation={"files": []})
    assert journal.runs() == []


def test_auto_is_not_an_agent_a_journal_can_record_nor_a_workspace_define(make_harness):
    with pytest.raises(InvalidInput, match="'auto' asks routing to choose"):
        Journal.open("memory://").submit(agent_id="auto", input="x")
    with pytest.raises(WorkspaceError, match="'auto' is reserved"):
        workspace({"auto": ECHO})


def test_auto_with_no_rule_and_no_default_is_an_unknown_agent_not_an_agent_named_auto(make_harness):
    h = make_harness(workspace({"echo": ECHO}, routing={}))
    with pytest.raises(UnknownAgent, match="no rule matched"):
        h.submit("x", agent_id="auto")
    assert h.journal.runs() == []
