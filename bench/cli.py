"""CLI start-up: whole ``runjournal`` processes, beside ``python -c pass`` timed in the same run.

Run with ``python -m bench.cli [--repeat N] [--out PATH]``.

A command of the CLI is a whole process, so what a person waits for is the
interpreter's start, the imports and the verb together. This bench makes a
store in a temp folder the way a person would (``runjournal init``, then
``runjournal run "hi" --wait``), then times, from that folder and with the
workspace there choosing the store:

- ``python -c pass``: the interpreter alone, the baseline;
- ``runjournal --help``;
- ``runjournal status RUN`` and ``runjournal history RUN`` of the completed run;
- the libraries ``status`` cannot do without (typer, pydantic, eventsourcing, rich,
  PyYAML), imported by ``python -c`` and nothing else: a floor for ``status`` that
  no change to runjournal's own imports can go below. (``status`` reads what
  recovery would do off the run's state, so it opens no views: no sqlite-utils.)

Each is started N times (default 7), the commands taking turns so that a noisy
moment is shared out, and the median is reported with its ratio to the
baseline. Each command runs once, untimed, before its timings: it fills a
private bytecode cache (``PYTHONPYCACHEPREFIX`` in the temp folder), so every
module is read compiled, as an installed package runs, whatever
``PYTHONDONTWRITEBYTECODE`` says and whatever ``__pycache__`` folders the
checkout holds. The aim is ``status`` and ``--help`` within 150 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR, fresh_dir, write_results

BENCH = "cli"
DEFAULT_REPEAT = 7
AIM_MS = 150.0
AIMED = ("--help", "status")  # the commands the aim is for
RUNJOURNAL = Path(sys.executable).parent / "runjournal"
# What `status` needs besides runjournal: the command line, the models, the store, the output, the workspace.
LIBRARIES = ("import typer, eventsourcing.application, eventsourcing.domain, rich.console, yaml; "
             "from pydantic import BaseModel, TypeAdapter")
# Variables that would choose another store, change what the CLI prints, or how bytecode is cached (set here).
SCRUBBED = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TERM", "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")


def base_env() -> dict[str, str]:
    """This process's environment without the variables that would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNJOURNAL_") and k not in SCRUBBED}


def make_store(folder: Path, env: Mapping[str, str]) -> str:
    """A workspace and a store with one completed run in ``folder``; returns the run's id."""
    def runjournal(*args: str) -> str:
        done = subprocess.run([str(RUNJOURNAL), *args], cwd=folder, env=env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"runjournal {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    runjournal("init")
    run = json.loads(runjournal("run", "hi", "--wait", "--json"))
    if run["state"] != "completed":
        raise RuntimeError(f"the run did not complete: {run}")
    return str(run["run_id"])


def commands(run_id: str) -> dict[str, list[str]]:
    """What is timed, by name; the first is the baseline."""
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--help": [str(RUNJOURNAL), "--help"],
        "status": [str(RUNJOURNAL), "status", run_id],
        "history": [str(RUNJOURNAL), "history", run_id],
        "status's libraries": [sys.executable, "-c", LIBRARIES],
    }


def seconds_of(argv: Sequence[str], folder: Path, env: Mapping[str, str]) -> float:
    """Wall-clock seconds of one whole process, from start to exit."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return seconds


def time_all(cases: Mapping[str, list[str]], folder: Path, env: Mapping[str, str], repeat: int) -> dict[str, Any]:
    """Median milliseconds of each case over ``repeat`` turns, and its ratio to the first (the baseline)."""
    for argv in cases.values():  # untimed: fills the bytecode cache, and the views file for `status`
        seconds_of(argv, folder, env)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, argv in cases.items():
            samples[name].append(seconds_of(argv, folder, env) * 1000)
    baseline = statistics.median(samples[next(iter(cases))])
    figures: dict[str, Any] = {}
    for name, values in samples.items():
        median = statistics.median(values)
        figures[name] = {"median_ms": round(median, 1), "min_ms": round(min(values), 1),
                         "ratio": round(median / baseline, 2), "samples_ms": [round(v, 1) for v in values]}
    return figures


def print_table(repeat: int, figures: Mapping[str, Any]) -> None:
    """Median, fastest and ratio to the baseline per command."""
    print(f"cli bench: whole processes, median of {repeat}, in a folder made by `runjournal init` and "
          "`runjournal run \"hi\" --wait`")
    print(f"{'':20}{'median ms':>10}{'min ms':>9}{'ratio':>8}")
    for name, f in figures.items():
        mark = ""
        if name in AIMED:
            mark = f"   aim <= {AIM_MS:.0f} ms: {'met' if f['median_ms'] <= AIM_MS else 'NOT met'}"
        print(f"{name:20}{f['median_ms']:>10.1f}{f['min_ms']:>9.1f}{f['ratio']:>8.2f}{mark}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.cli", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                   help=f"timed runs of each command; the median is kept (default {DEFAULT_REPEAT})")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "cli.json", help="results JSON path")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Make the store, time every command, print the table, write the JSON; returns the results."""
    args = parse_args(argv)
    with fresh_dir("runjournal-bench-cli-") as folder:
        env, work = base_env(), folder / "work"
        work.mkdir()
        cases = commands(make_store(work, env))
        figures = time_all(cases, work, {**env, "PYTHONPYCACHEPREFIX": str(folder / "pycache")}, args.repeat)
    print_table(args.repeat, figures)
    met = all(figures[name]["median_ms"] <= AIM_MS for name in AIMED)
    print(f"aim: {' and '.join(AIMED)} within {AIM_MS:.0f} ms: {'met' if met else 'NOT met'}")
    results = {
        "repeat": args.repeat,
        "statistic": "median wall-clock ms of a whole process; ratio = median / median of `python -c pass`",
        "setup": "a temp folder with `runjournal init` and one completed run (`runjournal run \"hi\" --wait`); "
                 "the workspace there chooses the store; bytecode cached in a private folder, filled by an untimed run",
        "commands": figures,
        "aim_ms": AIM_MS,
        "aim_commands": list(AIMED),
        "aim_met": met,
    }
    print(f"results written to {write_results(args.out, BENCH, results)}")
    return results


if __name__ == "__main__":
    main()
