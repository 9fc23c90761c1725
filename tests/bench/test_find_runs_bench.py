"""bench.find_runs at a small size: it builds its log, times every query and reports what each found."""

from __future__ import annotations

from bench import find_runs


def test_the_find_runs_bench_runs_every_query_on_a_small_log() -> None:
    figures = find_runs.bench(runs=600, repeat=1)
    assert figures["runs"] == 600 and figures["events"] > 600 * 2
    assert set(figures["queries"]) == set(find_runs.queries(600, *[find_runs.Ticker().now] * 2))
    found = {name: q["found"] for name, q in figures["queries"].items()}
    assert found["tool"] > 0 and found["approved_by"] > 0 and found["decision"] > 0 and found["error"] > 0
    assert all(q["journal_ms"] > 0 and q["raw_ms"] > 0 for q in figures["queries"].values())
