"""Processes that open one views file at the same moment all get it: none fails "database is locked".

SQLite answers the race for the lock that converts (or recovers) a file in WAL mode
at once, without waiting out the busy timeout; the CLI met it when a worker and a
few readers started together.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from runjournal.projections.runner import open_views

ROUNDS = 12
PROCESSES = 8


def _open(path: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    start.wait()
    try:
        db = open_views(path)
        db.execute("CREATE TABLE IF NOT EXISTS seen (x)")
        results.put("ok")
    except Exception as e:  # noqa: BLE001 - the test reports what each process met
        results.put(f"{type(e).__name__}: {e}")


def test_processes_opening_one_new_views_file_at_once_all_get_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for round_ in range(ROUNDS):
        path = str(tmp_path / f"views-{round_}.db")
        start, results = context.Barrier(PROCESSES), context.Queue()
        processes = [context.Process(target=_open, args=(path, start, results)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        outcomes += [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
    assert [o for o in outcomes if o != "ok"] == []
    assert len(outcomes) == ROUNDS * PROCESSES
