"""The cost of verify on load: loads and worker commands with the chain check against without it.

Run with ``python -m bench.load_check [--runs N] [--quick] [--out PATH]``.

The baseline is the load runjournal had before the check: eventsourcing's
repository (the latest snapshot, then the events after it, nothing checked),
measured in the same process on a byte-identical copy of the same store. The
checked side is ``load_check.load_run`` (every applied event's link checked, a
snapshot used only once proven). Each case is timed on both sides in turn,
best of ``REPEATS``.

Cases, on runs of 10 and of 200 events (200: snapshots at 50, 100, 150, 200):

- ``get_run``: a fresh load (the journal's cache cleared before each), the
  snapshot proofs of this process kept: a long-lived worker or API process;
- ``get_run_cold``: the same with the proofs cleared too: the first load of a
  run in a new process (a CLI command), which replays the whole run once;
- ``command``: claim + start + complete of a queued run from a cold cache: a
  worker's fresh load, two saves.

Prints throughput per case and side and the ratio checked / baseline, and
writes ``bench/results/load_check.json``.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from runjournal.adapters.clock import ManualClock

from runjournal import Journal
from runjournal.app import journal as journal_module
from runjournal.app import load_check

from .common import RESULTS_DIR, fresh_dir, rate, timer, write_results

BENCH = "load_check"
DEFAULT_RUNS = 200
QUICK_RUNS = 40
SIZES = (10, 200)
REPEATS = 3
AIM = 1.05  # checked / baseline


def _unchecked(store: Any, run_id: UUID, *, version: int | None = None) -> Any:
    """The load before verify on load: eventsourcing's repository, nothing checked."""
    try:
        return store.repository.get(run_id, version=version)
    except AggregateNotFoundError:
        return None


CHECKED = load_check.load_run


def _use(load: Callable[..., Any]) -> None:
    journal_module.load_check.load_run = load  # type: ignore[assignment]


def build(path: Path, runs: int, events: int) -> list[str]:
    """``runs`` queued runs of ``events`` events each: submit, then (claim, lease expired) cycles."""
    clock = ManualClock()
    ids = []
    with Journal.open(f"sqlite:///{path}", clock=clock) as j:
        for _ in range(runs):
            run = j.submit(agent_id="a", input={"message": "hello", "pad": "x" * 200})
            ids.append(run.run_id)
        for _ in range((events - 2) // 2):
            for run_id in ids:
                assert j.claim_next(worker_id="builder", lease_seconds=1) is not None
            clock.advance(5)
            assert len(j.expire_leases(limit=runs + 10)) == runs
        version = j.get_run(ids[0]).version
        assert version == events, version
    return ids


def time_get_run(url: str, ids: list[str], *, cold: bool) -> float:
    with Journal.open(url) as j:
        for run_id in ids:  # warm the proofs (and the OS cache): the steady state of a process
            j.get_run(run_id)
        best = float("inf")
        for _ in range(REPEATS):
            with timer() as t:
                for run_id in ids:
                    j._runs.clear()
                    if cold:  # what a new process knows: nothing
                        j._store.snapshot_proofs = load_check.Proofs()
                        j._store.checked_links = load_check.Links()
                    j.get_run(run_id)
            best = min(best, t.seconds)
    return best


def time_commands(template: Path, folder: Path, side: str, runs: int) -> float:
    best = float("inf")
    for attempt in range(REPEATS):
        copy = folder / f"{side}-{attempt}.db"
        shutil.copy(template, copy)
        with Journal.open(f"sqlite:///{copy}") as j:
            j.queue()
            with timer() as t:
                for _ in range(runs):
                    j._runs.clear()
                    j._store.snapshot_proofs = load_check.Proofs()
                    j._store.checked_links = load_check.Links()
                    claim = j.claim_next(worker_id="w", start=True)
                    assert claim is not None
                    j.complete(claim, output={"text": "done"})
            best = min(best, t.seconds)
    return best


def measure(runs: int) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    with fresh_dir() as folder:
        for events in SIZES:
            count = runs if events <= 10 else max(10, runs // 4)
            template = folder / f"runs-{events}.db"
            ids = build(template, count, events)
            url = f"sqlite:///{template}"
            for name, fn in (
                ("get_run", lambda url=url, ids=ids: time_get_run(url, ids, cold=False)),
                ("get_run_cold", lambda url=url, ids=ids: time_get_run(url, ids, cold=True)),
                ("command", lambda t=template, e=events, c=count: time_commands(t, folder, f"c{e}", c)),
            ):
                _use(_unchecked)
                baseline = fn()
                _use(CHECKED)
                checked = fn()
                ratio = checked / baseline if baseline else 0.0
                key = f"{name}_{events}_events"
                cases[key] = {
                    "runs": count,
                    "baseline_per_second": rate(count, baseline),
                    "checked_per_second": rate(count, checked),
                    "baseline_ms_each": round(baseline / count * 1000, 3),
                    "checked_ms_each": round(checked / count * 1000, 3),
                    "ratio": round(ratio, 3),
                }
                print(f"{key:>26}: baseline {rate(count, baseline):>9,.0f}/s  checked "
                      f"{rate(count, checked):>9,.0f}/s  ratio {ratio:.3f}")
    _use(CHECKED)
    return cases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(RESULTS_DIR / "load_check.json"))
    args = parser.parse_args(argv)
    runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    cases = measure(runs)
    commands = [c["ratio"] for k, c in cases.items() if k.startswith("command")]
    figures = {"aim_ratio": AIM, "repeats": REPEATS, "cases": cases,
               "commands_within_aim": all(r <= AIM for r in commands)}
    print(f"wrote {write_results(args.out, BENCH, figures)}")


if __name__ == "__main__":
    main()
