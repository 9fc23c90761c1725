"""The composition root: one place decides the store, reads the workspace once and builds the agents."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from runjournal.adapters.agents import PythonAgent
from runjournal.adapters.storage.urls import DEFAULT_URL
from typer.testing import CliRunner

from runjournal import WorkspaceError, bootstrap, cli
from runjournal.bootstrap import Setup, build_adapters, open_harness, store_url

from .conftest import workspace


def test_the_store_is_the_given_url_else_the_environment_else_the_workspace_else_the_default():
    mine = workspace(storage={"url": "sqlite:///ws.db"})
    env = {"RUNJOURNAL_URL": "sqlite:///env.db"}
    assert store_url("sqlite:///given.db", mine, env) == "sqlite:///given.db"
    assert store_url(None, mine, env) == "sqlite:///env.db"
    assert store_url(None, mine, {}) == "sqlite:///ws.db"
    assert store_url(None, workspace(), {}) == store_url(None, None, {}) == DEFAULT_URL


def test_a_workspace_given_as_a_function_is_read_only_when_no_url_is_given():
    def broken():
        raise WorkspaceError("runjournal.yaml: broken")

    assert store_url("memory://", broken, {}) == "memory://"
    assert store_url(None, broken, {"RUNJOURNAL_URL": "memory://"}) == "memory://"
    with pytest.raises(WorkspaceError):
        store_url(None, broken, {})


def _count_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = bootstrap.load_workspace

    def counting(path):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(bootstrap, "load_workspace", counting)
    return reads


@pytest.mark.parametrize("args", [["run", "hello", "--wait"], ["recover"], ["worker", "--until-idle"], ["status", "x"]])
def test_a_command_reads_its_workspace_file_once(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNJOURNAL_URL", raising=False)
    assert CliRunner().invoke(cli.app, ["init"]).exit_code == 0
    assert CliRunner().invoke(cli.app, ["run", "first"]).exit_code == 0  # the store exists
    reads = _count_reads(monkeypatch)
    result = CliRunner().invoke(cli.app, args)
    assert "Traceback" not in result.output
    assert reads == ["runjournal.yaml"], result.output


def _agent_files(folder: Path, *, package: bool) -> str:
    name = f"beside_{uuid.uuid4().hex}"
    code = textwrap.dedent("""
        async def agent(request):
            yield f"from beside: {request.message}"
    """)
    if package:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text("")
        (folder / name / "agents.py").write_text(code)
        return f"{name}.agents:agent"
    (folder / f"{name}.py").write_text(code)
    return f"{name}:agent"


@pytest.mark.parametrize("package", [False, True], ids=["module", "package"])
def test_a_python_agent_beside_the_workspace_runs_without_touching_sys_path(tmp_path, package):
    target = _agent_files(tmp_path, package=package)
    (tmp_path / "runjournal.yaml").write_text(
        f"agents:\n  local:\n    adapter: python\n    callable: \"{target}\"\nrouting:\n  default_agent: local\n")
    before = list(sys.path)

    async def go():
        harness = open_harness(tmp_path / "runjournal.yaml", store="memory://")
        try:
            return await harness.run({"message": "hi"})
        finally:
            await harness.close()

    result = asyncio.run(go())
    assert (result.state, result.output) == ("completed", {"text": "from beside: hi"})
    assert sys.path == before
    assert str(tmp_path) not in sys.path


def test_an_agent_module_that_fails_to_import_is_an_agent_load_error_and_leaves_no_half_module(tmp_path):
    name = f"broken_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('boom at import')\n")
    agent = PythonAgent(f"{name}:agent", folder=tmp_path)
    from runjournal import AgentLoadError

    with pytest.raises(AgentLoadError, match="boom at import"):
        agent.load()
    assert name not in sys.modules


def test_adapters_are_built_for_every_agent_of_the_workspace():
    ws = workspace()
    assert sorted(build_adapters(ws)) == ["deployer", "echo"]
    assert Setup(store="memory://").url() == "memory://"
