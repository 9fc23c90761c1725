"""Streamed output is part of the record: reasoning and content deltas, one step per stretch, never per token.

The reference persists ``reasoning.delta`` and ``output.delta``; runjournal keeps each
stretch of same-kind deltas as one ``StepRecorded`` (kind ``reasoning`` or ``output``),
recorded when something else happens. A trailing stretch of output is not recorded
again (``Completed`` holds the whole answer); an approval request carries the interrupt
text and the answer so far.
"""

from __future__ import annotations

import asyncio

from runjournal.adapters.agents import Chunk

from .conftest import MakeHarness, event, types, workspace
from .test_output_fallbacks import Agent


def _steps(h, run_id: str) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    return [(e.data["kind"], e.data["content"]) for e in h.journal.history(run_id) if e.type == "StepRecorded"]


def _run(make_harness: MakeHarness, agent: Agent):  # type: ignore[no-untyped-def]
    h = make_harness(workspace({"a": {"adapter": "scripted", "script": [{"say": "x"}]}}, routing={"default_agent": "a"}),
                     adapters={"a": agent})
    return h, asyncio.run(h.run("go", agent_id="a"))


def test_deltas_are_recorded_one_step_per_stretch_in_stream_order(make_harness: MakeHarness) -> None:
    agent = Agent([Chunk.think("let me "), Chunk.think("look"), Chunk.say("Search"), Chunk.say("ing. "),
                   Chunk.tool("search", {"q": "x"}, {"hits": 2}), Chunk.think("two hits"), Chunk.say("Found "),
                   Chunk.say("two.")])
    h, result = _run(make_harness, agent)
    assert result.state == "completed" and result.output == {"text": "Searching. Found two."}
    assert _steps(h, result.run_id) == [
        ("reasoning", {"text": "let me look"}),
        ("output", {"text": "Searching. "}),
        ("tool_result", {"tool": "search", "args": {"q": "x"}, "output": {"hits": 2}, "is_error": False}),
        ("reasoning", {"text": "two hits"}),
    ]  # the trailing "Found two." is in Completed, not stored twice


def test_a_simple_answer_adds_no_event(make_harness: MakeHarness) -> None:
    h, result = _run(make_harness, Agent([Chunk.say("Hel"), Chunk.say("lo")]))
    assert types(h.journal, result.run_id) == ["Created", "Queued", "Dequeued", "Started", "Completed"]


def test_an_approval_request_carries_the_interrupt_text_and_the_answer_so_far(make_harness: MakeHarness) -> None:
    agent = Agent([Chunk.say("I will deploy "), Chunk.say("to prod."),
                   Chunk.interrupt("deploy", {"env": "prod"}, message="Deploy to prod?")])
    h, result = _run(make_harness, agent)
    assert result.state == "waiting_for_approval"
    asked = event(h.journal, result.run_id, "ApprovalRequested").data
    assert (asked["content"], asked["output"]) == ("Deploy to prod?", "I will deploy to prod.")
    assert _steps(h, result.run_id) == [("output", {"text": "I will deploy to prod."})]


def test_what_was_said_before_a_failure_is_recorded(make_harness: MakeHarness) -> None:
    h, result = _run(make_harness, Agent([Chunk.say("partial "), Chunk.say("answer"), RuntimeError("reset")]))
    assert result.state == "failed" and result.error == "RuntimeError: reset"
    assert _steps(h, result.run_id) == [("output", {"text": "partial answer"})]
