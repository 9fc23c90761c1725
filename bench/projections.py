"""Projection catch-up throughput: all built-in views from zero, against a bare read of the same log.

Run with ``python -m bench.projections [--events N [N ...]] [--page-size N] [--repeat N] [--out PATH] [--profile]``.

For each size (default 10,000, 100,000 and 500,000 events) a SQLite log is built once
through the journal's batched save (``Journal._save`` of ~200 runs per
transaction, each run's life spread over several saves so runs interleave in
the log; run ids are made as the journal makes them, time-ordered, and threads
are picked at random). Then, each in a fresh subprocess so that peak RSS is per case:

* read:     ``for page in journal.notifications()`` decoding every notification
            with ``mapper.to_domain_event`` (the floor any catch-up pays);
* catch-up: ``journal.catch_up()`` of every built-in view (runs, threads,
            approvals, recovery_intents, messages, and the runner's run index)
            from zero into a fresh views file.

Both read the same, freshly written (so OS-cached) log; neither timing includes
interpreter start, imports or opening the store (the catch-up's view set-up is
reported apart as ``setup_s``). ``--repeat N`` runs each case N times and keeps
the fastest. The aims are >= 50,000 events/s for all built-in views together,
and the same rate at every size within 20 % (``flat``: the largest size's rate
over the smallest's, >= 0.8). When a size misses it (or with ``--profile``)
the catch-up is run once more under cProfile, in its own subprocess, and the
top functions by cumulative time are printed; profiled timings are not recorded.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runjournal.domain import Run

from runjournal import Journal
from runjournal.app.ids import time_ordered_id
from runjournal.app.journal import CATCH_UP_PAGE_SIZE as PAGE_SIZE

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

BENCH = "projections"
DEFAULT_SIZES = (10_000, 100_000, 500_000)
AIM_EVENTS_PER_S = 50_000.0
AIM_FLAT = 0.8  # the largest log's catch-up rate over the smallest's: the same rate within 20 %
BATCH = 200
PROFILE_TOP = 25
REPO = Path(__file__).resolve().parent.parent

# -- building a log ---------------------------------------------------------------------------------

STEPS = Steps()


# A run's life: name -> (events in all, weight, phases after submit's Created + Queued). Each
# phase of a batch is saved in its own transaction, so a run's events spread over the log.
LIVES: dict[str, tuple[int, int, tuple[Callable[[Any, Ticker], None], ...]]] = {
    "completed": (5, 40, (STEPS.claim_start, STEPS.complete)),
    "completed_with_message": (6, 35, (both(STEPS.claim_start, STEPS.message), STEPS.complete)),
    "approved": (9, 8, (both(STEPS.claim_start, STEPS.ask), both(STEPS.approve, STEPS.resume, STEPS.complete))),
    "failed": (5, 8, (STEPS.claim_start, STEPS.fail)),
    "cancelled": (3, 5, (STEPS.cancel,)),
    "queued": (2, 4, ()),
}


def pick_lives(total: int, rng: random.Random) -> list[str]:
    """Run lives whose events add up to exactly ``total``."""
    names = list(LIVES)
    weights = [LIVES[n][1] for n in names]
    longest = max(events for events, _, _ in LIVES.values())
    lives, remaining = [], total
    while remaining > longest + 3:
        life = rng.choices(names, weights)[0]
        lives.append(life)
        remaining -= LIVES[life][0]
    if remaining % 2:
        lives.append("cancelled")
        remaining -= 3
    return lives + ["queued"] * (remaining // 2)


def build_log(url: str, total: int, *, seed: int = 1) -> int:
    """Write a log of exactly ``total`` events with the journal's batched save; returns its max position."""
    rng = random.Random(seed)
    t = Ticker()
    lives = pick_lives(total, rng)
    threads = max(50, len(lives) // 5)  # ~5 runs per thread
    journal = Journal.open(url)
    try:
        for start in range(0, len(lives), BATCH):
            batch = lives[start : start + BATCH]
            runs = [
                Run.submit(run_id=time_ordered_id(now, rng.randbytes), thread_id=f"thread-{rng.randrange(threads)}",
                           agent_id=f"agent-{n % 5}", input={"message": f"request {n}"}, priority=n % 3,
                           idempotency_key=None, actor="bench", now=now)
                for n, now in ((n, t()) for n in range(start, start + len(batch)))
            ]
            save_in_phases(journal, runs, [LIVES[life][2] for life in batch], t)
        return journal.max_position()
    finally:
        journal.close()


# -- the measured cases (each in its own subprocess) ---------------------------------------------------


def case_read(url: str) -> dict[str, Any]:
    """Read every notification in pages and decode it: no projection work."""
    journal = Journal.open(url)
    to_domain = journal._store.mapper.to_domain_event
    rss_before = peak_rss_mb()
    events = 0
    with timer() as t:
        for page in journal.notifications():
            for n in page:
                to_domain(n)
            events += len(page)
    journal.close()
    return {"events": events, "seconds": round(t.seconds, 4), "events_per_s": rate(events, t.seconds),
            "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb()}


def case_catch_up(url: str, views: str, page_size: int) -> dict[str, Any]:
    """Catch every built-in view up from zero into a fresh views file."""
    journal = Journal.open(url, views_path=views)
    journal.page_size = page_size
    with timer() as setup:
        runner = journal.runner  # creates the tables of every built-in view
    rss_before = peak_rss_mb()
    with timer() as t:
        events = journal.catch_up()
    positions = runner.positions()
    end = journal.max_position()
    rows = {name: runner.db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in positions}
    journal.close()
    if events != end or set(positions.values()) != {end}:
        raise RuntimeError(f"catch-up read {events} events, positions {positions}, log ends at {end}")
    return {"events": events, "seconds": round(t.seconds, 4), "events_per_s": rate(events, t.seconds),
            "page_size": page_size, "setup_s": round(setup.seconds, 4), "views": sorted(positions), "rows": rows,
            "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb()}


def case_profile(url: str, views: str, page_size: int, top: int) -> dict[str, Any]:
    """The catch-up alone under cProfile; returns the top functions by cumulative time as text."""
    journal = Journal.open(url, views_path=views)
    journal.page_size = page_size
    journal.runner  # noqa: B018 - set-up outside the profile
    profile = cProfile.Profile()
    profile.enable()
    events = journal.catch_up()
    profile.disable()
    journal.close()
    return {"events": events, **profile_tables(profile, top)}


def in_child(*args: str) -> dict[str, Any]:
    """Run one case in a fresh interpreter."""
    return child_case("bench.projections", *args)


def child_main(args: Sequence[str]) -> None:
    kind, url, *rest = args
    if kind == "read":
        result = case_read(url)
    elif kind == "catch-up":
        result = case_catch_up(url, rest[0], int(rest[1]))
    elif kind == "profile":
        result = case_profile(url, rest[0], int(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown child case {kind!r}")
    print(json.dumps(result))


# -- the bench -----------------------------------------------------------------------------------------


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs of one case, with every run's seconds."""
    fastest = min(runs, key=lambda r: r["seconds"])
    return {**fastest, "all_seconds": [r["seconds"] for r in runs]} if len(runs) > 1 else fastest


def bench_size(events: int, *, profile: bool, repeat: int = 1, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """Build a log of ``events`` events, then measure read and catch-up in fresh subprocesses."""
    with fresh_dir() as tmp:
        url = f"sqlite:///{tmp / 'journal.db'}"
        with timer() as built:
            end = build_log(url, events)
        if end != events:
            raise RuntimeError(f"built {end} events, expected {events}")
        log_mb = round((tmp / "journal.db").stat().st_size / 2**20, 1)
        read = best([in_child("read", url) for _ in range(repeat)])
        catch_up = best([in_child("catch-up", url, str(tmp / f"views-{i}.db"), str(page_size))
                         for i in range(repeat)])
        result = {
            "events": events,
            "build_s": round(built.seconds, 2),
            "build_events_per_s": rate(events, built.seconds),
            "log_mb": log_mb,
            "read": read,
            "catch_up": catch_up,
            "catch_up_over_read": round(catch_up["seconds"] / read["seconds"], 2) if read["seconds"] else None,
            "aim_met": catch_up["events_per_s"] >= AIM_EVENTS_PER_S,
        }
        if profile or not result["aim_met"]:
            prof = in_child("profile", url, str(tmp / "profiled.views.db"), str(page_size), str(PROFILE_TOP))
            result["profile"] = prof
    return result


def flatness(results: list[dict[str, Any]]) -> float:
    """The largest log's catch-up rate over the smallest's."""
    by_size = sorted(results, key=lambda r: r["events"])
    return round(by_size[-1]["catch_up"]["events_per_s"] / by_size[0]["catch_up"]["events_per_s"], 3)


def print_results(results: list[dict[str, Any]]) -> None:
    print(f"projections bench: all built-in views from zero, aim >= {AIM_EVENTS_PER_S:,.0f} events/s,"
          f" {results[0]['catch_up']['page_size'] if results else PAGE_SIZE} events per page")
    print(f"{'events':>9}{'read s':>9}{'read ev/s':>11}{'catch-up s':>12}{'catch-up ev/s':>15}"
          f"{'ratio':>7}{'RSS read MB':>13}{'RSS catch-up MB':>17}  aim")
    for r in results:
        rd, cu = r["read"], r["catch_up"]
        print(f"{r['events']:>9}{rd['seconds']:>9.3f}{rd['events_per_s']:>11,.0f}{cu['seconds']:>12.3f}"
              f"{cu['events_per_s']:>15,.0f}{r['catch_up_over_read']:>7.2f}{rd['peak_rss_mb']:>13.1f}"
              f"{cu['peak_rss_mb']:>17.1f}  {'met' if r['aim_met'] else 'NOT met'}")
    if len(results) > 1:
        flat = flatness(results)
        print(f"flat: catch-up at {results[-1]['events']:,} events runs at {flat:.2f}x the rate at"
              f" {results[0]['events']:,} (aim >= {AIM_FLAT})")
    print("(ratio = catch-up seconds / read seconds; RSS = peak of the case's own subprocess,"
          " which starts at ~the 'rss_before_mb' in the JSON)")
    for r in results:
        if "profile" in r:
            print(f"\ncatch-up of {r['events']} events under cProfile, top {PROFILE_TOP} by cumulative time:")
            print(r["profile"]["cumulative"])
            print("top 15 by own time:")
            print(r["profile"]["tottime"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.projections", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, nargs="+", default=list(DEFAULT_SIZES),
                   help="log sizes to measure (default: 10000 100000 500000)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "projections.json", help="results JSON path")
    p.add_argument("--page-size", type=int, default=PAGE_SIZE,
                   help=f"Journal.page_size for the catch-up: events per page read"
                        f" (default {PAGE_SIZE})")
    p.add_argument("--repeat", type=int, default=1, help="measure each case N times, keep the fastest")
    p.add_argument("--profile", action="store_true", help="also profile the catch-up even when the aim is met")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return {}
    started = time.perf_counter()
    results = [bench_size(n, profile=args.profile, repeat=max(1, args.repeat), page_size=args.page_size)
               for n in args.events]
    print_results(results)
    doc = {
        "aim_events_per_s": AIM_EVENTS_PER_S,
        "aim_met": all(r["aim_met"] for r in results),
        "aim_flat": AIM_FLAT,
        "flat": flatness(results) if len(results) > 1 else None,
        "flat_met": flatness(results) >= AIM_FLAT if len(results) > 1 else None,
        "page_size": args.page_size,
        "repeat": max(1, args.repeat),
        "views": results[0]["catch_up"]["views"] if results else [],
        "method": "log built once per size with Journal._save batches of ~200 runs; read and catch-up each "
                  "in a fresh subprocess over the same OS-cached log; timings exclude start-up and opening",
        "cases": {
            str(r["events"]): {k: v for k, v in r.items() if k != "profile"}
            | ({"profile_top_cumulative": r["profile"]["cumulative"].splitlines()} if "profile" in r else {})
            for r in results
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(f"\nresults written to {write_results(args.out, BENCH, doc)}")
    return doc


if __name__ == "__main__":
    main()
