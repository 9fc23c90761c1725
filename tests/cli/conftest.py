"""Fixtures for the CLI tests: the installed ``runjournal`` script, run in subprocesses.

``cli`` runs ``runjournal`` with cwd = a fresh tmp_path and ``RUNJOURNAL_URL`` pointing at a
SQLite file there, and returns ``Result(code, out, err)`` (a plain tuple too). ``cli.many``
runs independent commands at once, to keep the suite quick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

RUNJOURNAL = Path(sys.executable).parent / "runjournal"
TIMEOUT = 60
# Variables that would change what the CLI prints or where it stores: tests set their own.
SCRUBBED = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM")


class Result(NamedTuple):
    """What one command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)

    @property
    def message(self) -> str:
        """stderr with its whitespace collapsed (rich wraps long lines at 80 columns)."""
        return " ".join(self.err.split())


class CLI:
    """Runs the installed ``runjournal`` in a folder, against a store."""

    def __init__(self, cwd: Path, url: str | None, env: Mapping[str, str] | None = None) -> None:
        self.cwd = cwd
        self.url = url
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("RUNJOURNAL_") and k not in SCRUBBED}
        self.env["RUNJOURNAL_ACTOR"] = "tester"
        if url:
            self.env["RUNJOURNAL_URL"] = url
        self.env.update(env or {})

    def start(self, *args: str | Path, env: Mapping[str, str | None] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[str]:
        """Start ``runjournal ARGS``; collect it with ``wait``. env values of None unset."""
        full_env = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        return subprocess.Popen(
            [str(RUNJOURNAL), *map(str, args)], cwd=cwd or self.cwd, env=full_env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    @staticmethod
    def wait(process: subprocess.Popen[str], timeout: float = TIMEOUT) -> Result:
        """The result of a started command (killed after ``timeout`` seconds)."""
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"runjournal {process.args[1:]} timed out after {timeout} s\n{out}\n{err}")
        return Result(process.returncode, out, err)

    def __call__(self, *args: str | Path, env: Mapping[str, str | None] | None = None,
                 cwd: Path | None = None, timeout: float = TIMEOUT) -> Result:
        """Run ``runjournal ARGS`` to completion."""
        return self.wait(self.start(*args, env=env, cwd=cwd), timeout)

    def many(self, *commands: Sequence[str | Path], env: Mapping[str, str | None] | None = None,
             cwd: Path | None = None, timeout: float = TIMEOUT) -> list[Result]:
        """Run independent commands at the same time; results in the same order."""
        started = [self.start(*command, env=env, cwd=cwd) for command in commands]
        return [self.wait(p, timeout) for p in started]


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    """``runjournal`` in an empty tmp_path, with RUNJOURNAL_URL=sqlite:///<tmp_path>/j.db."""
    return CLI(tmp_path, f"sqlite:///{tmp_path / 'j.db'}")


@pytest.fixture(scope="module")
def populated_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A folder with a workspace and a store holding a completed echo run and a deploy run
    waiting for approval; built once per module, copied by ``populated``."""
    folder = tmp_path_factory.mktemp("populated")
    run = CLI(folder, f"sqlite:///{folder / 'j.db'}")
    assert run("init").code == 0
    hello = run("run", "hello", "--wait", "--json")
    deploy = run("run", "deploy to prod", "--wait", "--json")
    assert hello.code == 0 and deploy.code == 0, hello.err + deploy.err
    assert deploy.json()["state"] == "waiting_for_approval"
    return {"folder": folder, "hello": hello.json(), "deploy": deploy.json()}


@pytest.fixture
def populated(populated_template: dict[str, Any], tmp_path: Path) -> tuple[CLI, dict[str, Any], dict[str, Any]]:
    """(cli on a private copy of the populated store, the echo run, the deploy run)."""
    folder = tmp_path / "store"
    shutil.copytree(populated_template["folder"], folder)
    return CLI(folder, f"sqlite:///{folder / 'j.db'}"), populated_template["hello"], populated_template["deploy"]
