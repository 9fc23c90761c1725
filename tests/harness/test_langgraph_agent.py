"""`adapter: langgraph`: a real LangGraph graph run by the harness, its interrupts as approvals."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from runjournal import Harness, Journal, Workspace

GRAPHS = Path(__file__).with_name("lg_graphs.py")


def make_workspace(folder: Path, agents: dict[str, Any] | None = None, **sections: Any) -> Path:
    """A workspace file in ``folder`` beside a copy of the test graphs (found there, as a user's module is)."""
    shutil.copy(GRAPHS, folder / "lg_graphs.py")
    agents = agents or {"ops": {"adapter": "langgraph", "graph": "lg_graphs:graph", "input_key": "messages"}}
    data = {"agents": agents, "policy": {"deny_tools": ["wipe"]}, **sections}
    path = folder / "runjournal.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def traced(folder: Path) -> list[str]:
    path = folder / "trace.jsonl"
    return [json.loads(line)["what"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LG_TRACE", str(tmp_path / "trace.jsonl"))
    return tmp_path


def harness(folder: Path, store: str | None = None, **kw: Any) -> Harness:
    return Harness.from_workspace(make_workspace(folder, **kw), store=store or f"sqlite:///{folder / 'journal.db'}")


def steps(journal: Journal, run_id: str, kind: str | None = None) -> list[Any]:
    return [e.data["content"] for e in journal.history(run_id)
            if e.type == "StepRecorded" and (kind is None or e.data["kind"] == kind)]


def test_a_graph_streams_tokens_records_tool_results_and_returns_its_final_state(
        folder: Path, shared_store_url: str) -> None:
    async def go() -> None:  # on SQLite and PostgreSQL: the checkpoints in the store's own database
        async with harness(folder, shared_store_url) as h:
            seen: list[str] = []
            h.subscribe(lambda e: seen.append(e.type))
            done = await h.run({"message": "status web"}, agent_id="ops")
            assert done.state == "completed", done
            assert done.output["text"] == "Done: web is healthy."
            state = done.output["result"]  # the graph's final state, as JSON
            assert [m["type"] for m in state["messages"]] == ["human", "ai", "tool", "ai"]
            (tool,) = steps(h.journal, done.run_id, "tool_result")
            assert tool == {"tool": "check_status", "args": {"service": "web"}, "output": "web is healthy",
                            "is_error": False, "call_id": "call-1"}
            assert seen.count("content") >= 4  # the answer streamed token by token
            assert {"text": "Reading the result."} in steps(h.journal, done.run_id, "reasoning")
            checkpoints = [s["checkpoint"] for s in steps(h.journal, done.run_id, "step") if "checkpoint" in s]
            assert checkpoints and all(c["digest"].startswith("sha256:") for c in checkpoints)
            updates = [s["updates"] for s in steps(h.journal, done.run_id, "step") if "updates" in s]
            assert {"plan", "agent", "review"} <= {node for u in updates for node in u}
            assert h.journal.verify().ok
    asyncio.run(go())
    assert traced(folder) == ["plan", "agent", "review", "check_status", "agent"]


@pytest.mark.parametrize("decision, edits, said, deployed", [
    ("approve", None, "Done: deployed web 1.2.", [("web", "1.2")]),
    ("edit", {"version": "1.3"}, "Done: deployed web 1.3.", [("web", "1.3")]),
    ("reject", None, "Done: rejected by alice.", []),
])
def test_an_interrupt_is_an_approval_and_its_decision_resumes_the_graph_from_there(
        folder: Path, shared_store_url: str, decision: str, edits: Any, said: str,
        deployed: list[tuple[str, str]]) -> None:
    async def go() -> None:
        async with harness(folder, shared_store_url) as h:
            rested = await h.run({"message": "deploy web 1.2"}, agent_id="ops")
            assert rested.state == "waiting_for_approval"
            (pending,) = h.journal.pending_approvals()
            assert (pending.tool_name, pending.tool_args) == ("deploy", {"service": "web", "version": "1.2"})
            asked = [e for e in h.journal.history(rested.run_id) if e.type == "ApprovalRequested"]
            assert asked[0].data["content"] == "Deploy web 1.2?" and asked[0].data["tool_call_id"]
            assert "deploy" not in traced(folder)  # nothing ran before the decision
            done = await h.resume(approval_id=rested.approval_id, decision=decision, edits=edits, actor="alice")
            assert done.state == "completed", done
            assert done.output["text"] == said
            assert h.journal.verify().ok
    asyncio.run(go())
    trace = [json.loads(line) for line in (folder / "trace.jsonl").read_text().splitlines()]
    assert [(t["service"], t["version"]) for t in trace if t["what"] == "deploy"] == deployed
    names = [t["what"] for t in trace]
    assert names.count("plan") == 1 and names[:2] == ["plan", "agent"]  # earlier nodes did not run again
    assert names.count("agent") == 2  # once to ask, once after the tool (or the refusal)


def test_a_denied_tool_is_refused_before_the_tool_node_runs(folder: Path) -> None:
    async def go() -> None:
        async with harness(folder) as h:
            done = await h.run({"message": "wipe db"}, agent_id="ops")
            assert done.state == "failed"
            assert "Policy evaluation blocked tool wipe" in (done.error or "")
    asyncio.run(go())
    assert "wipe" not in traced(folder)


def test_several_interrupts_of_one_super_step_are_each_an_approval_with_its_own_answer(folder: Path) -> None:
    agents = {"sign": {"adapter": "langgraph", "graph": "lg_graphs:two_signatures"}}

    async def go() -> None:
        async with harness(folder, agents=agents) as h:
            first = await h.run({"log": []}, agent_id="sign")
            assert first.state == "waiting_for_approval"
            second = await h.resume(approval_id=first.approval_id, actor="alice")
            assert second.state == "waiting_for_approval" and second.approval_id != first.approval_id
            done = await h.resume(approval_id=second.approval_id, decision="reject", actor="bob")
            assert done.state == "completed", done
            tools = [e.data["tool_name"] for e in h.journal.history(done.run_id) if e.type == "ApprovalRequested"]
            assert sorted(tools) == ["sign_finance", "sign_legal"]
            log = done.output["result"]["log"]
            assert log[0] == "first" and sorted(log[1:]) == sorted([f"{tools[0][5:]}:approve",
                                                                   f"{tools[1][5:]}:reject"])
    asyncio.run(go())
    assert traced(folder).count("first") == 1


def test_a_workspace_refuses_async_durability_and_the_runs_own_thread_id(tmp_path: Path) -> None:
    from runjournal import WorkspaceError

    for extra, words in (({"durability": "async"}, 'must be "sync"'),
                         ({"config": {"configurable": {"thread_id": "x"}}}, "the run's own"),
                         ({"callable": "m:f"}, "not allowed for adapter 'langgraph'")):
        agent = {"adapter": "langgraph", "graph": "lg_graphs:graph", **extra}
        with pytest.raises(WorkspaceError, match=words):
            Workspace.from_dict({"agents": {"ops": agent}})
    assert Workspace.from_dict({"agents": {"ops": {"adapter": "langgraph", "graph": "m:g"}}}).agents[
        "ops"].supports_replay is True


def test_verify_recomputes_each_recorded_checkpoint_digest_from_the_store(folder: Path) -> None:
    import sqlite3

    async def go() -> str:
        async with harness(folder) as h:
            done = await h.run({"message": "status web"}, agent_id="ops")
            assert h.journal.verify().ok
            return done.run_id
    run_id = asyncio.run(go())
    db = sqlite3.connect(folder / "journal.db")
    first, second = (r[0] for r in db.execute(
        "SELECT checkpoint_id FROM runjournal_lg_checkpoints WHERE thread_id = ? ORDER BY checkpoint_id LIMIT 2",
        (run_id,)))
    with db:
        db.execute("UPDATE runjournal_lg_checkpoints SET metadata = CAST('{}' AS BLOB) WHERE checkpoint_id = ?",
                   (first,))
        db.execute("DELETE FROM runjournal_lg_checkpoints WHERE checkpoint_id = ?", (second,))
    db.close()
    with Journal.open(f"sqlite:///{folder / 'journal.db'}") as journal:
        report = journal.verify()
    assert not report.ok
    found = {p.problem.split(" ")[2]: p.problem for p in report.problems if p.run_id == run_id}
    assert "was changed after it was saved" in found[first]
    assert "is no longer stored" in found[second]


def test_a_fork_goes_on_from_the_parents_checkpoint_at_the_fork_nothing_before_it_run_again(folder: Path) -> None:
    async def go() -> None:
        async with harness(folder) as h:
            parent = await h.run({"message": "deploy web 1.2"}, agent_id="ops")
            done = await h.resume(approval_id=parent.approval_id, actor="alice")
            assert done.state == "completed"
            j = h.journal
            history = j.history(parent.run_id)
            asked = next(e.version for e in history if e.type == "ApprovalRequested")
            tool = next(e.version for e in history if e.type == "StepRecorded" and e.data["kind"] == "tool_result")
            before = traced(folder)

            again = await h.wait(j.fork(parent.run_id, at_version=asked, actor="debugger").run_id)
            assert again.state == "waiting_for_approval"  # the fork is asked again: the parent's decision is not its
            assert traced(folder)[len(before):] == ["review"]  # only the node that asked ran again

            after_tool = await h.wait(j.fork(parent.run_id, at_version=tool).run_id)
            assert after_tool.state == "completed" and after_tool.output["text"] == "Done: deployed web 1.2."
            assert traced(folder)[len(before) + 1:] == ["agent"]  # the deploy was not made again
            relived = await h.wait(j.fork(parent.run_id, at_version=tool, input={"message": "status db"}).run_id)
            assert relived.output["text"] == "Done: db is healthy."  # a new input starts the graph afresh
            assert j.verify().ok
    asyncio.run(go())
