"""Processes racing claim_next on one store never both own a run."""

from __future__ import annotations

import multiprocessing as mp

from runjournal import Journal

RUNS = 150


def _claim_all(url: str, worker: str, out, go) -> None:
    claimed = []
    with Journal.open(url) as j:
        go.wait(60)  # both processes start claiming at the same moment
        while (claim := j.claim_next(worker_id=worker, lease_seconds=60)) is not None:
            claimed.append((claim.run_id, claim.epoch))
    out.put((worker, claimed))


def test_two_processes_racing_for_claims_never_share_a_run(shared_store_url: str) -> None:
    with Journal.open(shared_store_url) as j:
        submitted = {j.submit(agent_id="a", input={"i": i}).run_id for i in range(RUNS)}
    ctx = mp.get_context("spawn")
    out, go = ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=_claim_all, args=(shared_store_url, f"w{i}", out, go)) for i in range(2)]
    for p in workers:
        p.start()
    go.set()
    results = dict(out.get(timeout=120) for _ in workers)
    for p in workers:
        p.join(timeout=30)
        assert p.exitcode == 0
    claims = [c for claimed in results.values() for c in claimed]
    run_ids = [run_id for run_id, _ in claims]
    assert len(run_ids) == len(set(run_ids)) == RUNS
    assert set(run_ids) == submitted
    with Journal.open(shared_store_url) as j:
        for run_id in submitted:
            history = j.history(run_id)
            assert [e.type for e in history].count("Dequeued") == 1
        assert j.queue() == []
        assert j.verify().ok
