"""PostgreSQL with several workers: runs/s and rolled-back transactions for 1, 2 and 4 worker processes.

Run with ``python -m bench.postgres [--runs N] [--workers 1 2 4] [--slots K] [--repeat N] [--url URL] [--out PATH]``
(``--url`` defaults to $RUNJOURNAL_BENCH_POSTGRES_URL, else ``postgresql://postgres@127.0.0.1:5432/test``).

For each worker count a fresh schema is made on the server and N no-op runs are
submitted in one save; then that many worker processes (each a ``Harness`` with K
slots, default 4, started at once) drain the queue until it is empty. Timed: from
the common start until the last worker found nothing left. Counted from
``pg_stat_database``: transactions (reads included) committed and rolled back
meanwhile, for the whole database (run it on a server nothing else uses), and per
run. CPU seconds are split between the worker processes (``os.times`` of each) and
the server's processes (read from /proc when the server runs on this machine).
``--repeat N`` measures each worker count N times and keeps the fastest. The ratio of each worker count's runs/s to one worker's is the scaling; the
floor is >= 1.5x for 4 workers on a 2-core machine, with < 0.05 rollbacks per run.
Without a server answering, the bench says so and is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR, rate, write_results

BENCH = "postgres"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_RUNS = 2000
DEFAULT_WORKERS = (1, 2, 4)
AGENT = "noop"
FLOOR_SCALING = 1.5
FLOOR_ROLLBACKS_PER_RUN = 0.05


def workspace_dict(slots: int) -> dict[str, Any]:
    """One scripted no-op agent; ``slots`` runs at once per worker."""
    return {"agents": {AGENT: {"adapter": "scripted", "script": [{"say": "ok"}]}},
            "concurrency": {"max_concurrent_runs": slots}}


@contextmanager
def fresh_schema(base: str, prefix: str = "bench_") -> Iterator[str]:
    """A new schema on the server, dropped afterwards; yields the store URL that uses it."""
    import psycopg

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def xact_counts(base: str) -> tuple[int, int]:
    """(committed, rolled back) transactions of the current database so far."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def postgres_cpu_s() -> float | None:
    """CPU seconds used so far by the PostgreSQL server processes on this machine (None if none is seen).

    Read from /proc: only a server on this machine is counted, and only on Linux. A backend that
    exited is counted in its parent's children's time (cutime, cstime), so all four are summed.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total, seen = 0, False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name.startswith("postgres"):
            fields = text[text.rindex(")") + 2 :].split()
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            seen = True
    return total / ticks if seen else None


def worker(url: str, slots: int, index: int, start_at: float) -> None:
    """One worker process: wait for the common start, drain the queue, report its CPU seconds."""
    from runjournal import Harness, Journal, Workspace

    journal = Journal.open(url)
    harness = Harness(journal, Workspace.from_dict(workspace_dict(slots)), worker_id=f"bench-{index}")
    time.sleep(max(0.0, start_at - time.time()))
    asyncio.run(harness.work(until_idle=True))
    times = os.times()
    print(json.dumps({"worker": index, "completed": harness.successes, "cpu_s": round(times.user + times.system, 3)}))
    journal.close()


def case(base: str, runs: int, workers: int, slots: int) -> dict[str, Any]:
    """One worker count on a fresh schema."""
    from runjournal import Journal

    with fresh_schema(base) as url:
        with Journal.open(url) as journal:
            journal.submit_many([{"agent_id": AGENT, "input": {"message": "hi"}} for _ in range(runs)])
        start_at = time.time() + 2.0  # every process imported and connected before the clock starts
        before = xact_counts(base)
        server_before = postgres_cpu_s()
        procs = [subprocess.Popen([sys.executable, "-m", "bench.postgres", "--child", url, str(slots), str(i),
                                   repr(start_at)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
                 for i in range(workers)]
        reports = []
        for p in procs:
            out, _ = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"worker exited {p.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        ended = time.time()
        after = xact_counts(base)
        server_after = postgres_cpu_s()
        with Journal.open(url) as journal:
            queued, held = len(journal.queue()), len(journal.leases())
    completed = sum(r["completed"] for r in reports)
    if completed != runs or queued or held:
        raise RuntimeError(f"{workers} workers: {completed} of {runs} runs completed, {queued} queued, {held} leased")
    seconds = ended - start_at
    rollbacks = after[1] - before[1]
    return {"workers": workers, "slots": slots, "runs": runs, "seconds": round(seconds, 3),
            "runs_per_s": rate(runs, seconds), "transactions": after[0] - before[0], "rollbacks": rollbacks,
            "rollbacks_per_run": round(rollbacks / runs, 4), "worker_cpu_s": [r["cpu_s"] for r in reports],
            "completed_by_worker": [r["completed"] for r in reports],
            "postgres_cpu_s": None if server_before is None or server_after is None
            else round(server_after - server_before, 3)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Every worker count, the scaling against one worker, the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    p.add_argument("--workers", type=int, nargs="+", default=list(DEFAULT_WORKERS))
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--repeat", type=int, default=1, help="measure each worker count N times, keep the fastest")
    p.add_argument("--url", default=os.environ.get("RUNJOURNAL_BENCH_POSTGRES_URL", DEFAULT_URL))
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "postgres.json")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        url, slots, index, start_at = args.child
        worker(url, int(slots), int(index), float(start_at))
        return {}
    base = args.url.split("?", 1)[0]
    try:
        xact_counts(base)
    except Exception as e:  # noqa: BLE001 - no server is a reason to skip this bench, said so
        print(f"postgres bench skipped: no PostgreSQL answers at {base} ({type(e).__name__}); "
              "set RUNJOURNAL_BENCH_POSTGRES_URL or pass --url")
        return {}
    cases = []
    for n in args.workers:
        tries = [case(base, args.runs, n, args.slots) for _ in range(max(1, args.repeat))]
        c = max(tries, key=lambda t: t["runs_per_s"]) | {"all_runs_per_s": [t["runs_per_s"] for t in tries]}
        cases.append(c)
        print(f"{n} worker(s) x {args.slots} slots: {c['runs_per_s']:8.1f} runs/s, {c['transactions']} transactions, "
              f"{c['rollbacks']} rollbacks ({c['rollbacks_per_run']:g} per run), runs by worker "
              f"{c['completed_by_worker']}, CPU s: workers {sum(c['worker_cpu_s']):.1f}, postgres "
              f"{c['postgres_cpu_s'] if c['postgres_cpu_s'] is not None else 'not on this machine'}")
    one = next((c for c in cases if c["workers"] == 1), None)
    scaling = {str(c["workers"]): round(c["runs_per_s"] / one["runs_per_s"], 3) for c in cases} if one else {}
    print(f"scaling against one worker: {scaling}")
    most = max(cases, key=lambda c: c["workers"])
    floors = {
        "scaling": {"floor": FLOOR_SCALING, "workers": most["workers"], "measured": scaling.get(str(most["workers"])),
                    "met": bool(scaling) and scaling[str(most["workers"])] >= FLOOR_SCALING},
        "rollbacks_per_run": {"floor": FLOOR_ROLLBACKS_PER_RUN, "measured": most["rollbacks_per_run"],
                              "met": most["rollbacks_per_run"] < FLOOR_ROLLBACKS_PER_RUN},
    }
    for name, f in floors.items():
        print(f"floor {name}: {f['measured']} ({'met' if f['met'] else 'NOT met'}, floor {f['floor']})")
    results = {"cases": cases, "scaling": scaling, "floors": floors, "repeat": max(1, args.repeat)}
    print(f"results written to {write_results(args.out, BENCH, results)}")
    return results


if __name__ == "__main__":
    main()
