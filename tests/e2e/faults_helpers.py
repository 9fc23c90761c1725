"""Helpers for ``test_faults.py``: workspaces, CLI calls, syscall fault injection, mounts, a throwaway PostgreSQL.

The run invariants come from ``bench/chaos.py`` (``check_history``): every run terminal
with exactly one terminal event, one ``Completed`` carrying its own output, one claim and
at most one start per epoch, fencing held.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.chaos import AGENT, TERMINAL, check_history
from runjournal import Journal

EXE = str(Path(sys.executable).parent / "runjournal")
NO_STRACE = "install strace (Debian package strace)"
CLI_TIMEOUT_S = 60.0  # a hang detector: every command here ends well within it


def script(sleep: float = 0.05) -> list[dict[str, Any]]:
    """A replayable scripted agent: step, sleep, step, sleep, ``done {message}``."""
    return [{"step": {"i": 1}}, {"sleep": sleep}, {"step": {"i": 2}}, {"sleep": sleep}, {"say": "done {message}"}]


def write_workspace(workdir: Path, url: str, *, sleep: float = 0.05, lease_seconds: float = 1.5,
                    heartbeat_seconds: float = 0.3, store_outage_seconds: float = 2.0,
                    max_concurrent_runs: int = 4) -> Path:
    doc = {
        "agents": {AGENT: {"adapter": "scripted", "supports_replay": True, "script": script(sleep)}},
        "routing": {"default_agent": AGENT},
        "concurrency": {"max_concurrent_runs": max_concurrent_runs, "lease_seconds": lease_seconds,
                        "heartbeat_seconds": heartbeat_seconds, "store_outage_seconds": store_outage_seconds},
        "recovery": {"enabled": True, "stale_running_after_seconds": 0.5},
        "storage": {"url": url},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "runjournal.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("RUNJOURNAL_URL", "RUNJOURNAL_LOG_LEVEL")}
    base["PYTHONUNBUFFERED"] = "1"
    base.update(extra)
    return base


def command(workspace: Path, *args: str) -> list[str]:
    return [EXE, "--workspace", str(workspace), *args]


def rj(workspace: Path, *args: str, wrap: Sequence[str] = (), timeout: float = CLI_TIMEOUT_S,
       extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one CLI command (optionally under ``wrap``, e.g. strace) and wait for it, with a hang detector."""
    return subprocess.run([*wrap, *command(workspace, *args)], check=False, cwd=workspace.parent, env=env(**(extra_env or {})),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def spawn(workspace: Path, *args: str, name: str) -> subprocess.Popen[bytes]:
    """Start a long-lived CLI process (a worker), output in ``logs/NAME.out|err``."""
    logs = workspace.parent / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / f"{name}.out").open("wb") as o, (logs / f"{name}.err").open("wb") as e:
        return subprocess.Popen(command(workspace, *args), cwd=workspace.parent, env=env(), stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL)


def logs_of(workspace: Path, name: str) -> str:
    logs = workspace.parent / "logs"
    return "".join((logs / f"{name}.{x}").read_text(errors="replace") for x in ("out", "err")
                   if (logs / f"{name}.{x}").exists())


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def human_lines(stderr: str) -> list[str]:
    """The lines of stderr meant for a person: without the structured (JSON) log records."""
    return [line for line in stderr.splitlines() if line.strip() and not line.lstrip().startswith("{")]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], store: str, cause: str) -> str:
    """Exit 1, no traceback, exactly one line for a person on stderr, naming the store and the cause."""
    context = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    assert proc.returncode == 1, context
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, context
    lines = human_lines(proc.stderr)
    assert len(lines) == 1, context
    line = lines[0]
    assert line.startswith("error: ") and store in line and cause in line, context
    return line


def submit(url: str, workdir: Path, count: int, *, prefix: str = "m", size: int = 0) -> dict[str, str]:
    """Queue ``count`` runs in this process; returns run id -> message."""
    messages: dict[str, str] = {}
    with Journal.open(url, views_path=str(workdir / "driver.views.db")) as journal:
        for i in range(count):
            message = f"{prefix}{i}" + "x" * size
            run = journal.submit(agent_id=AGENT, input={"message": message}, actor="faults")
            messages[run.run_id] = message
    return messages


def states(url: str, workdir: Path, run_ids: Sequence[str]) -> dict[str, str]:
    with Journal.open(url, views_path=str(workdir / "driver.views.db")) as journal:
        return {r: journal.get_run(r).state for r in run_ids}


def finish_with_clean_workers(workspace: Path, url: str, run_ids: Sequence[str], *, deadline_s: float = 30.0) -> None:
    """Run clean ``worker --until-idle`` processes until every run is terminal (leases of dead workers expire first)."""
    deadline = time.monotonic() + deadline_s
    outputs: list[str] = []
    while True:
        left = [r for r, s in states(url, workspace.parent, run_ids).items() if s not in TERMINAL]
        if not left:
            return
        assert time.monotonic() < deadline, f"{len(left)} runs not terminal: {left[:5]}\n{''.join(outputs[-3:])}"
        proc = rj(workspace, "worker", "--until-idle", "--worker-id", f"clean{len(outputs)}")
        outputs.append(f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, outputs[-1]
        time.sleep(0.3)


def assert_every_run_ended_once(workspace: Path, url: str, messages: dict[str, str],
                                *, allow_lease_expiry: bool = True) -> dict[str, Any]:
    """From the log: every run completed once with its own output, versions without a gap; verify ok (API and CLI)."""
    problems: list[str] = []
    figures = {"lease_expired": 0, "events": 0}
    with Journal.open(url, views_path=str(workspace.parent / "check.views.db")) as journal:
        for run_id, message in messages.items():
            run = journal.get_run(run_id)
            history = journal.history(run_id)
            found, got = check_history(run_id, run.state, history, f"done {message}")
            problems += found
            if run.state != "completed":
                problems.append(f"run {run_id} is {run.state}: {run.error}")
            versions = [e.version for e in history]
            if versions != list(range(1, len(versions) + 1)):
                problems.append(f"run {run_id}: versions {versions} have a gap")
            figures["lease_expired"] += got["lease_expired"]
            figures["events"] += len(history)
        report = journal.verify()
        if not report.ok:
            problems.append(f"verify: {[p.model_dump(mode='json') for p in report.problems[:5]]}")
    if not allow_lease_expiry and figures["lease_expired"]:
        problems.append(f"{figures['lease_expired']} LeaseExpired events: a heartbeat did not survive")
    assert not problems, "\n".join(problems[:30])
    proc = rj(workspace, "verify")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"verify: {proc.stdout}\n{proc.stderr}"
    return figures


# -- strace fault injection --------------------------------------------------------------------


def strace_or_skip() -> str:
    found = shutil.which("strace")
    if not found and os.environ.get("RUNJOURNAL_REQUIRE_STRACE") == "1":
        pytest.fail(f"strace is required here (RUNJOURNAL_REQUIRE_STRACE=1): {NO_STRACE}")
    if not found:
        pytest.skip(NO_STRACE)
    return found


_LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)$")


@dataclass
class Calls:
    """One process's syscalls of interest, in order: (syscall, file or log event)."""

    calls: list[tuple[str, str]]

    def count_before(self, syscall: str, index: int) -> int:
        return sum(1 for name, _ in self.calls[:index] if name == syscall)

    def log_index(self, event_type: str) -> int:
        for i, (name, what) in enumerate(self.calls):
            if name == "log" and what == event_type:
                return i
        raise AssertionError(f"no {event_type} in the calibration trace: {self.calls[:80]}")

    def nth_of_commit(self, syscall: str, event_type: str, path_suffix: str) -> int:
        """The invocation number (1-based, per process) of ``syscall`` on ``path_suffix`` in the commit
        that saved ``event_type``: the first such call after the previous commit's log line."""
        at = self.log_index(event_type)
        start = max((i for i, (name, _) in enumerate(self.calls[:at]) if name == "log"), default=-1)
        for i in range(start + 1, at):
            name, what = self.calls[i]
            if name == syscall and what.endswith(path_suffix):
                return self.count_before(syscall, i) + 1
        raise AssertionError(f"no {syscall} on *{path_suffix} before {event_type}: {self.calls[start:at + 1]}")


def parse_trace(path: Path) -> Calls:
    """Parse ``strace -f -y -s 64 -e trace=SYSCALLS,write`` output: the thread that logs transitions."""
    by_tid: dict[str, list[tuple[str, str]]] = {}
    logger_tid = None
    for raw in path.read_text(errors="replace").splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        tid, name, rest = m.groups()
        if name == "write":
            found = re.search(r'\\"type\\": \\"(\w+)\\"', rest)
            if found:
                by_tid.setdefault(tid, []).append(("log", found.group(1)))
                logger_tid = logger_tid or tid
            continue
        fd = re.match(r"\d+<([^>]*)>", rest)
        by_tid.setdefault(tid, []).append((name, fd.group(1) if fd else ""))
    assert logger_tid is not None, f"no transition logged in {path}"
    return Calls(by_tid[logger_tid])


def calibrate(workspace: Path, args: Sequence[str], syscalls: str, trace: Path) -> Calls:
    """Run the command once under strace without a fault, logging transitions, and parse its syscalls."""
    wrap = ["strace", "-f", "-y", "-s", "64", "-o", str(trace), "-e", f"trace={syscalls},write"]
    proc = rj(workspace, *args, wrap=wrap, extra_env={"RUNJOURNAL_LOG_LEVEL": "info"})
    assert proc.returncode == 0, f"calibration run failed: {proc.stdout}\n{proc.stderr}"
    return parse_trace(trace)


def inject(syscall: str, error: str, when: str) -> list[str]:
    return ["strace", "-f", "-o", os.devnull, "-e", f"trace={syscall}", "-e", f"inject={syscall}:error={error}:when={when}"]


# -- mounts ------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (skips when mounting is not allowed), unmounted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="runjournal-faults-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def remount(folder: Path, options: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- a throwaway PostgreSQL cluster ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    quoted = " ".join(_quote(a) for a in args)
    if os.geteuid() == 0:
        cmd = ["su", "postgres", "-c", quoted]
    else:
        cmd = ["sh", "-c", quoted]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd="/")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


@dataclass
class Cluster:
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        done = _as_postgres(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                             "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off",
                             "start"])
        assert done.returncode == 0, f"pg_ctl start: {done.stdout}{done.stderr}{self.log.read_text(errors='replace')[-2000:]}"

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """A new PostgreSQL cluster in a temp folder on a free port (skips when the tools are missing)."""
    for tool in ("initdb", "pg_ctl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not found: install PostgreSQL's server binaries to run the outage test")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a postgres user: initdb refuses to run as root")
    root = Path(tempfile.mkdtemp(prefix="runjournal-pg-"))
    root.chmod(0o777)
    data = root / "data"
    cluster = Cluster(data, free_port(), root / "server.log")
    try:
        done = _as_postgres(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                             "--no-instructions"])
        if done.returncode != 0 and "--no-instructions" in done.stderr:
            done = _as_postgres(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        assert done.returncode == 0, f"initdb: {done.stdout}{done.stderr}"
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
