"""Finding runs by what happened: ``Journal.find_runs`` over a log of 100,000 runs, beside raw sqlite3.

Run with ``python -m bench.find_runs [--runs N] [--repeat N] [--out PATH]``.

A SQLite log of ``--runs`` runs (default 100,000) is built with the journal's batched save,
each run's life spread over several saves: most complete after one to three tool results
(search, deploy, mail), some are approved, edited or rejected by alice or bob on the way,
some fail with one of a few errors, some still wait for approval, some are queued. The
followed views are caught up once. Then each query is answered ``--repeat`` times (default
15) by ``journal.find_runs`` (one page of 100, and the total) and, as the baseline, by the
straightforward SQL of the same filters (a COUNT and a sorted page, each fact filter an IN
subquery) run with sqlite3 straight on the views file (no journal, no models); the median
of each is kept, and the ratio is baseline / journal. The aim: every query under 100 ms with
100,000 runs in the log.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import time
from datetime import timedelta
from typing import Any

from runjournal.domain import Run

from runjournal import Journal
from runjournal.app import run_query
from runjournal.app.ids import time_ordered_id

from .common import RESULTS_DIR, Ticker, fresh_dir, timer, write_results
from .lives import Steps, both, save_in_phases

BENCH = "find_runs"
AIM_MS = 100.0
BATCH = 500
TOOLS = ("search", "deploy", "mail")
ERRORS = ("Disk full", "timeout talking to the API", "Permission denied")
STEPS = Steps()


def _tools(n: int) -> Any:
    def record(run: Run, t: Ticker) -> None:
        for i in range(1 + n % 3):
            run.record_step(worker_id=STEPS.worker, epoch=run.epoch, kind="tool_result",
                            content={"tool": TOOLS[(n + i) % 3], "args": {"i": i}, "output": "ok", "is_error": False},
                            now=t())
    return record


def _decide(decision: str, actor: str) -> Any:
    def decide(run: Run, t: Ticker) -> None:
        run.resolve_approval(approval_id=run.pending_approval["approval_id"], decision=decision,
                             edits={"env": "dev"} if decision == "edit" else None, actor=actor, now=t())
    return decide


def _fail(error: str) -> Any:
    def fail(run: Run, t: Ticker) -> None:
        run.fail(error=error, actor=f"worker:{STEPS.worker}", now=t(), worker=(STEPS.worker, run.epoch))
    return fail


def life(n: int, rng: random.Random) -> list[Any]:
    """The phases of run ``n``'s life after its submit."""
    roll = rng.random()
    work = both(STEPS.claim_start, _tools(n))
    if roll < 0.70:
        return [work, STEPS.complete]
    if roll < 0.85:
        decision, actor = rng.choice(("approve", "edit", "reject")), rng.choice(("alice", "bob"))
        return [both(work, STEPS.ask), both(_decide(decision, actor), STEPS.resume, STEPS.complete)]
    if roll < 0.93:
        return [work, _fail(ERRORS[n % 3])]
    if roll < 0.97:
        return [both(work, STEPS.ask)]
    return []


def build(url: str, runs: int, *, seed: int = 7) -> tuple[int, Any, Any]:
    """A log of ``runs`` runs; returns (events, the time of its first event, of its last)."""
    rng, t = random.Random(seed), Ticker()
    first = t.now
    journal = Journal.open(url)
    try:
        for start in range(0, runs, BATCH):
            batch = []
            for n in range(start, min(start + BATCH, runs)):
                now = t()
                batch.append(Run.submit(run_id=time_ordered_id(now, rng.randbytes), thread_id=f"thread-{n % 20_000}",
                                        agent_id=f"agent-{n % 5}", input={"message": f"request {n}"}, priority=0,
                                        idempotency_key=None, actor="bench", now=now))
            save_in_phases(journal, batch, [life(n, rng) for n in range(start, start + len(batch))], t)
        return journal.max_position(), first, t.now
    finally:
        journal.close()


def queries(runs: int, first: Any, last: Any) -> dict[str, dict[str, Any]]:
    """The queries timed, by name: each filter alone, and some together."""
    span = last - first
    return {
        "state": {"state": "failed"},
        "agent": {"agent_id": "agent-3"},
        "thread": {"thread_id": f"thread-{(runs // 2) % 20_000}"},
        "tool": {"tool": "mail"},
        "approved_by": {"approved_by": "alice"},
        "decision": {"decision": "edit"},
        "error": {"error": "disk"},
        "waiting_longer": {"waiting_longer": timedelta(minutes=1)},
        "since_until": {"since": first + span * 0.40, "until": first + span * 0.45},  # 5 % of the runs
        "tool_and_approver": {"tool": "deploy", "approved_by": "bob"},
        "agent_state_deep_page": {"agent_id": "agent-1", "state": "completed", "offset": runs // 10},
    }


def median_ms(call: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def bench(runs: int, repeat: int) -> dict[str, Any]:
    with fresh_dir() as folder:
        url = f"sqlite:///{folder / 'journal.db'}"
        with timer() as built:
            events, first, last = build(url, runs)
        journal = Journal.open(url)
        with timer() as caught:
            journal.catch_up()
        raw = sqlite3.connect(journal.views_path)
        now = journal.clock.now()
        results: dict[str, Any] = {}
        for name, filters in queries(runs, first, last).items():
            page = journal.find_runs(**filters)
            q = run_query.RunQuery(**filters)
            clause, params = run_query.conditions(q, now, error_in_sql=True)

            def raw_query(clause: str = clause, params: list[Any] = params, q: Any = q) -> None:
                raw.execute(f"SELECT COUNT(*) FROM runs{clause}", params).fetchone()
                raw.execute(f"SELECT * FROM runs{clause} ORDER BY created_at, run_id LIMIT ? OFFSET ?",
                            [*params, q.limit, q.offset]).fetchall()

            journal_ms = median_ms(lambda filters=filters: journal.find_runs(**filters), repeat)
            raw_ms = median_ms(raw_query, repeat)
            results[name] = {"found": page.total, "page": len(page.runs), "journal_ms": journal_ms, "raw_ms": raw_ms,
                             "ratio": round(raw_ms / journal_ms, 2) if journal_ms else None}
            print(f"{name:>20}: {page.total:>7} found, find_runs {journal_ms:7.2f} ms, raw sqlite3 {raw_ms:7.2f} ms "
                  f"({results[name]['ratio']}x)")
        raw.close()
        journal.close()
    slowest = max(r["journal_ms"] for r in results.values())
    print(f"{runs} runs ({events} events): built in {built.seconds:.1f} s, views caught up in {caught.seconds:.1f} s;"
          f" slowest query {slowest} ms (aim < {AIM_MS:g} ms: {'met' if slowest < AIM_MS else 'NOT met'})")
    return {"runs": runs, "events": events, "build_s": round(built.seconds, 1), "catch_up_s": round(caught.seconds, 1),
            "repeat": repeat, "queries": results, "slowest_ms": slowest, "aim_ms": AIM_MS, "aim_met": slowest < AIM_MS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", default=str(RESULTS_DIR / f"{BENCH}.json"))
    args = parser.parse_args()
    figures = bench(args.runs, args.repeat)
    print(f"results written to {write_results(args.out, BENCH, figures)}")


if __name__ == "__main__":
    main()
