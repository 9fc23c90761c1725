"""`import` proves the whole file before it writes: a refused file leaves the store byte for byte as it was.

Each refusal names the file and line (``FILE:LINE: problem``). The file is read as a
stream, twice (prove, then write in one transaction), keeping per run only its last
version, chain head and state. A topic in the file names no code: ``this`` (which prints
the Zen of Python when imported) and ``tempfile:_TemporaryFileCloser`` (which deleted a
file when an import built it) are refused unread. The same holds for a topic edited
into a store, for every verb that reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runjournal.domain import chain

from runjournal import InvalidInput, Journal
from runjournal.app.audit import ImportRefused, export_events, import_events, prove_import

from .conftest import CLI, Result

ZEN = "Beautiful is better than ugly"


def _failed(result: Result, needle: str) -> None:
    assert result.code == 1, f"exit {result.code}\n{result.out}\n{result.err}"
    assert "Traceback" not in result.err and ZEN not in result.out + result.err, result.err
    assert needle in result.message, f"{needle!r} not in {result.message!r}"


def _store_bytes(folder: Path, name: str) -> dict[str, str]:
    """sha256 of the store file and of every file SQLite keeps beside it."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob(f"{name}*"))}


def _empty_store(folder: Path, name: str) -> str:
    url = f"sqlite:///{folder / name}"
    Journal.open(url).close()
    return url


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True) + "\n"


def _forged_next(previous: dict[str, Any], event_type: str, data: dict[str, Any], *, position: int) -> dict[str, Any]:
    """A line that follows ``previous`` in its run with a correct chain link (only the table can refuse it)."""
    data = {**data, chain.FORMAT_FIELD: chain.CURRENT_FORMAT}
    version = previous["version"] + 1
    timestamp = previous["timestamp"]
    from datetime import datetime

    link = chain.link(previous["chain"], event_type=event_type, run_id=previous["run_id"], version=version,
                      timestamp=datetime.fromisoformat(timestamp), class_version=1,
                      data={**data, "actor": "mallory"})
    return {"position": position, "run_id": previous["run_id"], "version": version,
            "topic": f"runjournal.Run.{event_type}.v1", "type": event_type, "timestamp": timestamp,
            "actor": "mallory", "chain": link, "class_version": 1, "data": data}


Edit = Callable[[list[dict[str, Any]], Path], list[str]]


def _bad_json(records: list[dict[str, Any]], _: Path) -> list[str]:
    lines = [_line(r) for r in records]
    return [*lines[:2], "{not json\n", *lines[3:]]


def _set(index: int, **changes: Any) -> Edit:
    def edit(records: list[dict[str, Any]], _: Path) -> list[str]:
        records[index] = {**records[index], **changes}
        return [_line(r) for r in records]
    return edit


def _data(index: int, **changes: Any) -> Edit:
    def edit(records: list[dict[str, Any]], _: Path) -> list[str]:
        records[index]["data"].update(changes)
        return [_line(r) for r in records]
    return edit


def _drop(index: int) -> Edit:
    return lambda records, _: [_line(r) for i, r in enumerate(records) if i != index]


def _missing_field(records: list[dict[str, Any]], _: Path) -> list[str]:
    del records[3]["chain"]
    return [_line(r) for r in records]


def _repeat_line(records: list[dict[str, Any]], _: Path) -> list[str]:
    lines = [_line(r) for r in records]
    return [*lines[:4], lines[3], *lines[4:]]


def _repeat_version(records: list[dict[str, Any]], _: Path) -> list[str]:
    again = {**records[3], "position": records[-1]["position"] + 1}
    return [_line(r) for r in [*records, again]]


def _swap(records: list[dict[str, Any]], _: Path) -> list[str]:
    first = records[0]["run_id"]
    at = [i for i, r in enumerate(records) if r["run_id"] == first][1:3]
    records[at[0]], records[at[1]] = records[at[1]], records[at[0]]
    positions = sorted(r["position"] for r in records)
    return [_line({**r, "position": p}) for r, p in zip(records, positions, strict=True)]


def _forbidden_transition(records: list[dict[str, Any]], _: Path) -> list[str]:
    created = records[0]  # the first run's Created: completing it straight away is not allowed
    rest = [r for r in records if r["run_id"] != created["run_id"]]
    forged = _forged_next(created, "Completed", {"output": {"deploy": "prod"}}, position=rest[-1]["position"] + 1)
    return [_line(r) for r in [created, *rest, forged]]


def _tail(records: list[dict[str, Any]], _: Path) -> list[str]:
    return [_line(r) for r in records[3:]]


def _closer(records: list[dict[str, Any]], folder: Path) -> list[str]:
    victim = folder / "victim.txt"
    victim.write_text("keep me")
    records[1] = {**records[1], "topic": "tempfile:_TemporaryFileCloser", "type": "_TemporaryFileCloser",
                  "data": {"name": str(victim), "delete": True, "close_called": False, "file": {}}}
    return [_line(r) for r in records]


def _last_line_bad(records: list[dict[str, Any]], _: Path) -> list[str]:
    return [*(_line(r) for r in records), '{"position": \n']


REFUSALS: dict[str, tuple[Edit, int, str]] = {
    # name: (edit, line refused, what the message says)
    "not json": (_bad_json, 3, "not valid JSON"),
    "missing field": (_missing_field, 4, "not an exported event (missing chain)"),
    "topic this": (_set(3, topic="this"), 4, "topic 'this' is not an event type of runjournal"),
    "closer topic": (_closer, 2, "topic 'tempfile:_TemporaryFileCloser' is not an event type"),
    "type mismatch": (_set(2, type="Completed"), 3, "type 'Completed' does not match its topic"),
    "edited data": (_data(0, agent_id="root"), 1, "chain mismatch"),
    "edited actor": (_set(4, actor="cfo"), 5, "chain mismatch"),
    "deleted line": (_drop(2), 3, "events are missing"),
    "repeated line": (_repeat_line, 5, "a repeated or reordered line"),
    "repeated version": (_repeat_version, 13, "a duplicate"),
    "swapped lines": (_swap, 2, "jumps from version 1"),
    "forbidden transition": (_forbidden_transition, 9, "the transition table refuses it"),
    "tail export": (_tail, 1, "starts at version"),
    "unexpected field": (_data(1, shell="rm -rf /"), 2, "unexpected shell"),
    "reserved field": (_data(1, chain="0" * 64), 2, "data holds chain"),
    "inner topic": (_data(0, originator_topic="this"), 1, "data.originator_topic 'this' is not the run aggregate"),
    "bad position": (_set(2, position="3"), 3, "position must be a whole number"),
    "bad run id": (_set(0, run_id="../../etc"), 1, "is not a run id"),
    "no time zone": (_set(0, timestamp="2026-01-01T00:00:00"), 1, "has no time zone"),
    "newer class": (_set(0, class_version=9), 1, "class_version 9 of Created is newer"),
    "last line": (_last_line_bad, 13, "not valid JSON"),
}


@pytest.fixture
def exported(populated) -> tuple[CLI, list[dict[str, Any]]]:
    cli, _, _ = populated
    out = cli("export")
    assert out.code == 0, out.err
    records = [json.loads(line) for line in out.out.splitlines()]
    assert len(records) == 12
    return cli, records


def test_every_refused_file_names_its_line_and_leaves_the_store_byte_for_byte(exported) -> None:
    cli, records = exported
    folder = cli.cwd
    cases = []
    for i, (name, (edit, line, needle)) in enumerate(REFUSALS.items()):
        file = folder / f"bad{i}.jsonl"
        file.write_text("".join(edit(json.loads(json.dumps(records)), folder)))
        store = f"copy{i}.db"
        url = _empty_store(folder, store)
        cases.append((name, file, line, needle, store, url, _store_bytes(folder, store)))
    results: list[Result] = []
    for start in range(0, len(cases), 6):  # a few at a time: the machine running the suite is small
        results += cli.many(*(["--store", url, "import", file] for _, file, _, _, _, url, _ in cases[start:start + 6]))
    for (name, file, line, needle, store, _, before), result in zip(cases, results, strict=True):
        _failed(result, f"{file}:{line}: ")
        assert needle in result.message, f"{name}: {needle!r} not in {result.message!r}"
        assert _store_bytes(folder, store) == before, f"{name}: the store changed"
    assert (folder / "victim.txt").read_text() == "keep me"


def test_a_proven_file_imports_and_verifies(exported) -> None:
    cli, records = exported
    log = cli.cwd / "log.jsonl"
    log.write_text("".join(_line(r) for r in records))
    copy = f"sqlite:///{cli.cwd / 'copy.db'}"
    done = cli("--store", copy, "import", log)
    assert done.code == 0 and "imported 12 events" in done.out, done.err
    verify, export = cli.many(["--store", copy, "verify", "--json"], ["--store", copy, "export"])
    assert verify.code == 0 and json.loads(verify.out)["ok"] is True, verify.out + verify.err
    assert [json.loads(line) for line in export.out.splitlines()] == records


def test_verbs_reading_a_store_with_an_edited_topic_refuse_it_and_import_nothing(populated) -> None:
    cli, hello, deploy = populated
    with sqlite3.connect(cli.cwd / "j.db") as db:
        assert db.execute("UPDATE stored_events SET topic = 'this' WHERE originator_id = ? AND "
                          "originator_version = 3", (uuid.UUID(deploy["run_id"]).hex,)).rowcount == 1
    cli("run", "one more", "--json")  # queued behind the forged run
    status, history, other, threads, worker = cli.many(
        ["status", deploy["run_id"]], ["history", deploy["run_id"]], ["status", hello["run_id"]],
        ["threads", "--json"], ["worker", "--until-idle"])
    for result in (status, history):
        _failed(result, f"run {deploy['run_id']} at version 3")
    for result in (other, threads, worker):  # the views refuse the forged run and follow the others
        assert result.code == 0 and ZEN not in result.out + result.err, result.err
        assert "Traceback" not in result.err, result.err
    assert "idle (1 ok, 0 failed)" in worker.out + worker.err, worker.out + worker.err
    states = {t["latest_run_id"]: t["status"] for t in threads.json()}
    assert states[deploy["run_id"]] == "queued"  # as followed up to the refused row, never past it


def test_verify_names_an_edited_topic_without_importing_it(populated) -> None:
    cli, _, deploy = populated
    with sqlite3.connect(cli.cwd / "j.db") as db:
        db.execute("UPDATE stored_events SET topic = 'this' WHERE originator_id = ? AND originator_version = 3",
                   (uuid.UUID(deploy["run_id"]).hex,))
    verify = cli("verify")
    assert verify.code == 1 and ZEN not in verify.out + verify.err, verify.out + verify.err
    assert f"run {deploy['run_id']} version 3" in verify.out and "'this'" in verify.out, verify.out


# -- in process: streaming, the second reading, every kind of source ---------------------------------


def _journal_export(runs: int, steps: int) -> list[str]:
    with Journal.open("memory://") as j:
        for _ in range(runs):
            j.submit(agent_id="a", input={"pad": "x" * 200})
            claim = j.claim_next(worker_id="w")
            j.start(claim)
            for i in range(steps):
                j.record_step(claim, "step", {"i": i, "pad": "y" * 200})
            j.complete(claim, output={"ok": True})
        return [json.dumps(r, sort_keys=True, default=str) + "\n" for r in export_events(j)]


@pytest.fixture(scope="module")
def export_lines() -> list[str]:
    return _journal_export(runs=40, steps=120)


def test_the_proof_streams_and_stops_at_the_first_bad_line(export_lines) -> None:
    def lines() -> Iterator[str]:
        yield from export_lines[:10]
        yield "[]\n"
        raise AssertionError("the proof read past the line it refused")

    with pytest.raises(ImportRefused) as caught:
        prove_import(lines(), name="feed.jsonl")
    assert (caught.value.file, caught.value.line) == ("feed.jsonl", 11)
    assert str(caught.value).startswith("feed.jsonl:11: not an exported event")


def test_memory_stays_bounded_by_the_runs_not_the_events(export_lines) -> None:
    size = sum(len(line) for line in export_lines)
    assert len(export_lines) > 4000 and size > 2_000_000
    tracemalloc.start()
    try:
        proof = prove_import(iter(export_lines))  # the list is already in memory: only the proof is measured
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (proof.events, proof.runs) == (len(export_lines), 40)
    assert peak < size / 10, f"proving {size} bytes peaked at {peak} bytes"


@pytest.mark.parametrize("kind", ["path", "text file", "one-shot iterable"])
def test_every_kind_of_source_imports(kind: str, export_lines, tmp_path: Path) -> None:
    file = tmp_path / "log.jsonl"
    file.write_text("".join(export_lines))
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    with Journal.open(url) as j:
        if kind == "path":
            count = import_events(j, file)
        elif kind == "text file":
            with file.open(encoding="utf-8") as f:
                count = import_events(j, f)
        else:
            count = import_events(j, (line for line in export_lines))
        assert count == len(export_lines)
        report = j.verify()
        assert report.ok and report.events_checked == count, report.problems
        assert len(j.queue()) == 0 and len(j.runs()) == 40


class _Changing(io.StringIO):
    """A file whose text changes after it was first read: the import must notice and write nothing."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)
        self._second = second
        self.name = "moving.jsonl"

    def seek(self, *args: Any) -> int:
        if self._second is not None and self.tell() > 0:
            text, self._second = self._second, None  # type: ignore[assignment]
            self.truncate(0)
            super().seek(0)
            self.write(text)
        return super().seek(*args)


def test_a_file_changed_between_proof_and_write_writes_nothing(export_lines, tmp_path: Path) -> None:
    edited = [*export_lines[:5], export_lines[5].replace('"actor": "worker:w"', '"actor": "cfo"'), *export_lines[6:]]
    assert edited != export_lines
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    with Journal.open(url) as j:
        with pytest.raises(ImportRefused, match="changed while it was imported"):
            import_events(j, _Changing("".join(export_lines), "".join(edited)))
        assert j.max_position() == 0
        with pytest.raises(ImportRefused, match="changed while it was imported"):
            import_events(j, _Changing("".join(export_lines), "".join(export_lines[:-1])))
        assert j.max_position() == 0


def test_a_store_that_holds_events_is_refused_before_reading(export_lines) -> None:
    with Journal.open("memory://") as j:
        j.submit(agent_id="a", input={})
        with pytest.raises(InvalidInput, match="import needs an empty store"):
            import_events(j, iter(["{not json"]))
