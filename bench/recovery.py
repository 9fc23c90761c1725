"""Startup recovery cost against log length: the same live runs behind 100k completed runs, and alone.

Run with ``python -m bench.recovery [--completed N] [--live M] [--repeat N] [--batch N] [--out PATH] [--profile]``.

Two SQLite stores are built with the journal's batched save (``Journal._save`` of
~500 runs per transaction, each run's life spread over a few saves so that runs
interleave in the log), with timestamps from a fixed day in the past so that
every lease has expired (and every running run is stale) when recovery runs on
the wall clock:

* A: N completed runs (Created, Queued, Dequeued, Started, Completed) with the
     M live runs spread evenly among them;
* B: only the same M live runs (same ids, same lives) in a fresh file.

The live runs are an even mix of the states recovery acts on:

* queued                 Created, Queued                          -> left for the workers
* claimed (lease expired) ... Dequeued                             -> LeaseExpired to queued
* running (stale lease)  ... Dequeued, Started                     -> LeaseExpired to queued for replay
* resuming               ... Started, ApprovalRequested, ApprovalResolved -> RecoveryAttempted
* waiting_for_approval   ... Started, ApprovalRequested             -> untouched

After building, each store's followed views are caught up once, in a fresh
subprocess (as a running system's views would be kept current by the
workers): that catch-up is timed and reported apart, it is not recovery.

Then, for each store and each repeat, the store and views files are copied
(so every attempt starts from the same state) and, in a fresh subprocess that
opens the copy (store + views: nothing cached in memory, peak RSS per case),
``await Harness(journal, workspace).recover()`` is timed; the agent is a
scripted one that supports replay. Opening is reported apart as ``open_s``.
After the timing the child checks, from the journal, that exactly the expected
transitions were appended (and only to live runs), that no completed run was
touched, and that the inline queue/leases and the recovery_intents view are as
expected; the bench fails if not.

The aim: recovery on A within 2x of recovery on B (its cost follows the live
runs, not the log). When it is missed (or with ``--profile``) recovery on A is
run once more under cProfile, in its own subprocess, and the top functions are
printed; profiled timings are not recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from runjournal.domain import Run

from runjournal import Journal
from runjournal.config.workspace import Workspace
from runjournal.runtime.harness import Harness

from .common import (
    RESULTS_DIR,
    Ticker,
    child_case,
    fresh_dir,
    peak_rss_mb,
    profile_tables,
    rate,
    timer,
    write_results,
)
from .lives import Steps, both, save_in_phases

BENCH = "recovery"
DEFAULT_COMPLETED = 100_000
DEFAULT_LIVE = 1_000
BATCH = 500
AIM_RATIO = 2.0
PROFILE_TOP = 25
REPO = Path(__file__).resolve().parent.parent
AGENT = "replayer"
W = "w-crashed"
LEASE = timedelta(seconds=30)
COMPLETED_SAMPLE = 50

# -- building the logs --------------------------------------------------------------------------------




STEPS = Steps(worker=W, lease=LEASE)


# A run's life: name -> (state it is left in, phases after submit's Created + Queued). Each phase
# of a batch is saved in its own transaction, so a run's events spread over the log.
LIVES: dict[str, tuple[str, tuple[Callable[[Run, Ticker], None], ...]]] = {
    "completed": ("completed", (STEPS.claim_start, STEPS.complete)),
    "queued": ("queued", ()),
    "claimed_expired": ("claimed", (STEPS.claim,)),
    "running_stale": ("running", (STEPS.claim_start,)),
    "resuming": ("resuming", (both(STEPS.claim_start, STEPS.ask), STEPS.approve)),
    "waiting_for_approval": ("waiting_for_approval", (both(STEPS.claim_start, STEPS.ask),)),
}
LIVE_KINDS = tuple(k for k in LIVES if k != "completed")

# What one recovery pass must append to each kind of live run (event type, LeaseExpired's to_state).
EXPECTED: dict[str, list[tuple[str, str | None]]] = {
    "queued": [],
    "claimed_expired": [("LeaseExpired", "queued")],
    "running_stale": [("LeaseExpired", "queued")],
    "resuming": [("RecoveryAttempted", None)],
    "waiting_for_approval": [],
}
# The state each kind is in after recovery.
AFTER: dict[str, str] = {
    "queued": "queued", "claimed_expired": "queued", "running_stale": "queued",
    "resuming": "resuming", "waiting_for_approval": "waiting_for_approval",
}


def live_runs(live: int, seed: int) -> list[tuple[UUID, str]]:
    """The M live runs, the same for both stores: (run id, kind), kinds in an even round-robin mix."""
    rng = random.Random(seed)
    return [(UUID(int=rng.getrandbits(128)), LIVE_KINDS[i % len(LIVE_KINDS)]) for i in range(live)]


def build_store(url: str, completed: int, lives: list[tuple[UUID, str]], *, batch: int, seed: int) -> dict[str, Any]:
    """Write ``completed`` completed runs with the live runs spread evenly among them; returns counts."""
    rng = random.Random(seed + 1)
    t = Ticker()
    items: list[tuple[UUID, str]] = []
    if completed:
        # spread the live runs evenly among the completed ones
        every = completed / max(1, len(lives))
        next_live, li = every / 2, 0
        for n in range(completed):
            while li < len(lives) and n >= next_live:
                items.append(lives[li])
                li += 1
                next_live += every
            items.append((UUID(int=rng.getrandbits(128)), "completed"))
        items.extend(lives[li:])
    else:
        items = list(lives)
    completed_ids = [str(i) for i, kind in items if kind == "completed"]
    journal = Journal.open(url)
    try:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            runs = [
                Run.submit(run_id=run_id, thread_id=f"thread-{run_id.int % 997}", agent_id=AGENT,
                           input={"message": f"request {n}"}, priority=n % 3, idempotency_key=None,
                           actor="bench", now=t())
                for n, (run_id, _) in enumerate(chunk, start)
            ]
            save_in_phases(journal, runs, [LIVES[kind][1] for _, kind in chunk], t)
            for run, (_, kind) in zip(runs, chunk, strict=True):
                if run.state != LIVES[kind][0]:
                    raise RuntimeError(f"built run {run.run_id} is {run.state}, expected {LIVES[kind][0]}")
        end = journal.max_position()
    finally:
        journal.close()
    sample = random.Random(seed + 2).sample(completed_ids, min(COMPLETED_SAMPLE, len(completed_ids)))
    return {"events": end, "runs": len(items), "completed_sample": sample}


def files_of(db: Path) -> list[Path]:
    """A SQLite file and its WAL / shared-memory companions, where they exist."""
    return [p for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()]


def copy_store(src_dir: Path, dst_dir: Path) -> None:
    """Copy a built store and its views (closed, so consistent) to a fresh directory."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in ("journal.db", "journal.views.db"):
        for f in files_of(src_dir / name):
            shutil.copyfile(f, dst_dir / f.name)


# -- the measured cases (each in its own subprocess) ---------------------------------------------------


def workspace() -> Workspace:
    """One scripted agent that supports replay (what the live runs were submitted to)."""
    return Workspace.from_dict({
        "agents": {AGENT: {"adapter": "scripted", "script": [{"say": "ok"}], "supports_replay": True}},
    })


def vm_hwm_mb() -> float | None:
    """Peak RSS of this process's own address space (Linux VmHWM), unaffected by the parent it forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _urls(store_dir: str) -> tuple[str, str]:
    d = Path(store_dir)
    return f"sqlite:///{d / 'journal.db'}", str(d / "journal.views.db")


def case_build(store_dir: str, completed: int, live: int, batch: int, seed: int) -> dict[str, Any]:
    """Build one store (completed runs + the live runs) and write its spec file beside it."""
    lives = live_runs(live, seed)
    store = Path(store_dir)
    with timer() as built:
        info = build_store(f"sqlite:///{store / 'journal.db'}", completed, lives, batch=batch, seed=seed)
    spec: dict[str, Any] = {"completed": completed, "completed_sample": info["completed_sample"], "live": {}}
    for run_id, kind in lives:
        spec["live"].setdefault(kind, []).append(str(run_id))
    (store.parent / f"{store.name}.spec.json").write_text(json.dumps(spec))
    return {"events": info["events"], "runs": info["runs"], "seconds": round(built.seconds, 2),
            "peak_rss_mb": peak_rss_mb(), "vm_hwm_mb": vm_hwm_mb()}


def case_catch_up(store_dir: str) -> dict[str, Any]:
    """Catch the followed views of a freshly built store up from zero (what the workers would have done)."""
    url, views = _urls(store_dir)
    journal = Journal.open(url, views_path=views)
    with timer() as setup:
        runner = journal.runner
    with timer() as t:
        events = journal.catch_up()
    end = journal.max_position()
    positions = runner.positions()
    journal.close()
    if events != end or set(positions.values()) != {end}:
        raise RuntimeError(f"catch-up read {events} events, positions {positions}, log ends at {end}")
    return {"events": events, "seconds": round(t.seconds, 4), "events_per_s": rate(events, t.seconds),
            "setup_s": round(setup.seconds, 4), "peak_rss_mb": peak_rss_mb(), "vm_hwm_mb": vm_hwm_mb()}


def _open(store_dir: str) -> tuple[Journal, Harness]:
    url, views = _urls(store_dir)
    journal = Journal.open(url, views_path=views)
    return journal, Harness(journal, workspace(), worker_id="bench-recovery")


def case_recover(store_dir: str, spec_path: str) -> dict[str, Any]:
    """Open the store + views, time ``recover()``, then check what it appended."""
    rss_start = peak_rss_mb()
    with timer() as opened:
        journal, harness = _open(store_dir)
    before = journal.max_position()
    rss_before = peak_rss_mb()
    with timer() as t:
        report = asyncio.run(harness.recover())
    rss_peak, hwm = peak_rss_mb(), vm_hwm_mb()
    checks = verify(journal, before, report, json.loads(Path(spec_path).read_text()))
    journal.close()
    return {"seconds": round(t.seconds, 4), "open_s": round(opened.seconds, 4),
            "log_events_before": before, "appended": checks["appended"],
            "report": {"expired": len(report.expired), "resumed": len(report.resumed),
                       "failed": len(report.failed), "left": report.left},
            "rss_start_mb": rss_start, "rss_before_mb": rss_before, "peak_rss_mb": rss_peak,
            "vm_hwm_mb": hwm, "checks": checks}


def verify(journal: Journal, before: int, report: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Count from the journal what recovery appended; raise if it is not exactly what is expected."""
    problems: list[str] = []
    kind_of: dict[str, str] = {run_id: kind for kind, ids in spec["live"].items() for run_id in ids}
    to_domain = journal._store.mapper.to_domain_event
    appended: dict[str, list[tuple[str, str | None]]] = {}
    by_type: Counter[str] = Counter()
    for page in journal.notifications(before):
        for n in page:
            event = to_domain(n)
            run_id, etype = str(event.originator_id), type(event).__name__
            appended.setdefault(run_id, []).append((etype, getattr(event, "to_state", None)))
            by_type[f"{etype}->{event.to_state}" if etype == "LeaseExpired" else etype] += 1
            if etype == "LeaseExpired" and kind_of.get(run_id) == "running_stale" and \
                    event.resume_kind != "startup-running-recovery":
                problems.append(f"stale running run {run_id} requeued with resume_kind {event.resume_kind!r}")
    outsiders = [r for r in appended if r not in kind_of]
    if outsiders:
        problems.append(f"recovery appended to {len(outsiders)} runs that are not live (e.g. {outsiders[0]})")
    per_kind: dict[str, Counter[str]] = {}
    for run_id, kind in kind_of.items():
        got = appended.get(run_id, [])
        per_kind.setdefault(kind, Counter())["ok" if got == EXPECTED[kind] else "wrong"] += 1
        if got != EXPECTED[kind] and len(problems) < 10:
            problems.append(f"{kind} run {run_id}: appended {got}, expected {EXPECTED[kind]}")
    # states after recovery, from the store (fresh loads, not the journal's cache)
    states: Counter[str] = Counter()
    for run_id, kind in kind_of.items():
        state = journal.get_run(run_id).state
        states[f"{kind}:{state}"] += 1
        if state != AFTER[kind] and len(problems) < 20:
            problems.append(f"{kind} run {run_id} is {state} after recovery, expected {AFTER[kind]}")
    # completed runs untouched: a sample's full history, plus nothing appended to any of them above
    for run_id in spec["completed_sample"]:
        history = journal.history(run_id)
        types = [e.type for e in history]
        if types != ["Created", "Queued", "Dequeued", "Started", "Completed"]:
            problems.append(f"completed run {run_id} has history {types}")
    # inline views and the recovery_intents view
    leases = journal.leases()
    queue = journal.queue()
    live = len(kind_of)
    claimable = sum(1 for k in kind_of.values() if AFTER[k] in ("queued", "resuming"))
    if leases:
        problems.append(f"{len(leases)} leases left after recovery")
    if len(queue) != claimable or any(q.run_id not in kind_of for q in queue):
        problems.append(f"queue has {len(queue)} claimable rows, expected {claimable} live ones")
    journal.catch_up()
    intents = journal.runner.db.execute("SELECT state, COUNT(*) FROM recovery_intents GROUP BY state").fetchall()
    intents_by_state = dict(intents)
    if sum(intents_by_state.values()) != live:
        problems.append(f"recovery_intents has {sum(intents_by_state.values())} rows, expected {live}")
    completed_rows = journal.runner.db.execute("SELECT COUNT(*) FROM runs WHERE state = 'completed'").fetchone()[0]
    if completed_rows != spec["completed"]:
        problems.append(f"runs view has {completed_rows} completed runs, expected {spec['completed']}")
    n_expired = sum(len(EXPECTED[k]) for k in kind_of.values() if k in ("claimed_expired", "running_stale"))
    if len(report.expired) != n_expired:
        problems.append(f"report.expired has {len(report.expired)} runs, expected {n_expired}")
    if problems:
        raise RuntimeError("recovery did not do what was expected:\n  " + "\n  ".join(problems))
    return {"appended": sum(by_type.values()), "appended_by_type": dict(by_type),
            "runs_ok_by_kind": {k: c["ok"] for k, c in per_kind.items()},
            "states_after": dict(states), "intents_by_state_after": intents_by_state,
            "completed_in_runs_view": completed_rows, "completed_sampled_untouched": len(spec["completed_sample"]),
            "leases_after": len(leases), "claimable_after": len(queue)}


def case_profile(store_dir: str, top: int) -> dict[str, Any]:
    """``recover()`` alone under cProfile; returns the top functions as text."""
    journal, harness = _open(store_dir)
    profile = cProfile.Profile()
    profile.enable()
    report = asyncio.run(harness.recover())
    profile.disable()
    journal.close()
    return {"expired": len(report.expired), "resumed": len(report.resumed), **profile_tables(profile, top)}


def in_child(*args: str) -> dict[str, Any]:
    """Run one case in a fresh interpreter."""
    return child_case("bench.recovery", *args)


def child_main(args: Sequence[str]) -> None:
    kind, store_dir, *rest = args
    if kind == "build":
        result = case_build(store_dir, *map(int, rest))
    elif kind == "catch-up":
        result = case_catch_up(store_dir)
    elif kind == "recover":
        result = case_recover(store_dir, rest[0])
    elif kind == "profile":
        result = case_profile(store_dir, int(rest[0]))
    else:
        raise SystemExit(f"unknown child case {kind!r}")
    print(json.dumps(result))


# -- the bench -----------------------------------------------------------------------------------------


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs of one case, with every run's seconds."""
    fastest = min(runs, key=lambda r: r["seconds"])
    return {**fastest, "median_seconds": round(statistics.median(r["seconds"] for r in runs), 4),
            "all_seconds": [r["seconds"] for r in runs], "all_peak_rss_mb": [r["peak_rss_mb"] for r in runs]}


def build_case(tmp: Path, name: str, completed: int, live: int, *, batch: int, seed: int) -> dict[str, Any]:
    """Build one store in ``tmp/name`` and catch its views up, each in a child (this process stays small)."""
    store = tmp / name
    store.mkdir()
    info = in_child("build", str(store), str(completed), str(live), str(batch), str(seed))
    os.sync()  # write the new files back now, not during a timed fsync later (ext4 data=ordered)
    catch_up = in_child("catch-up", str(store))
    os.sync()
    return {"store": store, "spec": tmp / f"{name}.spec.json", "completed": completed, "live": live,
            "events": info["events"], "build_s": info["seconds"],
            "build_events_per_s": rate(info["events"], info["seconds"]), "build_peak_rss_mb": info["peak_rss_mb"],
            "log_mb": round((store / "journal.db").stat().st_size / 2**20, 1),
            "views_mb": round((store / "journal.views.db").stat().st_size / 2**20, 1),
            "catch_up": catch_up}


def recover_case(tmp: Path, case: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Recovery on fresh copies of a built store, each in a fresh subprocess; keeps the fastest."""
    runs = []
    for i in range(repeat):
        work = tmp / f"{case['store'].name}-run{i}"
        copy_store(case["store"], work)
        os.sync()
        runs.append(in_child("recover", str(work), str(case["spec"])))
        shutil.rmtree(work)
    return best(runs)


def run_bench(completed: int, live: int, *, repeat: int, batch: int, profile: bool, seed: int = 7) -> dict[str, Any]:
    lives = live_runs(live, seed)
    with fresh_dir("runjournal-bench-recovery-") as tmp:
        a = build_case(tmp, "A", completed, live, batch=batch, seed=seed)
        b = build_case(tmp, "B", 0, live, batch=batch, seed=seed)
        rec_a = recover_case(tmp, a, repeat)
        rec_b = recover_case(tmp, b, repeat)
        ratio = round(rec_a["seconds"] / rec_b["seconds"], 2) if rec_b["seconds"] else None
        median_ratio = round(rec_a["median_seconds"] / rec_b["median_seconds"], 2) if rec_b["median_seconds"] else None
        result: dict[str, Any] = {
            "completed": completed, "live": live,
            "live_mix": dict(Counter(kind for _, kind in lives)),
            "A": {k: v for k, v in a.items() if k not in ("store", "spec")} | {"recover": rec_a},
            "B": {k: v for k, v in b.items() if k not in ("store", "spec")} | {"recover": rec_b},
            "ratio_a_over_b": ratio,
            "median_ratio_a_over_b": median_ratio,
            "aim_ratio": AIM_RATIO,
            "aim_met": ratio is not None and ratio <= AIM_RATIO,
        }
        if profile or not result["aim_met"]:
            work = tmp / "A-profile"
            copy_store(a["store"], work)
            os.sync()
            result["profile"] = in_child("profile", str(work), str(PROFILE_TOP))
    return result


def print_results(r: dict[str, Any]) -> None:
    print(f"recovery bench: {r['live']:,} live runs ({', '.join(f'{k} {v}' for k, v in r['live_mix'].items())})")
    print(f"  A = {r['completed']:,} completed runs + the live runs; B = the live runs alone")
    print(f"{'case':>5}{'events':>10}{'log MB':>8}{'build s':>9}{'catch-up s':>12}{'catch-up ev/s':>15}"
          f"{'open s':>8}{'recover s':>11}{'median s':>10}{'appended':>10}{'peak RSS MB':>13}{'VmHWM MB':>10}")
    for name in ("A", "B"):
        c = r[name]
        rec = c["recover"]
        print(f"{name:>5}{c['events']:>10,}{c['log_mb']:>8.1f}{c['build_s']:>9.2f}{c['catch_up']['seconds']:>12.3f}"
              f"{c['catch_up']['events_per_s']:>15,.0f}{rec['open_s']:>8.3f}{rec['seconds']:>11.4f}"
              f"{rec['median_seconds']:>10.4f}{rec['appended']:>10}{rec['peak_rss_mb']:>13.1f}{rec['vm_hwm_mb']:>10}")
    print(f"recover() A/B = {r['ratio_a_over_b']} fastest, {r['median_ratio_a_over_b']} median"
          f" (aim <= {AIM_RATIO} on the fastest: {'met' if r['aim_met'] else 'NOT met'})")
    for name in ("A", "B"):
        rec = r[name]["recover"]
        print(f"  {name}: recover s all runs {rec['all_seconds']}, peak RSS {rec['all_peak_rss_mb']} MB"
              f" (process started at {rec['rss_start_mb']} MB, {rec['rss_before_mb']} MB after opening);"
              f" report {rec['report']}; appended {rec['checks']['appended_by_type']}")
    print("(catch-up = the followed views from zero after building, in its own subprocess: not part of recovery;"
          " recover s = fastest of the repeats, excluding opening; peak RSS = ru_maxrss of the recovery's own"
          " subprocess, VmHWM = the same from /proc, which ignores the forking parent; each case checked from"
          " the journal afterwards)")
    if "profile" in r:
        print(f"\nrecover() on A under cProfile, top {PROFILE_TOP} by cumulative time:")
        print(r["profile"]["cumulative"])
        print("top 15 by own time:")
        print(r["profile"]["tottime"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__.splitlines()[0])
    p.add_argument("--completed", type=int, default=DEFAULT_COMPLETED,
                   help=f"completed runs in store A (default {DEFAULT_COMPLETED})")
    p.add_argument("--live", type=int, default=DEFAULT_LIVE,
                   help=f"non-terminal runs in both stores (default {DEFAULT_LIVE})")
    p.add_argument("--repeat", type=int, default=5, help="recover each store N times (fresh copies), keep the fastest")
    p.add_argument("--batch", type=int, default=BATCH, help=f"runs per batched save when building (default {BATCH})")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "recovery.json", help="results JSON path")
    p.add_argument("--profile", action="store_true", help="also profile recovery on A even when the aim is met")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return {}
    if args.live < len(LIVE_KINDS):
        raise SystemExit(f"--live must be at least {len(LIVE_KINDS)} (one run of each kind)")
    started = time.perf_counter()
    r = run_bench(args.completed, args.live, repeat=max(1, args.repeat), batch=args.batch, profile=args.profile)
    print_results(r)
    doc = {
        "aim_ratio": AIM_RATIO,
        "aim_met": r["aim_met"],
        "ratio_a_over_b": r["ratio_a_over_b"],
        "median_ratio_a_over_b": r["median_ratio_a_over_b"],
        "recover_s": {"A": r["A"]["recover"]["seconds"], "B": r["B"]["recover"]["seconds"]},
        "peak_rss_mb": {"A": r["A"]["recover"]["peak_rss_mb"], "B": r["B"]["recover"]["peak_rss_mb"]},
        "repeat": max(1, args.repeat),
        "batch": args.batch,
        "method": "stores built with Journal._save batches; views caught up once in a child after building "
                  "(timed apart); recover() timed in a fresh subprocess per attempt on a fresh copy of the "
                  "store + views, excluding opening; fastest of --repeat kept; leases expired by building "
                  "with 2025 timestamps and recovering on the wall clock",
        "cases": {k: v for k, v in r.items() if k != "profile"}
        | ({"profile_top_cumulative": r["profile"]["cumulative"].splitlines()} if "profile" in r else {}),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(f"\nresults written to {write_results(args.out, BENCH, doc)}")
    return doc


if __name__ == "__main__":
    main()
