"""Long runs: does a command on a run with 5,000 steps cost what it costs on a run with 10?

Run with ``python -m bench.long_runs [--steps N] [--sample K] [--out PATH]``.

For each store (a fresh SQLite file with the durable default, and ``memory://``) one
run is submitted, claimed and started, then ``record_step`` is called N times (default
5,000), each its own command and its own save. The latency of the K calls (default 50)
after step 10 and of the K calls before step N are kept, and their medians compared:
the aim is a ratio (late / early) within 1.2, i.e. no cost that grows with the run's
history (the run is cached between commands, snapshots every 50 events bound a cold
load). The cold load of the long run by a fresh journal is reported beside it: a new
process proves the run's chain once before it trusts a snapshot, so that one read grows
with the run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runjournal import Journal

from .common import RESULTS_DIR, fresh_dir, timer, write_results

BENCH = "long_runs"
DEFAULT_STEPS = 5000
DEFAULT_SAMPLE = 50
EARLY_AT = 10
AIM_RATIO = 1.2


def measure(url: str, steps: int, sample: int) -> dict[str, Any]:
    """Latencies of ``record_step`` early and late in one run of ``steps`` steps, and its cold load."""
    latencies: list[float] = []
    with Journal.open(url) as journal:
        journal.submit(agent_id="a", input={"message": "a long one"})
        claim = journal.claim_next(worker_id="bench", start=True, lease_seconds=86_400)
        assert claim is not None
        for i in range(1, steps + 1):
            started = time.perf_counter()
            journal.record_step(claim, "step", {"i": i, "text": "called a tool, read its answer"})
            latencies.append(time.perf_counter() - started)
        cold = None
        if not url.startswith("memory:"):
            with Journal.open(url) as fresh, timer() as took:
                fresh.get_run(claim.run_id)
            cold = round(took.seconds * 1e3, 2)
    early = statistics.median(latencies[EARLY_AT : EARLY_AT + sample])
    late = statistics.median(latencies[-sample:])
    return {
        "steps": steps, "events": steps + 4, "sample": sample,
        "early_median_us": round(early * 1e6, 1), "late_median_us": round(late * 1e6, 1),
        "late_over_early": round(late / early, 3), "aim_met": late / early <= AIM_RATIO,
        "cold_load_ms": cold,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure both stores, print the comparison, write the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.long_runs", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"steps in the run (default {DEFAULT_STEPS})")
    p.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="calls per median (default 50)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "long_runs.json", help="results JSON path")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"aim_late_over_early": AIM_RATIO}
    with fresh_dir() as tmp:
        for store, url in (("sqlite", f"sqlite:///{tmp / 'long.db'}"), ("memory", "memory://")):
            r = results[store] = measure(url, args.steps, args.sample)
            cold = f", cold load {r['cold_load_ms']} ms" if r["cold_load_ms"] is not None else ""
            print(f"{store:7} record_step at step {EARLY_AT}: {r['early_median_us']:8.1f} us, at step {args.steps}: "
                  f"{r['late_median_us']:8.1f} us (x{r['late_over_early']}, aim <= {AIM_RATIO}: "
                  f"{'met' if r['aim_met'] else 'NOT met'}){cold}")
    print(f"results written to {write_results(args.out, BENCH, results)}")
    return results


if __name__ == "__main__":
    main()
