"""Append throughput: the journal's submit/claim/start/complete against raw sqlite3 inserts.

Run with ``python -m bench.append [--runs N] [--quick] [--out PATH] [--profile]``.

Both sides are cold: each writes a fresh temp file, neither is warmed up, and
neither timing includes opening the store or creating its tables (imports are
done before either timing starts). The baseline runs first, then the journal.
Each run is 5 events in 4 transactions on both sides: submit = Created + Queued
in one transaction, then Dequeued, Started, Completed in one transaction each;
all N submits first, then the worker phase for each run in turn.

A third case measures the journal's own cost per event with no storage at all:
``memory://``, driven by the grouped calls the harness makes (``submit_many`` of
500 runs, then a worker turn of 4 slots as ``complete_and_claim``), in
microseconds per event; the aim is <= 30 us.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runjournal import Journal

from .common import RESULTS_DIR, fresh_dir, peak_rss_mb, rate, timer, write_results

BENCH = "append"
DEFAULT_RUNS = 2000
QUICK_RUNS = 300
EVENTS_PER_RUN = 5
TXNS_PER_RUN = 4
AIM_RATIO = 3.0
AIM_MEMORY_US_PER_EVENT = 30.0
SLOTS = 4
SUBMIT_BATCH = 500

RAW_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER,"
    " topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
)
RAW_INSERT = "INSERT INTO stored_events VALUES (?, ?, ?, ?)"
# Event kind -> padded JSON size in bytes (the journal's own events are ~190-375 bytes).
RAW_SIZES = {"Created": 380, "Queued": 260, "Dequeued": 320, "Started": 270, "Completed": 280}


def raw_state(kind: str, i: int) -> bytes:
    """A JSON event body for ``kind``, padded to its size in ``RAW_SIZES``."""
    body: dict[str, Any] = {
        "timestamp": {"_type_": "datetime_iso", "_data_": datetime.now(timezone.utc).isoformat()},
        "actor": "worker:w1",
        "chain": uuid.uuid4().hex * 2,
        "n": i,
        "pad": "",
    }
    body["pad"] = "x" * max(0, RAW_SIZES[kind] - len(json.dumps(body, separators=(",", ":"))))
    return json.dumps(body, separators=(",", ":")).encode()


def raw_commit(conn: sqlite3.Connection, rows: Sequence[tuple[str, int, str, bytes]]) -> None:
    """Insert ``rows`` in one explicit BEGIN ... COMMIT transaction."""
    conn.execute("BEGIN")
    conn.executemany(RAW_INSERT, rows)
    conn.execute("COMMIT")


def raw_row(run_id: str, version: int, kind: str, i: int) -> tuple[str, int, str, bytes]:
    """One stored_events row for event ``kind`` of run ``run_id``."""
    return (run_id, version, f"runjournal.Run.{kind}.v1", raw_state(kind, i))


def raw_open(path: Path) -> sqlite3.Connection:
    """A sqlite3 connection in autocommit mode, WAL, synchronous=FULL, with the events table."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(RAW_SCHEMA)
    return conn


def raw_submit_phase(conn: sqlite3.Connection, runs: int) -> list[str]:
    """Created + Queued for each run, one transaction per run; returns the run ids."""
    run_ids = [uuid.uuid4().hex for _ in range(runs)]
    for i, run_id in enumerate(run_ids):
        raw_commit(conn, [raw_row(run_id, 1, "Created", i), raw_row(run_id, 2, "Queued", i)])
    return run_ids


def raw_worker_phase(conn: sqlite3.Connection, run_ids: Sequence[str]) -> None:
    """Dequeued, Started, Completed for each run, one transaction each."""
    for i, run_id in enumerate(run_ids):
        for version, kind in ((3, "Dequeued"), (4, "Started"), (5, "Completed")):
            raw_commit(conn, [raw_row(run_id, version, kind, i)])


def bench_raw(runs: int) -> dict[str, Any]:
    """Time the raw sqlite3 baseline on a fresh file."""
    with fresh_dir() as tmp:
        conn = raw_open(tmp / "raw.db")
        with timer() as total:
            with timer() as submit:
                run_ids = raw_submit_phase(conn, runs)
            with timer() as work:
                raw_worker_phase(conn, run_ids)
        stored = conn.execute("SELECT COUNT(*), AVG(LENGTH(state)) FROM stored_events").fetchone()
        conn.close()
    check_count("raw", stored[0], runs)
    return figures(runs, total.seconds, submit.seconds, work.seconds, stored[1])


def journal_submit_phase(journal: Journal, runs: int) -> None:
    """Submit ``runs`` runs (Created + Queued, one save each)."""
    for i in range(runs):
        journal.submit(agent_id="noop", input={"n": i})


def journal_worker_phase(journal: Journal, runs: int) -> None:
    """Claim, start and complete ``runs`` runs (three saves each)."""
    for _ in range(runs):
        claim = journal.claim_next(worker_id="w1", lease_seconds=30)
        if claim is None:
            raise RuntimeError("the queue ran dry before every run was claimed")
        journal.start(claim)
        journal.complete(claim, output={"ok": True})


def bench_journal(runs: int, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """Time the journal on a fresh SQLite file (optionally under a profiler)."""
    with fresh_dir() as tmp:
        path = tmp / "journal.db"
        journal = Journal.open(f"sqlite:///{path}")
        if profile is not None:
            profile.enable()
        with timer() as total:
            with timer() as submit:
                journal_submit_phase(journal, runs)
            with timer() as work:
                journal_worker_phase(journal, runs)
        if profile is not None:
            profile.disable()
        journal.close()
        stored, synchronous = journal_file_facts(path)
    check_count("journal", stored[0], runs)
    result = figures(runs, total.seconds, submit.seconds, work.seconds, stored[1])
    result["sqlite_default_synchronous"] = synchronous
    return result


def bench_memory_per_event(runs: int) -> dict[str, Any]:
    """The journal's own cost per event on ``memory://``, through the harness's grouped calls."""
    with Journal.open("memory://") as journal:
        journal.submit_many([{"agent_id": "noop", "input": {"n": -1}}])  # warm: first use builds the models
        journal.complete_many([(c, None) for c in journal.claim_many(worker_id="w0", count=1, start=True)])
        with timer() as submit:
            for start in range(0, runs, SUBMIT_BATCH):
                journal.submit_many([{"agent_id": "noop", "input": {"n": i}} for i in range(start, min(runs, start + SUBMIT_BATCH))])
        completed = 0
        with timer() as work:
            claims = journal.claim_many(worker_id="w1", count=SLOTS, start=True)
            while claims:
                refused, next_claims = journal.complete_and_claim(
                    [(c, {"ok": True}) for c in claims], worker_id="w1", count=len(claims), start=True)
                completed += sum(r is None for r in refused)
                claims = next_claims
    if completed != runs:
        raise RuntimeError(f"memory://: completed {completed} runs, expected {runs}")
    events = runs * EVENTS_PER_RUN
    total = submit.seconds + work.seconds
    return {"runs": runs, "events": events, "seconds": round(total, 4),
            "us_per_event": round(total * 1e6 / events, 1),
            "submit_us_per_event": round(submit.seconds * 1e6 / (runs * 2), 1),
            "worker_us_per_event": round(work.seconds * 1e6 / (runs * 3), 1),
            "aim_us_per_event": AIM_MEMORY_US_PER_EVENT,
            "aim_met": total * 1e6 / events <= AIM_MEMORY_US_PER_EVENT}


def journal_file_facts(path: Path) -> tuple[tuple[int, float], int]:
    """(event count, mean state bytes) in the journal file, and a new connection's synchronous."""
    conn = sqlite3.connect(path)
    try:
        stored = conn.execute("SELECT COUNT(*), AVG(LENGTH(state)) FROM stored_events").fetchone()
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        conn.close()
    return (stored[0], stored[1]), synchronous


def check_count(side: str, stored: int, runs: int) -> None:
    """Fail loudly if a side did not store 5 events per run (a correctness check, not timing)."""
    if stored != runs * EVENTS_PER_RUN:
        raise RuntimeError(f"{side}: stored {stored} events, expected {runs * EVENTS_PER_RUN}")


def figures(runs: int, seconds: float, submit_s: float, worker_s: float, mean_bytes: float) -> dict[str, Any]:
    """Events, transactions, seconds and rates for one side."""
    events, txns = runs * EVENTS_PER_RUN, runs * TXNS_PER_RUN
    return {
        "events": events,
        "transactions": txns,
        "seconds": round(seconds, 4),
        "events_per_s": rate(events, seconds),
        "transactions_per_s": rate(txns, seconds),
        "submit_phase_s": round(submit_s, 4),
        "worker_phase_s": round(worker_s, 4),
        "mean_state_bytes": round(mean_bytes or 0.0, 1),
    }


def print_table(runs: int, raw: dict[str, Any], journal: dict[str, Any], ratio: float, rss: float) -> None:
    """Print both sides side by side, the ratio against the aim, and peak RSS."""
    print(f"append bench: {runs} runs, {EVENTS_PER_RUN} events / {TXNS_PER_RUN} transactions per run")
    print(f"{'':16}{'events':>8}{'txns':>8}{'seconds':>10}{'events/s':>11}{'txns/s':>10}"
          f"{'submit s':>10}{'worker s':>10}{'bytes/ev':>10}")
    for name, f in (("raw sqlite3", raw), ("journal", journal)):
        print(f"{name:16}{f['events']:>8}{f['transactions']:>8}{f['seconds']:>10.3f}"
              f"{f['events_per_s']:>11.1f}{f['transactions_per_s']:>10.1f}"
              f"{f['submit_phase_s']:>10.3f}{f['worker_phase_s']:>10.3f}{f['mean_state_bytes']:>10.1f}")
    met = "met" if ratio <= AIM_RATIO else "NOT met"
    print(f"ratio journal/raw: {ratio:.2f} (aim <= {AIM_RATIO}: {met})")
    print(f"peak RSS: {rss:.1f} MB")


def print_profile(profile: cProfile.Profile, top: int = 25) -> None:
    """Print the journal side's top functions by cumulative time."""
    print(f"\njournal side, top {top} by cumulative time:")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(top)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.append", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"runs per side (default {DEFAULT_RUNS})")
    p.add_argument("--quick", action="store_true", help=f"shorthand for --runs {QUICK_RUNS}")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "append.json", help="results JSON path")
    p.add_argument("--profile", action="store_true", help="cProfile the journal side (slows it; writes no JSON)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run both sides, print the table, write the JSON; returns the results."""
    args = parse_args(argv)
    runs = QUICK_RUNS if args.quick else args.runs
    profile = cProfile.Profile() if args.profile else None
    raw = bench_raw(runs)
    journal = bench_journal(runs, profile)
    ratio = round(journal["seconds"] / raw["seconds"], 2)
    memory = bench_memory_per_event(runs)
    rss = peak_rss_mb()
    print_table(runs, raw, journal, ratio, rss)
    print(f"journal on memory:// (grouped, {SLOTS} slots): {memory['us_per_event']} us per event "
          f"(submit {memory['submit_us_per_event']}, claim+start+complete {memory['worker_us_per_event']}; "
          f"aim <= {AIM_MEMORY_US_PER_EVENT:g}: {'met' if memory['aim_met'] else 'NOT met'})")
    results = {
        "runs": runs,
        "events": runs * EVENTS_PER_RUN,
        "warmup": "none (both sides cold)",
        "profiled": bool(profile),
        "baseline": raw,
        "journal": journal,
        "memory_journal": memory,
        "ratio": ratio,
        "aim": AIM_RATIO,
        "aim_met": ratio <= AIM_RATIO,
        "peak_rss_mb": rss,
    }
    if profile is None:
        print(f"results written to {write_results(args.out, BENCH, results)}")
    else:  # profiled timings are inflated: keep them out of the results file
        print_profile(profile)
    return results


if __name__ == "__main__":
    main()
