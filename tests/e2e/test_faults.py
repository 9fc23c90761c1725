"""Store faults from outside the process: a failing disk, a full disk, a lock, a server outage, a read-only disk.

Each fault hits real CLI processes on a real store. The command must not hang, must say in
one line (no traceback) which store failed and why (the causes of docs/operations.md,
"What can go wrong"), and must leave nothing half-written. Afterwards every run ends
exactly once (one terminal event, one ``Completed`` with its own output, no version gap,
fencing held; see ``bench/chaos.py``'s ``check_history``) and ``runjournal verify`` passes.

- ``strace -e inject=...`` fails one syscall of one commit: ``fdatasync`` (SQLite's sync
  here, in WAL mode: ``fsync`` is not used) with EIO, ``pwrite64`` with ENOSPC. The
  invocation number is found by a calibration run of the same command on an identical
  store, traced with its transition log lines. A fault for good (``when=N+``) outlasts
  ``store_outage_seconds`` (1 s here): the command exits 1 with the one line. A fault once
  (``when=N``) is backed off and the run goes on.
- a 2 MiB tmpfs filled with runs: ``disk full``; space freed, the runs finish.
- a ``BEGIN EXCLUSIVE`` held longer than ``?lock_wait=2``: ``locked by another process``; a
  running worker keeps its leases and goes on.
- a throwaway PostgreSQL cluster stopped with ``-m immediate`` mid-run and started again:
  the workers back off and go on.
- a tmpfs remounted read-only: write verbs say ``read-only``; read verbs still read.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.chaos import AGENT, TERMINAL
from runjournal import Journal, StoreUnavailable

from .faults_helpers import (
    Calls,
    assert_every_run_ended_once,
    assert_one_line_error,
    calibrate,
    finish_with_clean_workers,
    human_lines,
    inject,
    logs_of,
    postgres_cluster,
    remount,
    rj,
    spawn,
    states,
    stop,
    strace_or_skip,
    submit,
    tmpfs,
    write_workspace,
)


def all_runs(url: str, workdir: Path) -> dict[str, str]:
    """Every run in the store: run id -> message."""
    with Journal.open(url, views_path=str(workdir / "driver.views.db")) as journal:
        ids = [str(n.originator_id) for page in journal.notifications(0) for n in page
               if n.topic.split(".")[-2] == "Created"]
        return {r: journal.get_run(r).input["message"] for r in ids}


def log_head(url: str, workdir: Path) -> int:
    with Journal.open(url, views_path=str(workdir / "driver.views.db")) as journal:
        return journal.max_position()


# -- 1, 2: a syscall of one commit fails ---------------------------------------------------------

# (syscall, errno, cause, verb, the commit hit (its first event), for good or once, the command ends in error)
INJECTIONS = {
    "EIO-on-the-claim-worker-for-good": ("fdatasync", "EIO", "I/O error", "worker", "Dequeued", True, True),
    # a refused step waits, backed off, and is saved once the store takes it: the run goes on
    "EIO-on-a-step-run-wait-once": ("fdatasync", "EIO", "I/O error", "run", "StepRecorded", False, False),
    # a step the store refuses past store_outage_seconds stops the run (never recorded as failed): its
    # waiter hears of it, its lease finds it again
    "EIO-on-a-step-run-wait-for-good": ("fdatasync", "EIO", "I/O error", "run", "StepRecorded", True, True),
    # a refused Completed waits in its slot, backed off, and is saved once the store takes it
    "EIO-on-Completed-worker-once": ("fdatasync", "EIO", "I/O error", "worker", "Completed", False, False),
    "ENOSPC-on-Completed-run-wait-for-good": ("pwrite64", "ENOSPC", "disk full", "run", "Completed", True, True),
}


def prepared(root: Path, name: str, verb: str) -> tuple[Path, str]:
    """A workspace and its store, ready for the command: runs queued for a worker, an empty store for ``run``."""
    db = root / name / "j.db"
    url = f"sqlite:///{db}"
    workspace = write_workspace(root / name, url, store_outage_seconds=1.0)
    if verb == "worker":
        submit(url, root / name, 1)
    else:
        Journal.open(url, views_path=str(root / name / "driver.views.db")).close()
    return workspace, url


def verb_args(verb: str) -> list[str]:
    return ["worker", "--until-idle", "--worker-id", "wf"] if verb == "worker" else ["run", "hello", "--wait"]


@pytest.mark.parametrize("case", list(INJECTIONS))
def test_a_syscall_that_fails_in_a_commit(case: str, tmp_path: Path) -> None:
    strace_or_skip()
    syscall, error, cause, verb, event, for_good, ends_in_error = INJECTIONS[case]
    # calibration: the same command on an identical store, traced; which invocation is the commit's
    workspace, url = prepared(tmp_path, "calibration", verb)
    calls: Calls = calibrate(workspace, verb_args(verb), syscall, tmp_path / "calibration.trace")
    nth = calls.nth_of_commit(syscall, event, str(tmp_path / "calibration" / "j.db-wal"))

    workspace, url = prepared(tmp_path, "faulty", verb)
    head = log_head(url, tmp_path / "faulty")
    started = time.monotonic()
    proc = rj(workspace, *verb_args(verb), wrap=inject(syscall, error, f"{nth}+" if for_good else str(nth)))
    took = time.monotonic() - started
    context = f"injected {syscall}={error} at call {nth} ({event}), {took:.1f} s\n{proc.stdout}\n{proc.stderr[-4000:]}"
    if ends_in_error:
        line = assert_one_line_error(proc, url, cause)
        print(f"{case} ({took:.1f} s): {line}")
        with Journal.open(url, views_path=str(tmp_path / "faulty" / "driver.views.db")) as journal:
            types = [n.topic.split(".")[-2] for page in journal.notifications(head) for n in page]
        if for_good:
            # Every later sync failed too: the last refused commit's frames are still in the WAL, whole,
            # and SQLite takes them back when the store is next opened. Never acknowledged, never twice.
            assert types.count(event) <= 1, context
        else:  # the commit hit left nothing: the log holds what came before it
            assert event not in types, context
    else:  # backed off: the run goes on in the same command
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, context
        done = "1 ok, 0 failed" if verb == "worker" else ": completed"
        assert done in proc.stdout and human_lines(proc.stderr) == [], context
        assert "store unavailable, backing off" in proc.stderr, context
    messages = all_runs(url, tmp_path / "faulty")
    assert len(messages) == 1, messages
    finish_with_clean_workers(workspace, url, list(messages))
    assert_every_run_ended_once(workspace, url, messages)


# -- 3: a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_says_disk_full_and_the_runs_finish_once_space_is_freed(tmp_path: Path) -> None:
    with tmpfs("2m") as mount:
        url = f"sqlite:///{mount / 'j.db'}"
        workdir = tmp_path / "work"
        workspace = write_workspace(workdir, url, store_outage_seconds=1.0)
        Journal.open(url, views_path=str(workdir / "driver.views.db")).close()
        # leave ~320 KiB free, then fill that with runs
        filler = mount / "filler"
        free = _free_bytes(mount)
        filler.write_bytes(b"\0" * max(0, free - 320 * 1024))
        submitted = 0
        with Journal.open(url, views_path=str(workdir / "driver.views.db")) as journal:
            while True:
                before = journal.max_position()
                try:
                    journal.submit(agent_id=AGENT, input={"message": f"m{submitted}" + "x" * 3000}, actor="faults")
                except StoreUnavailable as e:
                    assert e.cause == "disk full", e
                    break
                submitted += 1
                assert submitted < 400, "the disk never filled up"
            assert journal.max_position() == before  # the refused submit left nothing
        assert submitted >= 5
        head = log_head(url, workdir)

        proc = rj(workspace, "run", "one more")
        line = assert_one_line_error(proc, str(mount / "j.db"), "disk full")
        print(f"full disk: {line}")
        assert log_head(url, workdir) == head  # nothing half-written
        with Journal.open(url, views_path=str(workdir / "driver.views.db")) as journal:
            assert journal.verify().ok

        filler.unlink()  # space is back
        messages = all_runs(url, workdir)
        assert len(messages) == submitted
        finish_with_clean_workers(workspace, url, list(messages), deadline_s=40)
        assert_every_run_ended_once(workspace, url, messages)


def _free_bytes(folder: Path) -> int:
    import os

    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


# -- 4: another process holds the write lock ---------------------------------------------------------

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""
LOCK_HELD_S = 10.0  # longer than lock_wait=2 with room for a loaded machine, shorter than the 20 s leases


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_held_lock_makes_writes_wait_then_say_locked_and_a_running_worker_goes_on(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    db = workdir / "j.db"
    url = f"sqlite:///{db}?lock_wait=2"
    workspace = write_workspace(workdir, url, sleep=0.4, lease_seconds=20, heartbeat_seconds=0.3,
                                store_outage_seconds=30)
    messages = submit(url, workdir, 12)
    worker = spawn(workspace, "worker", "--worker-id", "w1", name="w1")
    locker = None
    try:
        wait_for(lambda: "running" in states(url, workdir, list(messages)).values(), 20, "a running run")
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(LOCK_HELD_S)],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        verbs = (["run", "while locked"], ["cancel", next(iter(messages))])
        started = time.monotonic()
        with ThreadPoolExecutor(len(verbs)) as pool:  # at once: both must fit in the time the lock is held
            done = list(pool.map(lambda args: (rj(workspace, *args), time.monotonic() - started), verbs))
        for args, (proc, took) in zip(verbs, done, strict=True):
            line = assert_one_line_error(proc, str(db), "locked by another process")
            print(f"{args[0]} while locked ({took:.1f} s): {line}")
            assert took >= 1.5, f"{args[0]} did not wait for the lock: {took:.2f} s"
        # a read verb reads on meanwhile
        assert rj(workspace, "status", next(iter(messages))).returncode == 0
        assert time.monotonic() - locked_at < LOCK_HELD_S, "the lock was released before the checks: raise LOCK_HELD_S"
        assert locker.stdout.readline().strip() == "released"
        locker.wait(timeout=10)
        wait_for(lambda: set(states(url, workdir, list(messages)).values()) <= TERMINAL or worker.poll() is not None,
                 40, "every run terminal")
        assert worker.poll() is None, f"the worker died:\n{logs_of(workspace, 'w1')[-4000:]}"
    finally:
        if locker is not None and locker.poll() is None:
            locker.kill()
            locker.wait()
        stop(worker)
    worker_logs = logs_of(workspace, "w1")
    assert "Traceback" not in worker_logs, worker_logs[-4000:]
    assert len(all_runs(url, workdir)) == len(messages)  # the refused run left nothing
    # the leases held through the lock: no LeaseExpired, no version gap, each run once
    assert_every_run_ended_once(workspace, url, messages, allow_lease_expiry=False)
    some = next(iter(messages))
    for args in (["status", some], ["retry", some], ["projections", "rebuild"], ["verify"]):
        proc = rj(workspace, *args)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{args}: {proc.stdout}\n{proc.stderr}"


# -- 5: the PostgreSQL server goes away mid-run and comes back ------------------------------------------


OUTAGE_S = 7.0  # longer than the leases (4 s) and the pool's 5 s wait for a connection


def test_workers_back_off_through_a_postgres_outage_and_every_run_ends_once(tmp_path: Path) -> None:
    with postgres_cluster() as pg:
        url = pg.url
        workdir = tmp_path / "work"
        workspace = write_workspace(workdir, url, sleep=0.5, lease_seconds=4, heartbeat_seconds=0.5,
                                    store_outage_seconds=30)
        messages = submit(url, workdir, 24)
        ids = list(messages)
        workers = [spawn(workspace, "worker", "--worker-id", f"w{i}", name=f"w{i}") for i in (1, 2)]
        try:
            wait_for(lambda: sum(s in TERMINAL for s in states(url, workdir, ids).values()) >= 2, 30,
                     "two runs done")
            pg.stop("immediate")
            time.sleep(OUTAGE_S)
            pg.start()
            in_flight = [r for r, s in states(url, workdir, ids).items() if s not in TERMINAL]
            assert in_flight, "every run ended before the outage: give the runs more to do"
            wait_for(lambda: set(states(url, workdir, ids).values()) <= TERMINAL
                     or any(w.poll() is not None for w in workers), 45, "every run terminal")
            dead = [f"w{i}" for i, w in enumerate(workers, start=1) if w.poll() is not None]
            assert not dead, "\n".join(f"{d}:\n{logs_of(workspace, d)[-3000:]}" for d in dead)
        finally:
            for w in workers:
                stop(w)
        logs = {f"w{i}": logs_of(workspace, f"w{i}") for i in (1, 2)}
        for name, text in logs.items():
            assert "Traceback" not in text, f"{name}:\n{text[-4000:]}"
            # a worker whose loop died but whose process lingers did not "go on"
            assert "worker loop stopped" not in text, f"{name}:\n{text[-4000:]}"
        # Whether a call fails (and the worker backs off) or the pool waits the outage out depends on
        # timing; either way no worker may die and every run must end once. Leases (4 s) run out
        # during the outage, so renewals meet runs that were queued again meanwhile.
        print("outage met:", {name: text.count("backing off") + text.count("heartbeat refused") for name, text in logs.items()})
        assert_every_run_ended_once(workspace, url, messages)


# -- 6: a read-only disk ------------------------------------------------------------------------------


@contextmanager
def read_only_store(tmp_path: Path) -> Iterator[tuple[Path, str, Path, dict[str, str]]]:
    """A store with three completed runs on a tmpfs remounted read-only; writable again afterwards."""
    with tmpfs("8m") as mount:
        db = mount / "j.db"
        url = f"sqlite:///{db}"
        workdir = tmp_path / "work"
        workspace = write_workspace(workdir, url)
        messages = submit(url, workdir, 3)
        finish_with_clean_workers(workspace, url, list(messages))
        remount(mount, "ro")
        try:
            yield workspace, url, db, messages
        finally:
            remount(mount, "rw")
        assert len(all_runs(url, workdir)) == len(messages)  # the refused writes left nothing
        assert_every_run_ended_once(workspace, url, messages)


def test_a_read_only_store_refuses_writes_in_one_line(tmp_path: Path) -> None:
    with read_only_store(tmp_path) as (workspace, _, db, messages):
        for args in (["run", "read-only please"], ["retry", next(iter(messages))]):
            line = assert_one_line_error(rj(workspace, *args), str(db), "read-only")
            print(f"{args[0]} on a read-only disk: {line}")


def test_a_read_only_store_still_reads(tmp_path: Path) -> None:
    read_failures = []
    with read_only_store(tmp_path) as (workspace, _, _, messages):
        some = next(iter(messages))
        for args in (["status", some], ["history", some], ["verify"]):
            proc = rj(workspace, *args)
            assert "Traceback" not in proc.stderr, f"{args}: {proc.stderr}"
            if proc.returncode != 0:
                read_failures.append(f"{args[0]}: {' | '.join(human_lines(proc.stderr))}")
    assert not read_failures, read_failures