"""CPU instructions per no-op run: the harness's Python cost, counted instead of timed.

Run with ``python -m bench.instructions [--runs N] [--out PATH]``.

Timings on a shared 2-core machine move by 20 % from one hour to the next; the
number of instructions a run costs does not. This bench drives the harness as
``bench.harness`` does (``memory://``, 4 slots, N no-op scripted runs submitted
at once, then worked until idle) in a child process under valgrind's callgrind,
once with no runs and once with N, and divides the difference by N: start-up and
imports cancel out. It needs valgrind; without it, it says so and writes nothing.
A change that makes a run cheaper shows here by a fraction of a percent.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from .common import RESULTS_DIR, write_results

BENCH = "instructions"
DEFAULT_RUNS = 1000
EVENTS_PER_RUN = 5  # Created, Queued, Dequeued, Started, Completed
SLOTS = 4
_COLLECTED = re.compile(r"Collected : (\d+)")


async def _drive(runs: int) -> None:
    from .harness import drive, warm_up, workspace
    from runjournal import Harness, Journal

    await warm_up()
    journal = Journal.open("memory://")
    harness = Harness(journal, workspace(SLOTS), worker_id="bench")
    try:
        await drive(harness, runs)
    finally:
        await harness.close()
        journal.close()


def instructions(runs: int) -> int:
    """Instructions the child process executes, start to end, driving ``runs`` runs."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bench.instructions", "--child", str(runs)],
        capture_output=True, text=True, check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {runs} runs failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"runs in the measured pass (default {DEFAULT_RUNS})")
    p.add_argument("--out", default=str(RESULTS_DIR / f"{BENCH}.json"), help="results JSON path")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Count, print and write the instructions per run; None when valgrind is missing."""
    args = parse_args(argv)
    if args.child is not None:
        asyncio.run(_drive(args.child))
        return None
    if shutil.which("valgrind") is None:
        print("instructions bench skipped: valgrind is not installed (apt-get install valgrind)")
        return None
    base, measured = instructions(0), instructions(args.runs)
    per_run = (measured - base) / args.runs
    figures = {"runs": args.runs, "store": "memory://", "slots": SLOTS, "events_per_run": EVENTS_PER_RUN,
               "instructions_base": base, "instructions_measured": measured,
               "instructions_per_run": round(per_run), "instructions_per_event": round(per_run / EVENTS_PER_RUN)}
    print(f"instructions bench: {args.runs} no-op runs on memory://, {SLOTS} slots, under callgrind")
    print(f"{per_run:,.0f} instructions per run, {per_run / EVENTS_PER_RUN:,.0f} per event")
    write_results(args.out, BENCH, figures)
    print(f"results written to {args.out}")
    return figures


if __name__ == "__main__":
    main()
