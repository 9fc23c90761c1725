"""Recompute every hash chain from the stored bytes, page by page.

The chain is recomputed from what was stored (decrypted and decompressed, but
not upcast), so an edited byte, a deleted middle event or two swapped events
break a link here. A truncated tail leaves no broken link: compare the heads
with an exported anchor for that.

``verify_store`` does more than the chains: it checks the file itself (SQLite's
``quick_check``, or ``integrity_check`` when deep), that the events table holds
no row the log's order does not list (a row at a position <= 0, a row hidden
from or listed twice in that order), that each run read the way the loader
reads it (its events selected by run id) holds exactly the rows, bytes and
version that were verified, and that the inline queue and leases hold the rows
the log gives (``inline_check``). Everyone (verify, export, the views, the loader)
reads the same rows; whatever lies outside them is reported here. Memory stays
bounded by the number of runs, never by the number of events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from ..domain import chain
from .checkpoint_check import CheckpointCheck
from .decoding import decode_stored, expected_link
from .inline_check import inline_problems
from .log_reading import LogReading, fold
from .models import VerifyProblem, VerifyReport

if TYPE_CHECKING:
    from .unit_of_work import UnitOfWork

OUTSIDE_LISTED = 20  # rows outside the log named one by one; the rest are counted


def verify_log(
    mapper: Mapper[Any],
    pages: Iterator[list[Notification]],
    *,
    progress: Callable[[int], None] | None = None,
    at_versions: dict[str, int] | None = None,
    log_head_at: int = 0,
    reading: LogReading | None = None,
    checkpoints: CheckpointCheck | None = None,
) -> VerifyReport:
    """Check every chain of the log; report the first broken link of each run.

    ``at_versions`` (run -> version) also records each run's chain at that
    version and ``log_head_at`` the log head after that many events: what
    anchors taken earlier are compared with. ``reading`` tallies every row read;
    ``checkpoints`` notes the LangGraph checkpoints the runs recorded.
    """
    walk = _Walk(at_versions or {}, checkpoints)
    head_at = chain.GENESIS if log_head_at == 0 else ""
    for page in pages:
        for n in page:
            if reading is not None:
                reading.add(str(n.originator_id), n.id, n.state, n.topic)
            walk.take(mapper, n)
            if walk.events == log_head_at:
                head_at = walk.log_head
        if progress:
            progress(len(page))
    problems = sorted(walk.broken.values(), key=lambda p: (p.run_id, p.version or 0))
    return VerifyReport(
        ok=not problems,
        runs_checked=len(walk.heads.keys() | walk.broken.keys()),
        events_checked=walk.events,
        problems=problems,
        heads={run_id: head for run_id, (_, head) in walk.heads.items()},
        versions={run_id: version for run_id, (version, _) in walk.heads.items()},
        log_head=walk.log_head,
        anchored=walk.anchored,
        log_head_at=head_at,
    )


@dataclass
class _Walk:
    """Where a walk along the log has got to: each run's head, the first break of each, the log head."""

    at_versions: dict[str, int]
    checkpoints: CheckpointCheck | None = None
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    broken: dict[str, VerifyProblem] = field(default_factory=dict)
    anchored: dict[str, str] = field(default_factory=dict)
    log_head: str = chain.GENESIS
    events: int = 0

    def take(self, mapper: Mapper[Any], n: Notification) -> None:
        """Check the next event of the log against its run's head and fold it into the log head."""
        self.events += 1
        run_id = str(n.originator_id)
        stored = ""
        if run_id not in self.broken:
            problem, stored, fields = _check_one(mapper, n, self.heads.get(run_id, (0, chain.GENESIS)))
            if not problem and self.checkpoints is not None and "StepRecorded" in n.topic:
                self.checkpoints.note(run_id, n.originator_version, fields)
            if problem:
                self.broken[run_id] = VerifyProblem(run_id=run_id, version=n.originator_version, problem=problem)
            else:
                self.heads[run_id] = (n.originator_version, stored)
                if self.at_versions.get(run_id) == n.originator_version:
                    self.anchored[run_id] = stored
        self.log_head = hashlib.sha256((self.log_head + (stored or _unverified(n))).encode()).hexdigest()


def _check_one(mapper: Mapper[Any], n: Notification, head: tuple[int, str]) -> tuple[str, str, dict[str, Any]]:
    """(problem or "", the stored chain value, the event's fields)."""
    last_version, previous = head
    if n.originator_version != last_version + 1:
        found = n.originator_version
        return f"expected version {last_version + 1} next, found {found} (missing or reordered events)", "", {}
    try:
        fields = decode_stored(mapper, n)
        expected = expected_link(previous, n, fields)
    except Exception as e:  # noqa: BLE001 - any undecodable byte is a finding, not a crash
        return f"stored event cannot be decoded ({type(e).__name__}: {e})", "", {}
    if fields.get("chain") != expected:
        return "chain mismatch: the stored event was edited, or an earlier one was removed", "", {}
    return "", expected, fields


def _unverified(n: Notification) -> str:
    """What the log head folds for an event of a broken run: a digest of the row as stored.

    A broken run has no chain to fold from its first bad event on, yet any later
    change to its rows must still change the log head that anchors hold.
    """
    h = hashlib.sha256(f"{n.originator_id}\x00{n.originator_version}\x00{n.topic}\x00".encode())
    h.update(n.state)
    return "row:" + h.hexdigest()


def file_damage(journal: UnitOfWork, *, deep: bool = False) -> str:
    """One line saying how the store's file is damaged ("" when sound, or not a file store)."""
    recorder: Any = journal._store.recorder
    check = getattr(recorder, "check_file", None)
    if check is None:
        return ""
    found: list[str] = check(deep=deep)
    if not found:
        return ""
    pragma = "integrity_check" if deep else "quick_check"
    more = " (and more findings)" if len(found) > 1 else ""
    name = getattr(recorder, "file_name", "") or journal.url
    return (f"store file {name} is damaged: SQLite's {pragma} found: {' '.join(found[0].split())}{more}; "
            "its events cannot be trusted or may not be readable: restore it from a backup")


def verify_store(
    journal: UnitOfWork,
    *,
    deep: bool = False,
    check_file: bool = True,
    progress: Callable[[int], None] | None = None,
    at_versions: dict[str, int] | None = None,
    log_head_at: int = 0,
) -> VerifyReport:
    """Everything ``verify`` checks: the file, every chain, the rows beside the log, each run as loaded.

    ``progress`` is called with the events of each page read, twice over: once
    reading the log in order, once reading each run the way the loader does.
    """
    if check_file and (damage := file_damage(journal, deep=deep)):
        return VerifyReport(ok=False, runs_checked=0, events_checked=0,
                            problems=[VerifyProblem(run_id="", version=None, problem=damage)])
    reading = LogReading()
    recorder = journal._store.recorder
    checkpoints = CheckpointCheck(recorder) if hasattr(recorder, "stored_checkpoints") else None
    report = verify_log(
        journal._store.mapper, reading.pages(journal.raw_pages()), progress=progress,
        at_versions=at_versions, log_head_at=log_head_at, reading=reading, checkpoints=checkpoints,
    )
    problems = list(report.problems)
    if checkpoints is not None:
        checkpoints.flush()
        problems += checkpoints.problems
    if reading.error is not None:
        problems.append(VerifyProblem(run_id="", version=None, problem=(
            f"the log cannot be read past position {reading.last}: {' '.join(str(reading.error).split())[:300]}")))
    else:
        problems += rows_beside_the_log(journal, reading)
    problems += runs_as_loaded(journal, reading, report, progress=progress)
    problems += _snapshot_problems(journal, report)
    if reading.error is None:
        problems += _inline_problems(journal, reading, {p.run_id for p in problems})
    problems.sort(key=lambda p: (p.run_id, p.version or 0))
    return report.model_copy(update={"ok": not problems, "problems": problems})


def _snapshot_problems(journal: UnitOfWork, report: VerifyReport) -> list[VerifyProblem]:
    """Every stored snapshot its run's verified events do not prove (see load_check.py)."""
    from . import load_check  # it imports this module

    broken = {p.run_id for p in report.problems}
    try:
        found = load_check.snapshot_problems(journal._store, (r for r in report.heads if r not in broken))
    except Exception as e:  # noqa: BLE001 - the store failing here is reported, like any reading
        return [_cannot_check("the snapshots", e)]
    return [VerifyProblem(run_id=r, version=v, problem=p) for r, v, p in found]


def _cannot_check(what: str, error: Exception) -> VerifyProblem:
    """The store failed while ``what`` was being checked: a finding of the store as a whole."""
    detail = " ".join(str(error).split())[:200]
    return VerifyProblem(run_id="", version=None, problem=f"{what} cannot be checked ({type(error).__name__}: {detail})")


def _inline_problems(journal: UnitOfWork, reading: LogReading, broken: set[str]) -> list[VerifyProblem]:
    """Every inline queue or lease row the log does not give (see inline_check.py)."""
    try:
        return inline_problems(journal, reading, broken)
    except Exception as e:  # noqa: BLE001 - the store failing here is reported, like any reading
        return [_cannot_check("the inline queue and leases", e)]


def rows_beside_the_log(journal: UnitOfWork, reading: LogReading) -> list[VerifyProblem]:
    """Rows of the events table the log's order does not list: at a position <= 0, hidden or duplicated."""
    log_rows = getattr(journal._store.recorder, "log_rows", None)
    if log_rows is None:
        return []
    total, after, outside, listed = log_rows(reading.last, OUTSIDE_LISTED)
    problems = [
        VerifyProblem(run_id=run_id, version=version, problem=(
            f"a row is stored at position {position}, outside the log (positions start at 1): verify, "
            "export, the views and the loader do not read it, so it was written around the journal; "
            "find out who wrote it, then delete it or restore the store from a backup"))
        for position, run_id, version in listed
    ]
    if outside > len(listed):
        problems.append(VerifyProblem(run_id="", version=None, problem=(
            f"{outside - len(listed)} more rows are stored outside the log (at a position <= 0)")))
    in_order = total - after - outside
    if in_order != reading.events:
        problems.append(VerifyProblem(run_id="", version=None, problem=(
            f"the events table holds {in_order} rows at positions 1..{reading.last}, but reading the log "
            f"in order gave {reading.events}: rows are hidden from the log's order or listed twice "
            "(a damaged table or index: run `runjournal verify --deep`)")))
    return problems


def runs_as_loaded(
    journal: UnitOfWork,
    reading: LogReading,
    report: VerifyReport,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[VerifyProblem]:
    """Read each run the way the loader does (its events selected by run id) and compare with what was verified.

    A run whose chain is already broken is not read again: its first problem is reported.
    """
    recorder: Any = journal._store.recorder
    broken = {p.run_id for p in report.problems}
    problems: list[VerifyProblem] = []
    for run_id, (count, digest) in reading.runs.items():
        if progress is not None:
            progress(count)
        if run_id in broken:
            continue
        problem = _as_loaded(recorder, run_id, count, digest, report.versions.get(run_id, 0))
        if problem:
            problems.append(VerifyProblem(run_id=run_id, version=problem[0], problem=problem[1]))
    return sorted(problems, key=lambda p: (p.run_id, p.version or 0))


def _as_loaded(recorder: Any, run_id: str, count: int, digest: bytes, head: int) -> tuple[int | None, str] | None:
    """(version, problem) when the loader would read other rows of ``run_id`` than verify did, else None."""
    try:
        originator_id: UUID | str = UUID(run_id)
    except ValueError:
        originator_id = run_id
    try:
        rows = recorder.select_events(originator_id)
    except Exception as e:  # noqa: BLE001 - a run the loader cannot read is the finding
        detail = " ".join(str(e).split())[:200]
        return None, f"the loader cannot read this run's events ({type(e).__name__}: {detail})"
    loaded = 0
    folded = b""
    for row in rows:
        if row.originator_version != loaded + 1:
            seen = row.originator_version
            what = "twice" if seen <= loaded else f"after version {loaded} (missing events)"
            return seen, f"the loader reads version {seen} {what}: the loaded run differs from the verified log"
        loaded += 1
        folded = fold(folded, row.state)
    if loaded != head:
        return loaded or None, (f"the loader reads {loaded} events of this run, verify read {head}: "
                                "the loaded run differs from the verified log")
    if loaded != count or folded != digest:
        return None, ("the loader reads other bytes for this run than the log lists (the store's index "
                      "disagrees with its table: run `runjournal verify --deep`)")
    return None
