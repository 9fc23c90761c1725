"""One random mutation of one row of the store or its views is reported, refused, or changes nothing.

Hypothesis picks a table (events, snapshots, the inline queue and leases, each
built-in view), a row and a
mutation: change a column (flip a byte, another row's value, a version or run
id moved), delete the row, copy it into another run, or move it in the log
(rowid to -N or past the end). Then, with the anchors and the checkpoint taken
before the mutation held outside the store, one of these must hold:

- ``verify`` reports a problem (with the anchors and ``--views``), or the
  checkpoint no longer proves, or loading some run raises;
- the mutation changed nothing that anyone reads: every run loads as before,
  the inline queue and leases hold the same rows and the views equal a
  rebuild from the log.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runjournal import Journal, RunjournalError
from runjournal.app import anchors as anchoring
from runjournal.app import checkpoints
from runjournal.app.views_check import check_views

from .helpers import finished_run

EVENTS, SNAPSHOTS = "stored_events", "stored_snapshots"
VIEW_TABLES = ("runs", "threads", "approvals", "recovery_intents", "messages", "run_facts")
MUTATIONS = ("flip_byte", "other_rows_value", "shift_int", "delete", "copy_to_other_run", "move_rowid")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store with finished, cancelled, waiting and long (snapshotted) runs, and what it held."""
    folder = tmp_path_factory.mktemp("template")
    url = f"sqlite:///{folder / 'j.db'}"
    with Journal.open(url) as j:
        for i in range(2):
            finished_run(j, f"hello {i}")
        j.submit(agent_id="a", input={"n": "cancel me"})
        j.cancel(j.queue()[0].run_id, reason="not needed", actor="carol")
        j.submit(agent_id="a", input={"n": "approve me"})
        claim = j.claim_next(worker_id="w1", start=True)
        approval = j.request_approval(claim, tool_name="deploy", tool_args={"env": "prod"})
        j.resolve_approval(approval, decision="approve", actor="bob")
        j.submit(agent_id="a", input={"n": "long"})
        claim = j.claim_next(worker_id="w1", start=True)
        for step in range(55):  # past the snapshot interval (50)
            j.record_step(claim, "message" if step % 5 == 0 else "step", {"role": "assistant", "content": f"s{step}"})
        j.complete(claim, output={"text": "long done"})
        j.submit(agent_id="a", input={"n": "running"})  # live runs: rows in the inline queue and leases
        j.start(j.claim_next(worker_id="w2"))
        j.submit(agent_id="a", input={"n": "queued"}, priority=3)
        j.catch_up()
        inline = (j.inline_views.queue_table(), j.inline_views.lease_rows())
        assert len(inline[0]) == 3 and len(inline[1]) >= 1, inline
        runs = {r.run_id: r.model_dump() for r in j.runs()}
        loaded = {run_id: j.get_run(run_id).model_dump() for run_id in runs}
        anchor = anchoring.take(j)
        head = checkpoints.checkpoint(j)
    db = sqlite3.connect(folder / "j.db")
    assert db.execute(f"SELECT count(*) FROM {SNAPSHOTS}").fetchone()[0] >= 1, "the template must hold a snapshot"
    db.close()
    yield {"folder": folder, "loaded": loaded, "anchor": anchor, "head": head, "inline": inline}


def copy_store(template: dict[str, Any], into: Path) -> Path:
    into.mkdir(exist_ok=True)
    for name in ("j.db", "j.views.db"):
        shutil.copy(template["folder"] / name, into / name)
    return into


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def mutate(db: sqlite3.Connection, table: str, pick: int, mutation: str, data: st.DataObject) -> str:
    """Apply one mutation to one row; a description of what was done ("" when it does not apply)."""
    has_rowid = table != SNAPSHOTS
    key = "rowid" if has_rowid else "originator_id, originator_version"
    rows = db.execute(f"SELECT {key}, * FROM {table} ORDER BY {key}").fetchall()
    if not rows:
        return ""
    row = rows[pick % len(rows)]
    names = columns(db, table)
    ident = row[: 1 if has_rowid else 2]
    where = "rowid = ?" if has_rowid else "originator_id = ? AND originator_version = ?"
    values = dict(zip(names, row[len(ident):], strict=True))
    if mutation == "delete":
        db.execute(f"DELETE FROM {table} WHERE {where}", ident)
        return f"deleted {table} row {ident}"
    if mutation == "move_rowid":
        if not has_rowid:
            return ""
        target = data.draw(st.sampled_from([-5, 0, rows[-1][0] + 7]), label="new rowid")
        try:
            db.execute(f"UPDATE {table} SET rowid = ? WHERE rowid = ?", (target, ident[0]))
        except sqlite3.IntegrityError:
            return ""
        return f"moved {table} row {ident} to rowid {target}"
    if mutation == "copy_to_other_run":
        if table not in (EVENTS, SNAPSHOTS):
            return ""
        others = sorted({r[len(ident)] for r in rows} - {values["originator_id"]})
        if not others:
            return ""
        other = data.draw(st.sampled_from(others), label="other run")
        latest = db.execute(f"SELECT max(originator_version) FROM {table} WHERE originator_id = ?", (other,)).fetchone()[0]
        copy = {**values, "originator_id": other, "originator_version": latest + 1}
        marks = ", ".join("?" for _ in copy)
        db.execute(f"INSERT INTO {table} ({', '.join(copy)}) VALUES ({marks})", list(copy.values()))
        return f"copied {table} row {ident} into run {other} at version {latest + 1}"
    column = data.draw(st.sampled_from(names), label="column")
    old = values[column]
    if mutation == "flip_byte":
        if not isinstance(old, (bytes, str)) or not old:
            return ""
        raw = bytearray(old if isinstance(old, bytes) else old.encode())
        at = data.draw(st.integers(0, len(raw) - 1), label="byte")
        raw[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        new: Any = bytes(raw) if isinstance(old, bytes) else raw.decode("utf-8", "replace")
    elif mutation == "other_rows_value":
        choices = sorted({r[len(ident) + names.index(column)] for r in rows} - {old}, key=repr)
        if not choices:
            return ""
        new = data.draw(st.sampled_from(choices), label="value")
    else:  # shift_int
        if not isinstance(old, int):
            return ""
        new = old + data.draw(st.sampled_from([-1, 1, 1000]), label="shift")
    try:
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (new, *ident))
    except sqlite3.IntegrityError:
        return ""
    return f"set {table}.{column} of row {ident} from {old!r:.40} to {new!r:.40}"


def findings(folder: Path, template: dict[str, Any]) -> tuple[list[str], bool]:
    """(what verify, the anchors, the checkpoint and the loader report; whether reads are as before)."""
    found: list[str] = []
    same = True
    try:
        with Journal.open(f"sqlite:///{folder / 'j.db'}") as j:
            report = j.verify()
            found += [p.problem for p in report.problems]
            found += anchoring.check(j, template["anchor"])
            found += checkpoints.verify_checkpoint(j, template["head"]).problems
            views = check_views(j)
            found += views.differences
            for run_id, before in template["loaded"].items():
                try:
                    if j.get_run(run_id).model_dump() != before:
                        same = False
                except RunjournalError as e:
                    found.append(f"loading {run_id}: {e}")
            if len(j.runs()) != len(template["loaded"]):
                same = False
            if (j.inline_views.queue_table(), j.inline_views.lease_rows()) != template["inline"]:
                same = False  # what workers claim and recovery expires
    except RunjournalError as e:
        found.append(f"opening: {e}")
    return found, same


INLINE_TABLES = ("runjournal_queue", "runjournal_leases")
TABLES = (EVENTS, EVENTS, EVENTS, EVENTS, SNAPSHOTS, *INLINE_TABLES, *VIEW_TABLES)


def test_one_mutation_of_one_row_is_reported_refused_or_harmless(
    template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    seen: set[tuple[str, str]] = set()

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(table=st.sampled_from(TABLES), pick=st.integers(0, 10_000), mutation=st.sampled_from(MUTATIONS),
           data=st.data())
    def one_mutation(table: str, pick: int, mutation: str, data: st.DataObject) -> None:
        folder = copy_store(template, tmp_path_factory.mktemp("mutated"))
        target = folder / ("j.db" if table in (EVENTS, SNAPSHOTS, *INLINE_TABLES) else "j.views.db")
        with sqlite3.connect(target) as db:
            done = mutate(db, table, pick, mutation, data)
        if not done:
            return
        seen.add((table, mutation))
        found, same = findings(folder, template)
        assert found or same, f"undetected, and it changed what is read: {done}"

    one_mutation()
    # The property must reach what it claims: every table mutated, every kind of mutation on events.
    assert {t for t, _ in seen} == {EVENTS, SNAPSHOTS, *INLINE_TABLES, *VIEW_TABLES}, seen
    assert {m for t, m in seen if t == EVENTS} == set(MUTATIONS), seen
