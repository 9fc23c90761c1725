"""Shared helpers for the benches: timing, peak memory, temp dirs, results with machine info."""

from __future__ import annotations

import cProfile
import io
import json
import os
import platform
import pstats
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import plots

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    """Wall-clock seconds of one timed block (set when the block exits)."""

    seconds: float = 0.0


@contextmanager
def timer() -> Iterator[Timing]:
    """Time the block with ``time.perf_counter``; read ``.seconds`` after it."""
    timing = Timing()
    start = time.perf_counter()
    try:
        yield timing
    finally:
        timing.seconds = time.perf_counter() - start


@contextmanager
def fresh_dir(prefix: str = "runjournal-bench-") -> Iterator[Path]:
    """A new empty temp directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return round(peak * scale / (1024 * 1024), 1)


def rate(count: int, seconds: float) -> float:
    """``count`` per second, rounded (0.0 for a zero duration)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def machine_info() -> dict[str, Any]:
    """Timestamp, Python, SQLite and platform of this run."""
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python_version": platform.python_version(),
        "sqlite_version": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def write_results(path: Path | str, bench: str, figures: Mapping[str, Any]) -> Path:
    """Write ``figures`` plus bench name and machine info as JSON, then draw its plot; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"bench": bench, **machine_info(), **figures}
    out.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    # The plot of a run written to bench/results goes to docs/images (docs/performance.md shows it);
    # a run written elsewhere (--out) draws beside its JSON and leaves the docs' images alone.
    images = plots.IMAGES_DIR if out.resolve().parent == RESULTS_DIR else out.parent
    if (png := plots.draw(bench, doc, images)) is not None:
        print(f"plot written to {png}")
    return out


class Ticker:
    """One millisecond per call from a fixed day in the past: a reproducible clock for log builders
    (every lease such a builder grants is long expired by the time the log is read)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def child_case(module: str, *args: str) -> dict[str, Any]:
    """Run one case of ``module`` in a fresh interpreter (``--child ARGS``); it reports JSON on its last line.

    A fresh process per case keeps peak RSS and caches per case.
    """
    done = subprocess.run([sys.executable, "-m", module, "--child", *args],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} child {args[0]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def profile_tables(profile: cProfile.Profile, top: int) -> dict[str, str]:
    """A profile as text: the top functions by cumulative time, and the top 15 by own time."""
    cumulative, own = io.StringIO(), io.StringIO()
    pstats.Stats(profile, stream=cumulative).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profile, stream=own).sort_stats("tottime").print_stats(15)
    return {"cumulative": without_machine_paths(cumulative.getvalue()),
            "tottime": without_machine_paths(own.getvalue())}


def without_machine_paths(text: str) -> str:
    """``text`` with this checkout's and this interpreter's folders cut from its file names (results are committed)."""
    import sysconfig

    roots = {str(Path(__file__).resolve().parent.parent), *(sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib"))}
    for root in sorted(roots, key=len, reverse=True):  # the longest first: site-packages lies inside the prefix
        text = text.replace(root.rstrip("/") + "/", "")
    return text
