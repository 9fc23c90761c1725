"""Chaos: worker processes SIGKILLed at random moments while they work a shared store.

Run with ``python -m bench.chaos --runs N --workers W --kills K [--store URL] [--seed S]
[--label L] [--timeout SECONDS] [--keep]``; importable as ``run_chaos(...)`` (the e2e test
``tests/e2e/test_chaos.py`` uses it).

What it does, in a fresh work directory:

1. writes a workspace file: one scripted agent that steps, sleeps, steps, sleeps and says
   ``done {message}`` (``supports_replay: true``), short leases (1.5 s, heartbeat 0.3 s,
   stale running after 0.5 s) so that takeovers come quickly, 4 slots per worker, and
   ``storage.url`` = the store (a SQLite file in the work directory by default);
2. submits N runs through ``Journal.submit`` (random priorities 0..3);
3. starts W ``runjournal worker --worker-id wK`` processes (the console script beside this
   Python, cwd = the work directory, output in ``logs/``) and SIGKILLs a random one K times,
   starting a replacement with a new id each time. Kills are spread over the run: kill i
   waits until a random share of the runs is terminal (one share in each of K equal slices
   of 2%..85%), then for the log to grow (a worker is saving), then 0-200 ms more, and hits
   a random worker that is past its start-up ("busy" kills: mid-save, mid-heartbeat,
   mid-claim, holding leases). After a kill, with probability 0.4 (while over 20% of the
   runs are left) the next kill hits the freshly started replacement instead: either at a
   random moment of its start-up (0.05x..0.95x the measured time from launch to
   its "recovered" line: imports, opening the store, catch-up, recovery), or, once it holds
   the shared views file open (seen in /proc), 0..1x the measured time from there to the
   "recovered" line (mid catch-up of the followed views, or mid recovery);
4. then keeps W workers running (restarting any that exit by themselves, which is
   recorded) until every run is terminal or the timeout passes, and stops them
   (SIGTERM, then SIGKILL);
5. checks, from the log (``Journal.history`` / ``get_run``), never from a view:
   - every run is terminal, and has exactly one terminal event, its last one;
   - a completed run has exactly one ``Completed``, whose output is ``done m<i>``;
   - ``Dequeued`` epochs go 1, 2, 3, ... (no two claims in one epoch);
   - at most one ``Started``/``Resumed`` per epoch, by the worker that claimed that epoch
     (no two starts in one epoch, no run started by two workers in one epoch);
   - fencing: every event a worker appended (actor ``worker:X``) was appended while X held
     the run's current claim (never after a ``LeaseExpired`` took it away);
   - failures only with a documented recovery reason (none expected: the agent replays);
   - ``journal.verify().ok``; no terminal run left in the inline queue or leases;
   - every built-in followed view in the views file the workers used (beside a SQLite
     store; for PostgreSQL the node-local ``.runjournal/*.views.db`` in the work
     directory), once caught up, equals row for row a clean catch-up into a fresh file.

Results (also the counts of completed / failed / cancelled runs, LeaseExpired events,
replays, kills and wall time) are printed and written to ``bench/results/chaos.json`` (or
``chaos-<label>.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runjournal import Journal
from runjournal.runtime.recovery import EXHAUSTED, MISSING_REQUEST

from .common import RESULTS_DIR, write_results

BENCH = "chaos"
AGENT = "stepper"
SCRIPT: list[dict[str, Any]] = [
    {"step": {"i": 1}},
    {"sleep": 0.05},
    {"step": {"i": 2}},
    {"sleep": 0.05},
    {"say": "done {message}"},
]
CONCURRENCY = {"max_concurrent_runs": 4, "lease_seconds": 1.5, "heartbeat_seconds": 0.3}
RECOVERY = {"enabled": True, "stale_running_after_seconds": 0.5}
TERMINAL = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENTS = frozenset({"Completed", "Failed", "Cancelled"})
BEGIN_EVENTS = frozenset({"Started", "Resumed"})
# Failures that recovery may legitimately record here. "stale running run cannot be replayed
# safely" is documented too, but cannot happen: the agent supports replay.
ALLOWED_FAILURES = frozenset({MISSING_REQUEST, EXHAUSTED})
VIEW_TABLES = ("runs", "threads", "approvals", "recovery_intents", "messages", "_run_index")
FRESH_KILL_CHANCE = 0.4  # after a kill, the chance that the next one hits the replacement in its start-up
FRESH_KILL_MIN_LEFT = 0.2  # ... while more than this share of the runs is left (a start-up kill takes ~1 s)
BUSY_DELAY_S = 0.2
GROWTH_WAIT_S = 2.0
DEFAULT_STARTUP_S = 1.0
DEFAULT_CATCH_UP_S = 0.05
POLL_S = 0.01
SWEEP_EVERY_S = 2.0
STOP_GRACE_S = 5.0
MAX_PROBLEMS = 50


# -- the work directory ------------------------------------------------------------------------


def write_workspace(workdir: Path, url: str) -> Path:
    """The workspace file of the chaos run (one replayable scripted agent, short leases)."""
    doc = {
        "agents": {AGENT: {"adapter": "scripted", "supports_replay": True, "script": SCRIPT}},
        "routing": {"default_agent": AGENT},
        "concurrency": dict(CONCURRENCY),
        "recovery": dict(RECOVERY),
        "storage": {"url": url},
    }
    path = workdir / "runjournal.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def workers_views_path(url: str, workdir: Path) -> Path:
    """The views file the workers (cwd = ``workdir``) keep for ``url``: the journal's default one."""
    journal = Journal.open(url)
    try:
        path = Path(journal.views_path)  # beside a SQLite store; relative to the cwd otherwise
    finally:
        journal.close()
    return path if path.is_absolute() else workdir / path


def redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


# -- worker processes ------------------------------------------------------------------------------


@dataclass
class Worker:
    worker_id: str
    proc: subprocess.Popen[bytes]
    started: float
    out: Path
    err: Path
    views: Path
    replacement: bool
    views_opened_at: float | None = None
    recovered_at: float | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def observe(self) -> None:
        """Note when the worker opened the views file and when it printed its recovery line."""
        if self.recovered_at is None and self.alive():
            self.opened_views()
            try:
                if "recovered" in self.out.read_text(errors="replace"):
                    self.recovered_at = time.monotonic()
            except OSError:
                pass

    def recovered(self) -> bool:
        self.observe()
        return self.recovered_at is not None

    def opened_views(self) -> bool:
        """Whether the process holds the views file open (it is catching up or past it; Linux only)."""
        if self.views_opened_at is None:
            folder = f"/proc/{self.proc.pid}/fd"
            try:
                for fd in os.listdir(folder):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"{folder}/{fd}") == str(self.views):
                            self.views_opened_at = time.monotonic()
                            break
            except OSError:
                return False
        return self.views_opened_at is not None


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Fleet:
    """The worker processes of one chaos run."""

    def __init__(self, workspace: Path, workdir: Path, views: Path) -> None:
        self.workspace = workspace
        self.views = views.resolve()
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.exe = str(Path(sys.executable).parent / "runjournal")
        self.env = {k: v for k, v in os.environ.items() if k != "RUNJOURNAL_URL"}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.workers: dict[str, Worker] = {}
        self.spawned = 0
        self.unexpected_exits: list[dict[str, Any]] = []
        self.retired: list[Worker] = []  # killed or exited, kept for their timings

    def spawn(self, *, replacement: bool = True) -> Worker:
        self.spawned += 1
        wid = f"w{self.spawned}"
        out, err = self.logs / f"{wid}.out", self.logs / f"{wid}.err"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [self.exe, "--workspace", str(self.workspace), "worker", "--worker-id", wid],
                cwd=self.workdir, env=self.env, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
            )
        worker = Worker(wid, proc, time.monotonic(), out, err, self.views, replacement)
        self.workers[wid] = worker
        return worker

    def alive(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive()]

    def kill(self, worker: Worker) -> bool:
        """SIGKILL a worker; True when it was still running."""
        running = worker.alive()
        if running:
            os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        self.retired.append(self.workers.pop(worker.worker_id))
        return running

    def replace_exited(self) -> None:
        """Workers that ended by themselves are recorded and replaced."""
        for worker in list(self.workers.values()):
            if not worker.alive():
                self.unexpected_exits.append({
                    "worker_id": worker.worker_id, "returncode": worker.proc.returncode,
                    "uptime_s": round(time.monotonic() - worker.started, 2), "stderr_tail": tail(worker.err),
                })
                self.retired.append(self.workers.pop(worker.worker_id))
                self.spawn()

    def observe(self) -> None:
        for worker in self.workers.values():
            worker.observe()

    def timings(self) -> tuple[list[float], list[float]]:
        """Seconds from launch to the recovery line, and from opening the views to it, of every worker seen."""
        everyone = [*self.retired, *self.workers.values()]
        # the first workers start together and contend for the CPU: their timings only until others exist
        later = [w for w in everyone if w.replacement] or everyone
        startup = [w.recovered_at - w.started for w in later if w.recovered_at is not None]
        catch_up = [w.recovered_at - w.views_opened_at for w in later
                    if w.recovered_at is not None and w.views_opened_at is not None]
        return startup, catch_up

    def estimates(self) -> tuple[float, float]:
        """Median start-up (launch -> recovered) and catch-up-plus-recovery (views open -> recovered)."""
        startup, catch_up = self.timings()
        return (statistics.median(startup) if startup else DEFAULT_STARTUP_S,
                statistics.median(catch_up) if catch_up else DEFAULT_CATCH_UP_S)

    def stop(self) -> None:
        """SIGTERM every worker, then SIGKILL whoever is left after a grace period."""
        for worker in self.workers.values():
            if worker.alive():
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self.workers.values():
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
        self.workers.clear()


# -- watching the log ------------------------------------------------------------------------------


class LogWatch:
    """Follows the log for terminal events of our runs (a sweep with ``get_run`` backs it up)."""

    def __init__(self, journal: Journal, run_ids: Sequence[str], start: int) -> None:
        self.journal = journal
        self.pending = set(run_ids)
        self.position = start
        self.max_position = start
        self._last_sweep = time.monotonic()

    def poll(self) -> int:
        """Read new events; returns how many runs are still not terminal."""
        for page in self.journal.notifications(self.position):
            for n in page:
                if n.topic.split(".")[-2] in TERMINAL_EVENTS:
                    self.pending.discard(str(n.originator_id))
            self.position = page[-1].id
        self.max_position = max(self.max_position, self.position)
        since = time.monotonic() - self._last_sweep
        if since >= SWEEP_EVERY_S or (0 < len(self.pending) < 20 and since >= 0.2):
            self.sweep()
        return len(self.pending)

    def sweep(self) -> None:
        self._last_sweep = time.monotonic()
        for run_id in list(self.pending):
            if self.journal.get_run(run_id).state in TERMINAL:
                self.pending.discard(run_id)

    def log_head(self) -> int:
        return self.journal.max_position()


# -- checks ----------------------------------------------------------------------------------------


def check_history(run_id: str, state: str, events: Sequence[Any], expected_output: str) -> tuple[list[str], dict[str, Any]]:
    """Problems with one run's history, and figures about it."""
    problems: list[str] = []
    types = [e.type for e in events]
    figures: dict[str, Any] = {
        "lease_expired": types.count("LeaseExpired"),
        "begins": sum(t in BEGIN_EVENTS for t in types),
        "replays": sum(1 for e in events if e.type == "Resumed"
                       and e.data.get("resume_kind") == "startup-running-recovery"),
        "claims": types.count("Dequeued"),
    }
    if state not in TERMINAL:
        problems.append(f"run {run_id} is not terminal: {state}")
    terminal = [i for i, t in enumerate(types) if t in TERMINAL_EVENTS]
    if state in TERMINAL and (len(terminal) != 1 or terminal[0] != len(types) - 1):
        problems.append(f"run {run_id} ({state}) has terminal events {[types[i] for i in terminal]} at {terminal}")
    completed = [e for e in events if e.type == "Completed"]
    if state == "completed":
        if len(completed) != 1:
            problems.append(f"run {run_id} is completed with {len(completed)} Completed events")
        elif (completed[0].data.get("output") or {}).get("text") != expected_output:
            problems.append(f"run {run_id} completed with output {completed[0].data.get('output')!r}, "
                            f"expected {expected_output!r}")
    elif completed:
        problems.append(f"run {run_id} is {state} but has {len(completed)} Completed events")

    claims: dict[int, str] = {}  # epoch -> worker that claimed it
    begins: Counter[int] = Counter()
    holder: tuple[str, int] | None = None  # (worker, epoch) of the current claim
    for e in events:
        if e.type == "Dequeued":
            epoch, worker = e.data["epoch"], e.data["worker_id"]
            if epoch in claims:
                problems.append(f"run {run_id}: epoch {epoch} claimed twice ({claims[epoch]}, {worker}) at v{e.version}")
            elif epoch != len(claims) + 1:
                problems.append(f"run {run_id}: claim of epoch {epoch} at v{e.version} after {len(claims)} claims")
            claims[epoch] = worker
            holder = (worker, epoch)
        elif e.type in BEGIN_EVENTS:
            epoch, worker = e.data["epoch"], e.data["worker_id"]
            begins[epoch] += 1
            if begins[epoch] > 1:
                problems.append(f"run {run_id}: {begins[epoch]} Started/Resumed in epoch {epoch} (v{e.version})")
            if claims.get(epoch) != worker:
                problems.append(f"run {run_id}: {e.type} by {worker} in epoch {epoch} claimed by {claims.get(epoch)}")
        elif e.type == "LeaseExpired":
            if holder is None or e.data["epoch"] != holder[1]:
                problems.append(f"run {run_id}: LeaseExpired of epoch {e.data['epoch']} at v{e.version}, "
                                f"current claim {holder}")
            holder = None
        if e.actor.startswith("worker:"):
            worker = e.actor.removeprefix("worker:")
            epoch = e.data.get("epoch")
            if holder is None or holder[0] != worker or (epoch is not None and epoch != holder[1]):
                problems.append(f"run {run_id}: {e.type} at v{e.version} by {e.actor} (epoch {epoch}) "
                                f"while the claim is {holder} (fencing)")
        if e.type == "Failed":
            figures["error"] = e.data.get("error")
    return problems, figures


def dump_table(path: Path, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    finally:
        conn.close()
    return columns, sorted(rows, key=repr)


def compare_views(url: str, used: Path, clean: Path) -> dict[str, Any]:
    """Catch up the workers' views file and a fresh one; compare every built-in view row for row."""
    with Journal.open(url, views_path=str(clean)) as journal:
        clean_events = journal.catch_up()
        head = journal.max_position()
        clean_positions = journal.runner.positions()
    used_existed = used.exists()
    with Journal.open(url, views_path=str(used)) as journal:
        used_events = journal.catch_up()
        used_positions = journal.runner.positions()
    tables: dict[str, Any] = {}
    for table in VIEW_TABLES:
        used_cols, used_rows = dump_table(used, table)
        clean_cols, clean_rows = dump_table(clean, table)
        only_used = sorted(set(used_rows) - set(clean_rows), key=repr)
        only_clean = sorted(set(clean_rows) - set(used_rows), key=repr)
        equal = used_cols == clean_cols and used_rows == clean_rows
        entry: dict[str, Any] = {"rows": len(clean_rows), "equal": equal}
        if not equal:
            entry.update({
                "rows_used": len(used_rows), "columns_used": used_cols, "columns_clean": clean_cols,
                "only_in_used": [list(map(str, r)) for r in only_used[:5]],
                "only_in_clean": [list(map(str, r)) for r in only_clean[:5]],
                "n_only_in_used": len(only_used), "n_only_in_clean": len(only_clean),
            })
        tables[table] = entry
    positions_ok = (set(clean_positions.values()) == {head} and set(used_positions.values()) == {head})
    return {
        "ok": all(t["equal"] for t in tables.values()) and positions_ok and used_existed,
        "workers_views_file_existed": used_existed,
        "log_head": head,
        "events_caught_up_by_check": used_events,
        "clean_events": clean_events,
        "positions_ok": positions_ok,
        "tables": tables,
    }


def check_store(url: str, run_ids: Sequence[str], messages: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Every invariant, from the log; plus the views comparison."""
    problems: list[str] = []
    states: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    offenders: dict[str, list[dict[str, Any]]] = {}
    with Journal.open(url, views_path=str(workdir / "check.views.db")) as journal:
        for run_id in run_ids:
            run = journal.get_run(run_id)
            states[run.state] += 1
            history = journal.history(run_id)
            found, figures = check_history(run_id, run.state, history, f"done {messages[run_id]}")
            for key in ("lease_expired", "begins", "replays", "claims"):
                totals[key] += figures[key]
            if run.state == "failed":
                error = figures.get("error") or run.error or "?"
                failures[error] += 1
                if error not in ALLOWED_FAILURES:
                    found.append(f"run {run_id} failed: {error}")
            if found:
                problems.extend(found)
                if len(offenders) < 5:
                    offenders[run_id] = [
                        {"v": e.version, "type": e.type, "actor": e.actor, "at": e.timestamp.isoformat(),
                         **{k: v for k, v in e.data.items() if k in ("epoch", "worker_id", "reason", "to_state",
                                                                     "resume_kind", "error", "output")}}
                        for e in history
                    ]
        ours = set(run_ids)
        leftover_queue = [q.run_id for q in journal.queue() if q.run_id in ours]
        leftover_leases = [lease.run_id for lease in journal.leases() if lease.run_id in ours]
        if states.keys() <= TERMINAL:
            if leftover_queue:
                problems.append(f"terminal runs still in the inline queue: {leftover_queue[:5]}")
            if leftover_leases:
                problems.append(f"terminal runs still holding leases: {leftover_leases[:5]}")
        report = journal.verify()
        verify = {"ok": report.ok, "runs_checked": report.runs_checked, "events_checked": report.events_checked,
                  "problems": [p.model_dump(mode="json") for p in report.problems[:5]]}
        if not report.ok:
            problems.append(f"verify failed: {verify['problems']}")
        log_events = journal.max_position()
    views = compare_views(url, workers_views_path(url, workdir), workdir / "clean.views.db")
    if not views["ok"]:
        bad = [t for t, v in views["tables"].items() if not v["equal"]]
        problems.append(f"followed views differ from a clean rebuild: {bad or 'positions'}")
    return {
        "states": dict(states),
        "completed": states["completed"],
        "failed": states["failed"],
        "cancelled": states["cancelled"],
        "not_terminal": sum(n for s, n in states.items() if s not in TERMINAL),
        "failure_reasons": dict(failures),
        "lease_expired_events": totals["lease_expired"],
        "claims": totals["claims"],
        "starts": totals["begins"],
        "replays": totals["replays"],
        "log_head_position": log_events,
        "verify": verify,
        "views": views,
        "problems": problems[:MAX_PROBLEMS],
        "n_problems": len(problems),
        "offending_histories": offenders,
    }


# -- the chaos run ---------------------------------------------------------------------------------


def _wait(predicate: Callable[[], bool], seconds: float, tick: Callable[[], None], poll: float = POLL_S) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        tick()
        time.sleep(poll)
    return predicate()


def run_chaos(
    url: str | None,
    runs: int,
    workers: int,
    kills: int,
    seed: int | None = None,
    workdir: Path | str | None = None,
    *,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """One chaos run (see the module docstring); returns its figures and the checks' findings."""
    seed = int(seed if seed is not None else time.time_ns() % 2**32)
    rng = random.Random(seed)
    temp = None
    if workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="runjournal-chaos-")
        workdir = temp.name
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{workdir / 'journal.db'}"
    try:
        return _run(url, runs, workers, kills, seed, rng, workdir, timeout)
    finally:
        if temp is not None:
            temp.cleanup()


def _run(url: str, runs: int, workers: int, kills: int, seed: int, rng: random.Random, workdir: Path,
         timeout: float) -> dict[str, Any]:
    workspace = write_workspace(workdir, url)
    journal = Journal.open(url, views_path=str(workdir / "driver.views.db"))
    fleet = Fleet(workspace, workdir, workers_views_path(url, workdir))
    kill_log: list[dict[str, Any]] = []
    try:
        start_position = journal.max_position()
        t0 = time.monotonic()
        messages: dict[str, str] = {}
        for i in range(runs):
            run = journal.submit(agent_id=AGENT, input={"message": f"m{i}"}, priority=rng.randint(0, 3),
                                 actor="chaos")
            messages[run.run_id] = f"m{i}"
        submit_s = time.monotonic() - t0
        run_ids = list(messages)
        watch = LogWatch(journal, run_ids, start_position)

        t_work = time.monotonic()
        deadline = t_work + timeout
        for _ in range(workers):
            fleet.spawn(replacement=False)

        def tick() -> None:
            fleet.replace_exited()
            fleet.observe()

        # one threshold in each of K equal slices of 2%..85% of the runs: spread, yet random
        thresholds = [runs * (0.02 + 0.83 * (i + rng.random()) / kills) for i in range(kills)]
        mode = "busy"
        while len(kill_log) < kills and time.monotonic() < deadline:
            startup_s, catch_up_s = fleet.estimates()
            grew: bool | None = None
            victim = max(fleet.alive(), key=lambda w: w.started)  # the newest: for the start-up modes
            if mode != "busy" and victim.recovered():
                mode = "busy"  # it started faster than thought: nothing left of its start-up to hit
            if mode == "startup":  # anywhere in start-up: imports, opening the store, catch-up, recovery
                moment = victim.started + rng.uniform(0.05, 0.95) * startup_s
                _wait(lambda m=moment, v=victim: time.monotonic() >= m or v.recovered(),
                      max(0.0, moment - time.monotonic()), tick)
            elif mode == "catch-up":  # once it has the views file open: catching up, then recovering
                _wait(lambda v=victim: v.opened_views() or v.recovered() or not v.alive(),
                      3 * startup_s + 5, tick, poll=0.001)
                time.sleep(rng.uniform(0, 1) * catch_up_s)
            else:
                target = thresholds[len(kill_log)]
                _wait(lambda t=target: runs - watch.poll() >= t or time.monotonic() >= deadline,
                      max(0.0, deadline - time.monotonic()), tick)
                head = watch.log_head()
                grew = _wait(lambda h=head: watch.log_head() > h, GROWTH_WAIT_S if watch.pending else 0.1, tick)
                time.sleep(rng.uniform(0, BUSY_DELAY_S))
                tick()
                working = [w for w in fleet.alive() if w.recovered()]  # past start-up: claiming and saving
                victim = rng.choice(working or fleet.alive())
            held = sum(1 for lease in journal.leases() if lease.worker_id == victim.worker_id)
            recovered, views_open = victim.recovered(), victim.opened_views()
            uptime = time.monotonic() - victim.started
            position = watch.log_head()
            interrupted = fleet.kill(victim)
            left = watch.poll()
            kill_log.append({
                "mode": mode, "worker_id": victim.worker_id, "uptime_s": round(uptime, 3),
                "views_open": views_open, "past_startup": recovered, "leases_held": held,
                "log_grew_before": grew, "log_position": position, "runs_left": left,
                "interrupted": interrupted, "t_s": round(time.monotonic() - t_work, 3),
            })
            fleet.spawn()
            fresh = rng.random() < FRESH_KILL_CHANCE and left > FRESH_KILL_MIN_LEFT * runs
            mode = rng.choice(("startup", "catch-up")) if fresh else "busy"

        timed_out = not _wait(lambda: watch.poll() == 0, max(0.0, deadline - time.monotonic()), tick)
        work_s = time.monotonic() - t_work
        startup_times, catch_up_times = fleet.timings()
        fleet.stop()
    finally:
        fleet.stop()
        journal.close()

    checks = check_store(url, run_ids, messages, workdir)
    problems = list(checks["problems"])
    if timed_out:
        problems.insert(0, f"timed out after {timeout:g} s with {len(watch.pending)} runs not terminal")
    modes = Counter(k["mode"] for k in kill_log)
    result: dict[str, Any] = {
        "store": url.split(":", 1)[0],
        "url": redact(url),
        "seed": seed,
        "runs": runs,
        "workers": workers,
        "kills_requested": kills,
        "kills_done": sum(k["interrupted"] for k in kill_log),
        "kills_busy": modes["busy"],
        "kills_startup": modes["startup"],
        "kills_catch_up": modes["catch-up"],
        "kills_before_recovered": sum(not k["past_startup"] for k in kill_log),
        "kills_with_views_open_before_recovered": sum(k["views_open"] and not k["past_startup"] for k in kill_log),
        "kills_while_runs_left": sum(k["runs_left"] > 0 for k in kill_log),
        "kills_holding_leases": sum(k["leases_held"] > 0 for k in kill_log),
        "workers_spawned": fleet.spawned,
        "unexpected_exits": fleet.unexpected_exits,
        "submit_seconds": round(submit_s, 3),
        "wall_seconds": round(work_s, 3),
        "runs_per_second": round(runs / work_s, 1) if work_s else 0.0,
        "median_worker_startup_seconds": round(statistics.median(startup_times), 3) if startup_times else None,
        "median_worker_catch_up_and_recovery_seconds":
            round(statistics.median(catch_up_times), 3) if catch_up_times else None,
        "timed_out": timed_out,
        **{k: v for k, v in checks.items() if k not in ("problems", "n_problems")},
        "kills": kill_log,
        "problems": problems,
        "n_problems": checks["n_problems"] + int(timed_out),
    }
    result["invariants"] = invariants(result)
    result["ok"] = all(result["invariants"].values())
    return result


def invariants(result: dict[str, Any]) -> dict[str, bool]:
    """The named invariants, each true or false (the problems list says why)."""
    problems = result["problems"]

    def none_like(*words: str) -> bool:
        return not any(any(w in p for w in words) for p in problems)

    return {
        "every_run_terminal": result["not_terminal"] == 0 and not result["timed_out"],
        "one_terminal_event_per_run": none_like("terminal events", "Completed events"),
        "completed_output_is_its_own": none_like("completed with output"),
        "one_claim_per_epoch": none_like("claimed twice", "claim of epoch"),
        "one_start_per_epoch": none_like("Started/Resumed in epoch"),
        "started_by_the_claiming_worker": none_like("claimed by"),
        "fencing_held": none_like("(fencing)", "LeaseExpired of epoch"),
        "failures_only_documented": none_like("failed:"),
        "inline_views_released": none_like("inline queue", "holding leases"),
        "verify_ok": result["verify"]["ok"],
        "views_equal_rebuild": result["views"]["ok"],
        "kills_done": result["kills_done"] == result["kills_requested"],
        "no_worker_exited_by_itself": not result["unexpected_exits"],
    }


def summary(result: dict[str, Any]) -> str:
    """The figures and findings of a chaos run, for a terminal."""
    r = result
    tables = ", ".join(f"{t} {v['rows']}" for t, v in r["views"]["tables"].items())
    lines = [
        (f"chaos on {r['url']}: {r['runs']} runs, {r['workers']} workers, "
         f"{r['kills_done']}/{r['kills_requested']} kills, seed {r['seed']}"),
        (f"  kills: {r['kills_busy']} busy, {r['kills_startup']} in start-up, {r['kills_catch_up']} in catch-up; "
         f"{r['kills_before_recovered']} before the worker's recovery finished "
         f"({r['kills_with_views_open_before_recovered']} with the views file open), "
         f"{r['kills_while_runs_left']} while runs were left, {r['kills_holding_leases']} holding leases"),
        (f"  {r['wall_seconds']} s ({r['runs_per_second']} runs/s), submit {r['submit_seconds']} s, "
         f"worker start-up ~{r['median_worker_startup_seconds']} s "
         f"(views open -> recovered ~{r['median_worker_catch_up_and_recovery_seconds']} s), "
         f"{r['workers_spawned']} workers spawned"),
        (f"  completed {r['completed']}, failed {r['failed']}, cancelled {r['cancelled']}, "
         f"not terminal {r['not_terminal']}; failures {r['failure_reasons'] or 'none'}"),
        (f"  {r['lease_expired_events']} LeaseExpired, {r['claims']} claims, {r['starts']} starts, "
         f"{r['replays']} replays (startup-running-recovery), log head at {r['log_head_position']}"),
        (f"  verify ok: {r['verify']['ok']} ({r['verify']['events_checked']} events); "
         f"views equal a clean rebuild: {r['views']['ok']} ({tables})"),
        f"  unexpected worker exits: {len(r['unexpected_exits'])}",
    ]
    lines += [f"  [{'ok' if held else 'FAILED'}] {name}" for name, held in r["invariants"].items()]
    lines += [f"  problem: {problem}" for problem in r["problems"][:20]]
    lines.append("OK" if r["ok"] else f"FAILED ({r['n_problems']} problems)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--store", default=None, help="store URL (default: a SQLite file in the work directory)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the work phase")
    parser.add_argument("--label", default=None, help="write bench/results/chaos-LABEL.json")
    parser.add_argument("--out", default=None, help="results file (overrides --label)")
    parser.add_argument("--keep", default=None, help="use (and keep) this work directory")
    args = parser.parse_args(argv)
    result = run_chaos(args.store, args.runs, args.workers, args.kills, args.seed, args.keep, timeout=args.timeout)
    print(summary(result))
    out = Path(args.out) if args.out else RESULTS_DIR / (f"chaos-{args.label}.json" if args.label else "chaos.json")
    write_results(out, BENCH, result)
    print(f"wrote {out}")
    if not result["ok"]:
        print(json.dumps(result["offending_histories"], indent=1, default=str)[:20000], file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
