"""Tables show a run id's random tail: runs made in the same moment never look alike."""

from __future__ import annotations

from rich.console import Console

from runjournal import Journal
from runjournal.adapters.clock import ManualClock
from runjournal.cli import render


def test_runs_made_in_one_millisecond_get_distinct_short_ids_in_the_runs_table() -> None:
    with Journal.open("memory://", clock=ManualClock()) as j:  # the clock stands still: one millisecond
        runs = j.submit_many([{"agent_id": "a", "input": {"i": i}} for i in range(20)])
    assert len({r.run_id[:8] for r in runs}) == 1  # the time-ordered head is shared ...
    shorts = [render.short_id(r.run_id) for r in runs]
    assert len(set(shorts)) == 20 and all(r.run_id.endswith(s) for r, s in zip(runs, shorts, strict=True))
    console = Console(record=True, width=200)
    console.print(render.runs_table("runs", runs))
    text = console.export_text()
    assert all(s in text for s in shorts)  # ... and the table shows the tails
