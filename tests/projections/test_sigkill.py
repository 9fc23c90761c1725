"""SIGKILL during catch-up: a killed and restarted follower ends with exactly a clean rebuild's views.

A SQLite log of 50,000 events (every kind of run life: completed, approved,
edited, rejected, withdrawn, cancelled, failed, lease-expired, still waiting,
over a few hundred threads) is caught up by a child process into its own views
file. The parent SIGKILLs the child three times at random moments (two of them
guaranteed to land after the child has committed pages of this round and before
the end) and restarts it each time; a last child finishes. The views it leaves
must equal, row for row, a clean catch-up into a fresh file, with every
projection at the log's last position: no page lost, none applied twice.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from runjournal.domain import Run

from bench.common import Ticker
from bench.lives import save_in_phases
from runjournal import Journal

EVENTS = 50_000
BATCH = 200  # runs per batch; each batch is saved in three transactions (one per phase)
VIEWS = {  # table -> primary key
    "runs": "run_id",
    "threads": "thread_id",
    "approvals": "approval_id",
    "recovery_intents": "run_id",
    "messages": "position",
    "run_facts": "position",
    "_run_index": "run_id",  # the runner's own index, compared too
    "_refused_runs": "run_id",  # and its record of refused runs (empty: nothing is forged)
}
EMPTY = {"_refused_runs"}
CHILD = Path(__file__).with_name("_catch_up_child.py")
REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 120.0
# The child's catch-up: two pages per views transaction, so kills land inside multi-page
# transactions and between them, and the 50,000-event log takes ten commits.
PAGE_EVENTS, TRANSACTION_EVENTS = 2_500, 5_000


# -- building the log (the journal's batched save path) ------------------------------------------




Phase = Callable[[Run, Ticker], None]

W = "w1"


def _claim(run: Run, t: Ticker, *, lease: float = 30.0) -> int:
    now = t()
    return run.dequeue(worker_id=W, lease_expires_at=now + timedelta(seconds=lease), now=now)


def _claim_only(run: Run, t: Ticker) -> None:
    _claim(run, t)


def _claim_start(run: Run, t: Ticker) -> None:
    epoch = _claim(run, t)
    run.start(worker_id=W, epoch=epoch, now=t())


def _claim_start_ask(run: Run, t: Ticker) -> None:
    _claim_start(run, t)
    run.request_approval(worker_id=W, epoch=run.epoch, tool_name="deploy", tool_args={"env": "prod"},
                         tool_call_id=f"call-{run.run_id[:8]}", content={"text": "may I deploy?"},
                         checkpoint_ref=f"ckpt-{run.run_id[:8]}", now=t())


def _resolve(decision: str) -> Phase:
    def resolve(run: Run, t: Ticker) -> None:
        assert run.pending_approval is not None
        edits = {"env": "staging"} if decision == "edit" else None
        run.resolve_approval(approval_id=run.pending_approval["approval_id"], decision=decision, edits=edits,
                             actor="alice", now=t())
    return resolve


def _then(*phases: Phase) -> Phase:
    def both(run: Run, t: Ticker) -> None:
        for phase in phases:
            phase(run, t)
    return both


def _complete(run: Run, t: Ticker) -> None:
    run.complete(worker_id=W, epoch=run.epoch, output={"text": f"done {run.run_id[:8]}"}, now=t())


def _steps(run: Run, t: Ticker) -> None:
    run.record_step(worker_id=W, epoch=run.epoch, kind="message", content={"text": "thinking aloud"}, now=t())
    run.record_step(worker_id=W, epoch=run.epoch, kind="tool_result", content={"rows": 3}, now=t())


def _resume(run: Run, t: Ticker) -> None:
    epoch = _claim(run, t)
    run.resume(worker_id=W, epoch=epoch, now=t())


def _worker_fail(run: Run, t: Ticker) -> None:
    run.fail(error="tool crashed", actor=f"worker:{W}", now=t(), worker=(W, run.epoch))


def _operator_fail(run: Run, t: Ticker) -> None:
    run.fail(error="operator gave up", actor="bob", now=t())


def _cancel(run: Run, t: Ticker) -> None:
    run.cancel(reason="not needed", actor="bob", now=t())


def _request_cancel(run: Run, t: Ticker) -> None:
    run.request_cancel(reason="stop please", actor="bob", now=t())


def _finish_cancel(run: Run, t: Ticker) -> None:
    run.finish_cancel(worker_id=W, epoch=run.epoch, now=t())


def _claim_expiring(run: Run, t: Ticker) -> None:
    _claim(run, t, lease=0)


def _claim_start_expiring(run: Run, t: Ticker) -> None:
    epoch = _claim(run, t, lease=0)
    run.start(worker_id=W, epoch=epoch, now=t())


def _expire(can_replay: bool) -> Phase:
    def expire(run: Run, t: Ticker) -> None:
        run.expire_lease(now=t(), can_replay=can_replay)
    return expire


def _recover(run: Run, t: Ticker) -> None:
    run.attempt_recovery(resume_kind="startup-recovery", now=t())


# name -> (events, weight, phases after submit). Phases run across separate saves, so
# one run's events are spread over the log and pages, interleaved with other runs'.
LIVES: dict[str, tuple[int, int, tuple[Phase, ...]]] = {
    "completed": (5, 30, (_claim_start, _complete)),
    "completed_with_steps": (7, 20, (_then(_claim_start, _steps), _complete)),
    "approved": (9, 6, (_claim_start_ask, _then(_resolve("approve"), _resume, _complete))),
    "edited_resuming": (6, 3, (_claim_start_ask, _resolve("edit"))),
    "rejected_failed": (7, 3, (_claim_start_ask, _then(_resolve("reject"), _operator_fail))),
    "withdrawn_cancel": (6, 3, (_claim_start_ask, _cancel)),
    "withdrawn_fail": (6, 3, (_claim_start_ask, _operator_fail)),
    "waiting": (5, 3, (_claim_start_ask,)),
    "failed": (5, 6, (_claim_start, _worker_fail)),
    "cancelled_queued": (3, 5, (_cancel,)),
    "cancelling": (5, 2, (_claim_start, _request_cancel)),
    "cancelled_by_worker": (6, 3, (_claim_start, _then(_request_cancel, _finish_cancel))),
    "expired_requeued": (5, 2, (_claim_expiring, _then(_expire(False), _recover))),
    "expired_failed": (5, 2, (_claim_start_expiring, _expire(False))),
    "expired_replaying": (5, 2, (_claim_start_expiring, _expire(True))),
    "claimed": (3, 2, (_claim_only,)),
    "running": (4, 2, (_claim_start,)),
    "queued": (2, 2, ()),
}
MAX_LIFE = max(events for events, _, _ in LIVES.values())


def pick_lives(total: int, rng: random.Random) -> list[str]:
    """Run lives whose events add up to exactly ``total``."""
    names = list(LIVES)
    weights = [LIVES[n][1] for n in names]
    lives, remaining = [], total
    while remaining > MAX_LIFE + 3:
        life = rng.choices(names, weights)[0]
        lives.append(life)
        remaining -= LIVES[life][0]
    if remaining % 2:
        lives.append("cancelled_queued")
        remaining -= 3
    lives += ["queued"] * (remaining // 2)
    return lives


def build_log(url: str, total: int, *, seed: int = 7) -> int:
    """Write a log of exactly ``total`` events through the journal's batched save; returns its max position."""
    rng = random.Random(seed)
    t = Ticker()
    journal = Journal.open(url)
    try:
        lives = pick_lives(total, rng)
        for start in range(0, len(lives), BATCH):
            batch = lives[start : start + BATCH]
            runs = [
                Run.submit(
                    run_id=UUID(int=rng.getrandbits(128)), thread_id=f"thread-{rng.randrange(300):03d}",
                    agent_id=f"agent-{n % 5}", input={"message": f"request {n} ({life})"}, priority=n % 3,
                    idempotency_key=None, actor="bench", now=t(),
                )
                for n, life in enumerate(batch, start)
            ]
            save_in_phases(journal, runs, [LIVES[life][2] for life in batch], t)
        return journal.max_position()
    finally:
        journal.close()


# -- watching and killing the child ---------------------------------------------------------------


def tracked_positions(views: Path) -> dict[str, int]:
    """The tracking table of a views file as another process sees it ({} before it exists)."""
    if not views.exists():
        return {}
    try:
        conn = sqlite3.connect(views, timeout=5)
        try:
            return dict(conn.execute("SELECT name, position FROM _projection_tracking").fetchall())
        finally:
            conn.close()
    except sqlite3.OperationalError:  # no table yet, or caught mid-schema
        return {}


def low_water(views: Path) -> int:
    """The lowest position of any projection in the views file (0 when none is tracked)."""
    return min(tracked_positions(views).values(), default=0)


def spawn(url: str, views: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), url, str(views), str(PAGE_EVENTS), str(TRANSACTION_EVENTS)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until(predicate: Callable[[], bool], child: subprocess.Popen[str], timeout: float = CHILD_TIMEOUT) -> bool:
    """Poll until ``predicate`` holds (True) or the child has exited (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if child.poll() is not None:
            return predicate()
        time.sleep(0.002)
    raise AssertionError("the catch-up child made no progress in time")


def kill(child: subprocess.Popen[str]) -> bool:
    """SIGKILL the child; True when it was still running (the kill really interrupted it).

    A child that ended by itself before the kill must have succeeded.
    """
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    _, err = child.communicate(timeout=CHILD_TIMEOUT)
    assert child.returncode in (0, -signal.SIGKILL), f"the catch-up child failed (exit {child.returncode}):\n{err}"
    return child.returncode == -signal.SIGKILL


def kill_mid_catch_up(url: str, views: Path, max_position: int, rng: random.Random) -> dict[str, Any]:
    """Start a child and kill it at a random moment while it is catching up.

    A random target position is drawn in the first half of what is left to do
    (so later children have work left to be killed in); once the child has
    committed past it, the kill comes after a further random delay of up to one
    transaction's processing time (timed from the child's own progress), so it may land
    anywhere inside the page being applied, or between pages.
    """
    before = low_water(views)
    target = rng.randint(before + 1, before + (max_position - before) // 2)
    launched = time.monotonic()
    child = spawn(url, views)
    wait_until(lambda: low_water(views) > before, child)
    first, t_first = low_water(views), time.monotonic()
    wait_until(lambda: low_water(views) >= target, child)
    reached, t_reached = low_water(views), time.monotonic()
    page_s = (t_reached - t_first) * TRANSACTION_EVENTS / (reached - first) if reached > first else 0.05
    delay = rng.uniform(0, page_s)
    time.sleep(delay)
    interrupted = kill(child)
    return {"mode": "mid", "from": before, "target": target, "at": low_water(views), "interrupted": interrupted,
            "startup_s": round(t_first - launched, 3), "page_s": round(page_s, 4), "delay_s": round(delay, 4)}


def kill_any_moment(url: str, views: Path, max_position: int, rng: random.Random, startup_s: float) -> dict[str, Any]:
    """Start a child and kill it after a random delay from launch: in start-up, schema set-up or catch-up.

    The delay is drawn within twice the start-up time seen before; the kill comes
    sooner if the child gets through half of what is left to do.
    """
    before = low_water(views)
    cap = before + (max_position - before) // 2
    delay = rng.uniform(0, 2 * startup_s)
    child = spawn(url, views)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and child.poll() is None and low_water(views) < cap:
        time.sleep(0.002)
    interrupted = kill(child)
    return {"mode": "any", "from": before, "at": low_water(views), "interrupted": interrupted,
            "delay_s": round(delay, 3)}


# -- comparing views -------------------------------------------------------------------------------


def table_dump(views: Path, table: str, pk: str) -> tuple[list[str], list[tuple[object, ...]]]:
    conn = sqlite3.connect(views)
    try:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        return columns, conn.execute(f'SELECT * FROM "{table}" ORDER BY "{pk}"').fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkilled_catch_up_ends_equal_to_a_clean_rebuild(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    max_position = build_log(url, EVENTS)
    assert max_position == EVENTS

    seed = int(os.environ.get("RUNJOURNAL_SIGKILL_SEED", time.time_ns()))  # set it to replay a failure
    rng = random.Random(seed)
    views = tmp_path / "killed.views.db"

    # Kills 1 and 3 land mid catch-up for sure; kill 2 may land anywhere from launch on.
    kills = [kill_mid_catch_up(url, views, max_position, rng)]
    kills.append(kill_any_moment(url, views, max_position, rng, kills[0]["startup_s"]))
    kills.append(kill_mid_catch_up(url, views, max_position, rng))
    context = f"RUNJOURNAL_SIGKILL_SEED={seed}, kills: {kills}"
    print(context)

    mid = [k for k in kills if k["mode"] == "mid" and k["interrupted"] and k["from"] < k["at"] < max_position]
    assert len(mid) == 2, f"expected two kills mid catch-up; {context}"
    assert kills[1]["interrupted"], context

    final = spawn(url, views)
    out, err = final.communicate(timeout=CHILD_TIMEOUT)
    assert final.returncode == 0, f"the last child failed; {context}\n{err}"
    assert out.split()[0] == "done"

    clean = tmp_path / "clean.views.db"
    with Journal.open(url, views_path=str(clean)) as journal:
        assert journal.catch_up() == max_position
        assert journal.runner.positions() == dict.fromkeys(VIEWS, max_position)
    with Journal.open(url, views_path=str(views)) as journal:
        assert journal.max_position() == max_position
        assert journal.runner.positions() == dict.fromkeys(VIEWS, max_position), context

    conn = sqlite3.connect(clean)
    try:  # the log reaches every corner the views distinguish
        states = {s for (s,) in conn.execute("SELECT DISTINCT state FROM runs")}
        assert states == {"queued", "claimed", "running", "waiting_for_approval", "resuming", "cancelling",
                          "completed", "failed", "cancelled"}
        statuses = {s for (s,) in conn.execute("SELECT DISTINCT status FROM approvals")}
        assert statuses == {"pending", "approved", "edited", "rejected", "withdrawn"}
        assert conn.execute("SELECT COUNT(*) FROM threads").fetchone()[0] == 300
    finally:
        conn.close()
    conn = sqlite3.connect(views)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    for table, pk in VIEWS.items():
        killed_columns, killed_rows = table_dump(views, table, pk)
        clean_columns, clean_rows = table_dump(clean, table, pk)
        assert clean_rows or table in EMPTY, f"view {table} is empty: the log should give every view rows"
        assert killed_columns == clean_columns, table
        assert len(killed_rows) == len(clean_rows), f"{table}: {len(killed_rows)} rows, clean has {len(clean_rows)}"
        for killed_row, clean_row in zip(killed_rows, clean_rows, strict=True):
            assert killed_row == clean_row, f"{table} differs from a clean rebuild; {context}"
