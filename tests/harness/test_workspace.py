"""The workspace file: the example parses and round-trips; every bad file gets FILE:LINE: FIELD."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from runjournal.domain import RunjournalError, WorkspaceError

from runjournal.config.workspace import (
    EXAMPLE_WORKSPACE,
    AgentConfig,
    ScriptStep,
    Workspace,
    load_workspace,
    parse_workspace,
    write_example,
)

ECHO = "agents:\n  echo: {adapter: scripted, script: [{say: hi}]}\n"


def problem(text: str, filename: str = "runjournal.yaml") -> str:
    """The message parse_workspace raises for ``text`` (dedented)."""
    with pytest.raises(WorkspaceError) as caught:
        parse_workspace(textwrap.dedent(text), filename)
    return str(caught.value)


# -- the example -----------------------------------------------------------------------------


def test_example_parses_with_every_section() -> None:
    ws = parse_workspace(EXAMPLE_WORKSPACE)
    assert set(ws.agents) == {"echo", "deployer"}
    assert ws.routing.default_agent == "echo"
    assert [(r.match, r.agent) for r in ws.routing.rules] == [("deploy", "deployer")]
    approval = [s for s in ws.agents["deployer"].script or [] if s.requires_approval]
    assert approval[0].tool_call is not None and approval[0].tool_call.name == "deploy"
    assert approval[0].result == {"ok": True}
    assert (ws.concurrency.max_concurrent_runs, ws.concurrency.lease_seconds) == (4, 30)
    assert ws.concurrency.heartbeat_seconds == 10
    assert ws.recovery.max_recovery_attempts == 3
    assert ws.streaming.invoke_timeout_seconds == 60
    assert ws.policy.deny_agents == [] and ws.policy.deny_tools == []
    assert ws.storage.url == "sqlite:///.runjournal/journal.db"
    assert "#" in EXAMPLE_WORKSPACE


def test_example_round_trips_through_dict_and_yaml() -> None:
    ws = parse_workspace(EXAMPLE_WORKSPACE)
    data = ws.model_dump()
    assert "path" not in data
    assert Workspace.from_dict(data).model_dump() == data
    text = yaml.safe_dump(ws.model_dump(mode="json", exclude_none=True), sort_keys=False)
    assert parse_workspace(text).model_dump() == data


def test_defaults_for_every_optional_section() -> None:
    ws = parse_workspace(ECHO)
    assert ws.routing.default_agent is None and ws.routing.rules == []
    assert (ws.concurrency.max_concurrent_runs, ws.concurrency.lease_seconds) == (4, 30)
    assert ws.recovery.enabled and ws.recovery.resume_resuming_runs_on_startup
    assert ws.recovery.stale_running_after_seconds == 60
    assert ws.storage.url is None
    assert ws.path is None


def test_empty_sections_mean_defaults() -> None:
    ws = parse_workspace(ECHO + "concurrency:\npolicy:\n")
    assert ws.concurrency.max_concurrent_runs == 4 and ws.policy.deny_tools == []


def test_supports_replay_defaults_by_adapter() -> None:
    ws = Workspace.from_dict({"agents": {
        "s": {"adapter": "scripted", "script": [{"say": "x"}]},
        "p": {"adapter": "python", "callable": "mypkg.agents:deployer"},
        "q": {"adapter": "python", "callable": "m:f", "supports_replay": True},
    }})
    assert ws.agents["s"].supports_replay is True
    assert ws.agents["p"].supports_replay is False
    assert ws.agents["q"].supports_replay is True
    assert isinstance(ws.agents["p"], AgentConfig)


def test_script_steps_as_plain_data() -> None:
    step = ScriptStep.model_validate(
        {"tool_call": {"name": "deploy", "args": {"env": "prod"}}, "requires_approval": True}
    )
    assert step.action == "tool_call"
    assert step.as_dict() == {
        "tool_call": {"name": "deploy", "args": {"env": "prod"}},
        "requires_approval": True,
    }
    assert ScriptStep.model_validate({"sleep": 0.1}).as_dict() == {
        "sleep": 0.1,
        "requires_approval": False,
    }


def test_load_workspace_sets_path(tmp_path) -> None:
    path = tmp_path / "runjournal.yaml"
    path.write_text(EXAMPLE_WORKSPACE, encoding="utf-8")
    ws = load_workspace(path)
    assert ws.path == path
    assert "path" not in ws.model_dump()


# -- bad files: the exact message, line included -----------------------------------------------


BAD_FILES = {
    "zero max_concurrent_runs": (
        """\
        agents:
          echo: {adapter: scripted, script: [{say: hi}]}
        # limits
        concurrency:
          lease_seconds: 30

          max_concurrent_runs: -1
        """,
        "runjournal.yaml:7: concurrency.max_concurrent_runs: must be >= 0 (got -1)",
    ),
    "negative lease": (
        ECHO + "concurrency: {lease_seconds: -1}\n",
        "runjournal.yaml:3: concurrency.lease_seconds: must be > 0 (got -1)",
    ),
    "unknown top-level key, close match": (
        ECHO + "concurency:\n  max_concurrent_runs: 2\n",
        "runjournal.yaml:3: concurency: unknown key 'concurency' (did you mean 'concurrency'?)",
    ),
    "unknown nested key, close match": (
        ECHO + "concurrency:\n  max_concurent_runs: 2\n",
        "runjournal.yaml:4: concurrency.max_concurent_runs: "
        "unknown key 'max_concurent_runs' (did you mean 'max_concurrent_runs'?)",
    ),
    "unknown nested key, no close match": (
        ECHO + "recovery:\n  enabled: true\n  zzz: 1\n",
        "runjournal.yaml:5: recovery.zzz: unknown key 'zzz' (allowed keys: enabled, "
        "resume_resuming_runs_on_startup, max_recovery_attempts, stale_running_after_seconds)",
    ),
    "wrong type": (
        ECHO + "concurrency:\n  max_concurrent_runs: four\n",
        "runjournal.yaml:4: concurrency.max_concurrent_runs: must be an integer (got 'four')",
    ),
    "wrong type for a boolean": (
        ECHO + "recovery: {enabled: maybe}\n",
        "runjournal.yaml:3: recovery.enabled: must be true or false (got 'maybe')",
    ),
    "section that is not a mapping": (
        ECHO + "concurrency: 5\n",
        "runjournal.yaml:3: concurrency: must be a mapping (got 5)",
    ),
    "bad adapter name": (
        "agents:\n  echo: {adapter: scripted, script: [{say: hi}]}\n  sh:\n    adapter: shell\n",
        "runjournal.yaml:4: agents.sh.adapter: must be one of: scripted, python, langgraph (got 'shell')",
    ),
    "agent without adapter": (
        "agents:\n  echo:\n    script: [{say: hi}]\n",
        "runjournal.yaml:2: agents.echo.adapter: is required",
    ),
    "scripted agent without script": (
        "agents:\n  echo:\n    adapter: scripted\n",
        "runjournal.yaml:2: agents.echo.script: is required for adapter 'scripted'",
    ),
    "scripted agent with an empty script": (
        "agents:\n  echo:\n    adapter: scripted\n    script: []\n",
        "runjournal.yaml:4: agents.echo.script: must not be empty",
    ),
    "scripted agent with a callable": (
        "agents:\n  echo:\n    adapter: scripted\n    script: [{say: hi}]\n    callable: m:f\n",
        "runjournal.yaml:5: agents.echo.callable: is not allowed for adapter 'scripted' "
        "(use script)",
    ),
    "python agent with bad callable format": (
        "agents:\n  custom:\n    adapter: python\n    callable: mypkg.agents.deployer\n",
        "runjournal.yaml:4: agents.custom.callable: must be 'module:callable', "
        "e.g. 'pkg.mod:agent' (got 'mypkg.agents.deployer')",
    ),
    "python agent with a script": (
        "agents:\n  custom:\n    adapter: python\n    callable: m:f\n    script: [{say: hi}]\n",
        "runjournal.yaml:5: agents.custom.script: is not allowed for adapter 'python' "
        "(use callable)",
    ),
    "no agents": (
        "# nothing yet\nconcurrency: {}\n",
        "runjournal.yaml:2: agents: is required",
    ),
    "empty agents": (
        "agents: {}\n",
        "runjournal.yaml:1: agents: must define at least one agent",
    ),
    "bad agent name": (
        "agents:\n  'my agent': {adapter: scripted, script: [{say: hi}]}\n",
        "runjournal.yaml:2: agents.my agent: agent names may use only letters, digits, "
        "'_', '.', '-'",
    ),
    "routing rule to an unknown agent": (
        """\
        agents:
          deployer: {adapter: scripted, script: [{say: hi}]}
        routing:
          rules:
            - {match: "deploy", agent: deployer}
            - {match: "ship", agent: deployr}
        """,
        "runjournal.yaml:6: routing.rules[1].agent: unknown agent 'deployr' "
        "(did you mean 'deployer'?)",
    ),
    "default agent unknown, no close match": (
        ECHO + "routing:\n  default_agent: zzz\n",
        "runjournal.yaml:4: routing.default_agent: unknown agent 'zzz' (agents defined: echo)",
    ),
    "denied agent unknown": (
        ECHO + "policy:\n  deny_agents: [echo, ecoh]\n",
        "runjournal.yaml:4: policy.deny_agents[1]: unknown agent 'ecoh' (did you mean 'echo'?)",
    ),
    "invalid regex": (
        ECHO + "routing:\n  rules:\n    - match: \"de[ploy\"\n      agent: echo\n",
        "runjournal.yaml:5: routing.rules[0].match: invalid regex 'de[ploy': "
        "unterminated character set at position 2",
    ),
    "heartbeat not below lease": (
        ECHO + "concurrency:\n  lease_seconds: 10\n  heartbeat_seconds: 10\n",
        "runjournal.yaml:5: concurrency.heartbeat_seconds: must be < lease_seconds (got 10 >= 10)",
    ),
    "script step with two actions": (
        """\
        agents:
          echo:
            adapter: scripted
            script:
              - say: hi
              - {say: hi, fail: boom}
        """,
        "runjournal.yaml:6: agents.echo.script[1]: needs exactly one of: say, reasoning, step, "
        "tool_call, fail, sleep (got say, fail)",
    ),
    "script step with no action": (
        "agents:\n  echo:\n    adapter: scripted\n    script:\n      - {}\n",
        "runjournal.yaml:5: agents.echo.script[0]: needs exactly one of: say, reasoning, step, "
        "tool_call, fail, sleep (got none)",
    ),
    "approval on a step that is not a tool call": (
        "agents:\n  echo:\n    adapter: scripted\n    script:\n"
        "      - {say: hi, requires_approval: true}\n",
        "runjournal.yaml:5: agents.echo.script[0].requires_approval: "
        "only applies to a tool_call step",
    ),
    "negative sleep": (
        "agents:\n  echo:\n    adapter: scripted\n    script:\n"
        "      - say: hi\n      - sleep: -1\n",
        "runjournal.yaml:6: agents.echo.script[1].sleep: must be >= 0 (got -1)",
    ),
    "rejected text on a step that is not a tool call": (
        "agents:\n  echo:\n    adapter: scripted\n    script:\n"
        "      - {say: hi, rejected: no way}\n",
        "runjournal.yaml:5: agents.echo.script[0].rejected: only applies to a tool_call step",
    ),
    "rejected text on a tool call that needs no approval": (
        "agents:\n  echo:\n    adapter: scripted\n    script:\n"
        "      - {tool_call: {name: deploy}, rejected: no way}\n",
        "runjournal.yaml:5: agents.echo.script[0].rejected: only applies with requires_approval: true",
    ),
    "tool call without a name": (
        "agents:\n  echo:\n    adapter: scripted\n    script:\n"
        "      - tool_call: {args: {env: prod}}\n",
        "runjournal.yaml:5: agents.echo.script[0].tool_call.name: is required",
    ),
    "YAML syntax error": (
        ECHO.replace("}]}", "}]") + "concurrency: {}\n",
        "runjournal.yaml:3: invalid YAML: expected ',' or '}', but got '<scalar>' "
        "(while parsing a flow mapping from line 2)",
    ),
    "duplicate key": (
        ECHO + "  echo: {adapter: python, callable: m:f}\n",
        "runjournal.yaml:3: invalid YAML: duplicate key 'echo' (first on line 2)",
    ),
    "top level is a list": (
        "- agents\n- routing\n",
        "runjournal.yaml:1: the workspace must be a mapping of sections",
    ),
    "empty file": (
        "",
        "runjournal.yaml:1: the workspace must be a mapping of sections",
    ),
    "key only the code may set": (
        ECHO + "path: /etc\n",
        "runjournal.yaml:3: path: unknown key 'path' (allowed keys: agents, routing, "
        "concurrency, recovery, streaming, policy, storage)",
    ),
}


@pytest.mark.parametrize("text, message", BAD_FILES.values(), ids=list(BAD_FILES))
def test_bad_file_message(text: str, message: str) -> None:
    assert problem(text) == message


# Three different mistakes: a bad value in a nested agent (line 7), an unknown top-level key
# (line 8, which used to hide everything else) and a wrong type (line 11).
THREE_MISTAKES = """\
agents:
  echo: {adapter: scripted, script: [{say: hi}]}
  deployer:
    adapter: scripted
    script:
      - {say: deploying}
      - sleep: -1
concurency:
  max_concurrent_runs: 2
recovery:
  max_recovery_attempts: three
"""
THREE_PROBLEMS = [
    (7, "agents.deployer.script[1].sleep", "must be >= 0 (got -1)"),
    (8, "concurency", "unknown key 'concurency' (did you mean 'concurrency'?)"),
    (11, "recovery.max_recovery_attempts", "must be an integer (got 'three')"),
]


def test_every_problem_in_the_file_is_reported_each_on_its_line() -> None:
    with pytest.raises(WorkspaceError) as caught:
        parse_workspace(THREE_MISTAKES, "ws.yaml")
    error = caught.value
    assert str(error).splitlines() == [f"ws.yaml:{n}: {field}: {what}" for n, field, what in THREE_PROBLEMS]
    assert error.problems == [
        {"file": "ws.yaml", "line": n, "field": field, "problem": what} for n, field, what in THREE_PROBLEMS
    ]
    assert (error.line, error.field, error.problem) == THREE_PROBLEMS[0]  # the first, as before
    assert error.to_dict()["problems"] == error.problems
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.problems) == (str(error), error.problems)


def test_problems_are_listed_in_the_order_of_the_file() -> None:
    text = """\
    concurrency: {max_concurrent_runs: -1}
    recovery: {zzz: 1}
    agents:
      echo: {adapter: shell}
    """
    assert problem(text).splitlines() == [
        "runjournal.yaml:1: concurrency.max_concurrent_runs: must be >= 0 (got -1)",
        "runjournal.yaml:2: recovery.zzz: unknown key 'zzz' (allowed keys: enabled, "
        "resume_resuming_runs_on_startup, max_recovery_attempts, stale_running_after_seconds)",
        "runjournal.yaml:4: agents.echo.adapter: must be one of: scripted, python, langgraph (got 'shell')",
    ]


def test_unknown_agents_are_reported_with_the_other_problems() -> None:
    # The checks across sections cannot run on an invalid model; they are run on the data.
    text = ECHO + "routing: {default_agent: ech}\nconcurrency: {lease_seconds: 0}\n"
    assert problem(text).splitlines() == [
        "runjournal.yaml:3: routing.default_agent: unknown agent 'ech' (did you mean 'echo'?)",
        "runjournal.yaml:4: concurrency.lease_seconds: must be > 0 (got 0)",
    ]


def test_several_problems_in_one_agent_and_its_name() -> None:
    text = """\
    agents:
      'my agent':
        adapter: python
        script: [{say: hi}]
      echo:
        adapter: scripted
        script:
          - {say: hi, fail: boom}
          - {say: hi, result: 1, rejected: "no"}
    """
    assert problem(text).splitlines() == [
        "runjournal.yaml:2: agents.my agent: agent names may use only letters, digits, '_', '.', '-'",
        "runjournal.yaml:2: agents.my agent.callable: is required for adapter 'python'",
        "runjournal.yaml:4: agents.my agent.script: is not allowed for adapter 'python' (use callable)",
        "runjournal.yaml:8: agents.echo.script[0]: needs exactly one of: say, reasoning, step, "
        "tool_call, fail, sleep (got say, fail)",
        "runjournal.yaml:9: agents.echo.script[1].result: only applies to a tool_call step",
        "runjournal.yaml:9: agents.echo.script[1].rejected: only applies to a tool_call step",
    ]


def test_the_cli_prints_every_problem_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "runjournal.yaml").write_text(THREE_MISTAKES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNJOURNAL_")}
    env["RUNJOURNAL_URL"] = f"sqlite:///{tmp_path / 'j.db'}"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "runjournal"), "run", "hello"], cwd=tmp_path, env=env,
        check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        ("error: " if i == 0 else "") + f"runjournal.yaml:{n}: {field}: {what}"
        for i, (n, field, what) in enumerate(THREE_PROBLEMS)
    ]


def test_error_names_the_given_file_and_its_parts() -> None:
    with pytest.raises(WorkspaceError) as caught:
        parse_workspace(ECHO + "concurrency: {max_concurrent_runs: -1}\n", "conf/ws.yaml")
    error = caught.value
    assert isinstance(error, RunjournalError)
    assert (error.file, error.line) == ("conf/ws.yaml", 3)
    assert error.field == "concurrency.max_concurrent_runs"
    assert error.to_dict() == {
        "code": "workspace_error",
        "message": "conf/ws.yaml:3: concurrency.max_concurrent_runs: must be >= 0 (got -1)",
        "file": "conf/ws.yaml",
        "line": 3,
        "field": "concurrency.max_concurrent_runs",
        "problems": [{"file": "conf/ws.yaml", "line": 3, "field": "concurrency.max_concurrent_runs",
                      "problem": "must be >= 0 (got -1)"}],
    }


def test_from_dict_errors_have_no_file_or_line() -> None:
    data = {"agents": {"echo": {"adapter": "scripted", "script": [{"say": "hi"}]}},
            "routing": {"default_agent": "ech"}}
    with pytest.raises(WorkspaceError) as caught:
        Workspace.from_dict(data)
    assert str(caught.value) == "routing.default_agent: unknown agent 'ech' (did you mean 'echo'?)"
    assert caught.value.line is None and caught.value.file is None


def test_missing_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceError) as caught:
        load_workspace("runjournal.yaml")
    assert str(caught.value) == (
        "runjournal.yaml: file not found (create one with `runjournal init`)"
    )
    assert caught.value.line is None


def test_load_reports_the_path_as_given(tmp_path) -> None:
    path = tmp_path / "ws.yaml"
    path.write_text(ECHO + "streaming: {invoke_timeout_seconds: 0}\n", encoding="utf-8")
    with pytest.raises(WorkspaceError) as caught:
        load_workspace(path)
    assert str(caught.value) == (
        f"{path}:3: streaming.invoke_timeout_seconds: must be > 0 (got 0)"
    )


# -- write_example ---------------------------------------------------------------------------


def test_write_example_writes_a_loadable_file(tmp_path) -> None:
    path = write_example(tmp_path / "sub" / "runjournal.yaml")
    assert path.read_text(encoding="utf-8") == EXAMPLE_WORKSPACE
    assert set(load_workspace(path).agents) == {"echo", "deployer"}


def test_write_example_refuses_to_overwrite(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runjournal.yaml").write_text("mine\n", encoding="utf-8")
    with pytest.raises(WorkspaceError) as caught:
        write_example("runjournal.yaml")
    assert str(caught.value) == (
        "runjournal.yaml: already exists (run `runjournal init --force` to overwrite it)"
    )
    assert (tmp_path / "runjournal.yaml").read_text(encoding="utf-8") == "mine\n"
    write_example("runjournal.yaml", force=True)
    assert (tmp_path / "runjournal.yaml").read_text(encoding="utf-8") == EXAMPLE_WORKSPACE
