"""Verify on load: a run is rebuilt only from events whose chain links check.

Every event the loader applies is checked the way ``verify`` checks it: its
version follows the one before, and its stored ``chain`` equals the link
recomputed from the chain before it and its own fields. The first event that
fails raises ``TamperDetected`` (run, version, what) and nothing of the run is
returned.

Snapshots (every 50 events) are derived data with no chain of their own: an
edited snapshot would change ``created_by``, the input or the output while every
event still verifies. So a snapshot is used only once it is *proven*: the events
up to its version were folded (each link checked) and gave exactly the state
the snapshot holds, chain head included. A proof is remembered, per process,
with a digest of the snapshot's stored bytes; a later load uses the snapshot
only while its bytes are those proven, and checks the events after it. A
snapshot this process writes is proven by construction (it is taken from the
run just saved, or from a verified load). A snapshot that fails its proof is
never used: the run is rebuilt from its verified events (a full replay), a
warning is logged, and ``verify`` reports the snapshot (``snapshot_problems``).

Cost: a cached run costs nothing (it was checked when loaded, and what this
process appended is its own). A fresh load checks each event it applies: one
canonical JSON and one sha256 per event, computed from the decoded event; only
when that disagrees is the link recomputed from the stored bytes before any
upcasting, exactly as ``verify`` does, before calling it a break. The first
fresh load of a run with a snapshot written by another process replays the
whole run once to prove it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from ..domain import Run, chain
from ..domain.errors import TamperDetected
from . import logs
from .decoding import decode_stored, expected_link

PROOFS_KEPT = 8192  # proven snapshots remembered per process
LINKS_KEPT = 65536  # checked links remembered per process (about 200 bytes each)
_NOT_STORED = ("originator_id", "originator_version")  # added by the mapper, not part of the stored state
_AGGREGATE_ONLY = ("_id", "_version", "_pending_events")  # kept out of a snapshot's state
_log = logs.logger("runjournal.load_check")

BROKEN_LINK = "chain mismatch: the stored event was edited, or an earlier one was removed"


class Proofs:
    """Snapshots proven in this process: (run id, version) -> digest of the stored bytes."""

    def __init__(self, size: int = PROOFS_KEPT) -> None:
        self._size = size
        self._proven: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0  # snapshots that failed their proof (never used)

    def holds(self, run_id: str, version: int, digest: str) -> bool:
        with self._lock:
            found = self._proven.get((run_id, version))
            if found is not None:
                self._proven.move_to_end((run_id, version))
            return found == digest

    def add(self, run_id: str, version: int, digest: str) -> None:
        with self._lock:
            self._proven[(run_id, version)] = digest
            self._proven.move_to_end((run_id, version))
            while len(self._proven) > self._size:
                self._proven.popitem(last=False)


def snapshot_digest(stored: StoredEvent) -> str:
    """What a proof remembers of a stored snapshot: every byte of it, and where it claims to be."""
    h = hashlib.sha256()
    h.update(f"{stored.originator_id}\0{stored.originator_version}\0{stored.topic}\0".encode())
    h.update(stored.state)
    return h.hexdigest()


# -- checking events ---------------------------------------------------------------


def check_link(mapper: Any, previous: str, stored: StoredEvent, event: Any) -> str:
    """The stored chain of ``event`` once it is proven to follow ``previous``; else ``TamperDetected``."""
    fields = event.__dict__
    stored_chain = fields.get("chain")
    try:  # from the decoded event: equal to verify's link whenever no upcast changed the fields
        fast = chain.link(
            previous,
            event_type=type(event).__name__,
            run_id=str(stored.originator_id),
            version=stored.originator_version,
            timestamp=fields["timestamp"],
            class_version=getattr(type(event), "class_version", 1),
            data={k: v for k, v in fields.items() if k not in _NOT_STORED},
        )
    except Exception:  # noqa: BLE001 - the authoritative check below decides
        fast = None
    if fast is not None and fast == stored_chain:
        return fast
    # The authoritative link: from the stored bytes, before upcasting, as `verify` computes it.
    try:
        raw = decode_stored(mapper, stored)
        expected = expected_link(previous, stored, raw)
    except Exception as e:  # noqa: BLE001 - bytes that do not decode prove nothing
        raise TamperDetected(_id(stored), stored.originator_version,
                             f"stored event cannot be decoded ({type(e).__name__})") from None
    if raw.get("chain") != expected:
        raise TamperDetected(_id(stored), stored.originator_version, BROKEN_LINK)
    return expected


def _decode(mapper: Any, stored: StoredEvent) -> Any:
    try:
        return mapper.to_domain_event(stored)
    except TamperDetected:  # a foreign topic: the error names it
        raise
    except Exception as e:  # noqa: BLE001 - an event that cannot be read cannot be applied either
        raise TamperDetected(_id(stored), stored.originator_version,
                             f"stored event cannot be decoded ({type(e).__name__})") from None


class Links:
    """Links this process has checked: (run id, version) -> (digest of previous chain + stored bytes, chain).

    A link is a pure function of the chain before it and the event's stored bytes, so an
    event whose bytes (and predecessor) are those checked before needs one sha256 of its
    bytes instead of the canonical JSON of its fields: any edit since changes the digest
    and the link is computed again.
    """

    def __init__(self, size: int = LINKS_KEPT) -> None:
        self._size = size
        self._checked: OrderedDict[tuple[str, int], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(previous: str, stored: StoredEvent) -> bytes:
        h = hashlib.sha256(previous.encode())
        h.update(stored.topic.encode())
        h.update(b"\0")
        h.update(stored.state)
        return h.digest()

    def get(self, key: tuple[str, int], digest: bytes) -> str | None:
        with self._lock:
            found = self._checked.get(key)
        return found[1] if found is not None and found[0] == digest else None

    def add(self, key: tuple[str, int], digest: bytes, link: str) -> None:
        with self._lock:
            self._checked[key] = (digest, link)
            self._checked.move_to_end(key)
            while len(self._checked) > self._size:
                self._checked.popitem(last=False)



def checked(
    mapper: Any, run_id: str, stored_events: Iterable[StoredEvent], *, previous: str = chain.GENESIS, after: int = 0,
    links: Links | None = None,
) -> Iterator[Any]:
    """The domain events of ``stored_events``, each yielded only once its version and link check.

    ``links``: the links checked before, to skip recomputing those whose bytes are unchanged
    (none: every link is computed, as ``verify`` does).
    """
    expected_version = after + 1
    for stored in stored_events:
        if stored.originator_version != expected_version:
            found = stored.originator_version
            raise TamperDetected(run_id, found, f"expected version {expected_version} next, found {found} "
                                 "(missing or reordered events)")
        event = _decode(mapper, stored)
        if links is None:
            previous = check_link(mapper, previous, stored, event)
        else:
            key, digest = (run_id, expected_version), Links.digest(previous, stored)
            known = links.get(key, digest)
            if known is None:
                known = check_link(mapper, previous, stored, event)
                links.add(key, digest, known)
            previous = known
        expected_version += 1
        yield event


def checked_events(store: Any, run_id: UUID) -> list[Any]:
    """Every event of a run, in order, each link checked (what ``history`` shows)."""
    stored = store.recorder.select_events(run_id)
    return list(checked(store.mapper, str(run_id), stored, links=getattr(store, "checked_links", None)))


# -- loading -----------------------------------------------------------------------------


def state_of(run: Run) -> dict[str, Any]:
    """The state a snapshot of ``run`` holds."""
    return {k: v for k, v in vars(run).items() if k not in _AGGREGATE_ONLY}


def upcast_state(run_class: type[Run], state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's state as the current class holds it (what eventsourcing does when it mutates one)."""
    version = state.pop("class_version", 1)
    while version < getattr(run_class, "class_version", 1):
        getattr(run_class, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return state


def proves(run: Run | None, snapshot: Any) -> str:
    """Why ``snapshot`` is not the state ``run`` (folded from verified events) had at its version; "" if it is."""
    if run is None or run.version != snapshot.originator_version:
        return "no event at its version"
    if getattr(snapshot, "topic", None) != get_topic(type(run)):
        return "it names another aggregate class"
    state = upcast_state(type(run), dict(snapshot.state))
    if state.get("chain") != run.chain:
        return "its chain head is not the chain of the event at its version"
    if state != state_of(run):
        differing = sorted(k for k in state.keys() | state_of(run).keys() if state.get(k) != state_of(run).get(k))
        return f"its state differs from its events ({', '.join(differing[:5])})"
    return ""


def _snapshots(store: Any) -> Any:
    return getattr(store, "snapshots", None)


def load_run(store: Any, run_id: UUID, *, version: int | None = None) -> Run | None:
    """The run at ``version`` (default: its last), rebuilt from checked events; ``None`` if it has none.

    Raises ``TamperDetected`` at the first event that fails its check.
    """
    key = str(run_id)
    proofs: Proofs = store.snapshot_proofs
    run: Run | None = None
    previous, after = chain.GENESIS, 0
    to_prove: tuple[StoredEvent, str] | None = None
    snapshots = _snapshots(store)
    if snapshots is not None:
        found = snapshots.recorder.select_events(run_id, desc=True, limit=1, lte=version)
        if found:
            stored_snapshot = found[0]
            digest = snapshot_digest(stored_snapshot)
            if proofs.holds(key, stored_snapshot.originator_version, digest):
                run = _from_snapshot(snapshots.mapper, stored_snapshot)
            if run is not None:
                previous, after = run.chain, run.version
            else:
                to_prove = (stored_snapshot, digest)
    stored = store.recorder.select_events(run_id, gt=after or None, lte=version)
    links = getattr(store, "checked_links", None)
    for event in checked(store.mapper, key, stored, previous=previous, after=after, links=links):
        run = event.mutate(run)
        if to_prove is not None and run is not None and run.version == to_prove[0].originator_version:
            _prove(store, run, *to_prove)
            to_prove = None
    if to_prove is not None:  # the snapshot claims a version the run's events never reached
        _refuse(store, key, to_prove[0], "no event at its version")
    return run


def _from_snapshot(mapper: Any, stored: StoredEvent) -> Run | None:
    try:
        run: Run = mapper.to_domain_event(stored).mutate(None)
    except Exception:  # noqa: BLE001 - a proven snapshot that no longer decodes: replay instead
        return None
    return run


def _prove(store: Any, run: Run, stored: StoredEvent, digest: str) -> None:
    try:
        snapshot = _snapshots(store).mapper.to_domain_event(stored)
    except Exception as e:  # noqa: BLE001 - an unreadable snapshot is refused like a forged one
        _refuse(store, run.run_id, stored, f"it cannot be decoded ({type(e).__name__})")
        return
    problem = proves(run, snapshot)
    if problem:
        _refuse(store, run.run_id, stored, problem)
    else:
        store.snapshot_proofs.add(run.run_id, stored.originator_version, digest)


def _refuse(store: Any, run_id: str, stored: StoredEvent, problem: str) -> None:
    store.snapshot_proofs.refused += 1
    _log.warning("snapshot refused, run rebuilt from its verified events", run_id=run_id,
                 version=stored.originator_version, problem=problem)


def write_snapshot(store: Any, run: Run) -> None:
    """Store a snapshot of ``run`` (ours: just saved, or loaded verified) and remember it as proven."""
    snapshots = _snapshots(store)
    snapshot_class = getattr(type(run), "Snapshot", None) or type(store).snapshot_class
    snapshot = snapshot_class.take(run)
    stored = snapshots.mapper.to_stored_event(snapshot)
    snapshots.recorder.insert_events([stored])
    store.snapshot_proofs.add(run.run_id, stored.originator_version, snapshot_digest(stored))


# -- for verify ------------------------------------------------------------------------------


def snapshot_problems(store: Any, run_ids: Iterable[str]) -> list[tuple[str, int, str]]:
    """(run id, version, problem) for every stored snapshot of these runs that its events do not prove.

    Each run with snapshots is folded once from its checked events; a run whose
    events break is skipped (``verify`` reports its first broken link itself).
    """
    snapshots = _snapshots(store)
    if snapshots is None:
        return []
    problems: list[tuple[str, int, str]] = []
    for key in run_ids:
        run_id = UUID(key)
        stored_snapshots = list(snapshots.recorder.select_events(run_id))
        if not stored_snapshots:
            continue
        at: dict[int, list[StoredEvent]] = {}
        for s in stored_snapshots:
            at.setdefault(s.originator_version, []).append(s)
        run: Run | None = None
        try:
            for event in checked(store.mapper, key, store.recorder.select_events(run_id)):
                run = event.mutate(run)
                for s in at.pop(run.version, ()) if run is not None else ():
                    problem = _snapshot_problem(snapshots.mapper, run, s)
                    if problem:
                        problems.append((key, s.originator_version, f"snapshot refused: {problem}"))
        except TamperDetected:
            continue
        last = run.version if run is not None else 0
        for version in sorted(at):
            problems.append((key, version, f"snapshot refused: no event at its version (the run ends at {last})"))
    return problems


def _snapshot_problem(mapper: Any, run: Run, stored: StoredEvent) -> str:
    try:
        snapshot = mapper.to_domain_event(stored)
    except Exception as e:  # noqa: BLE001 - a finding, not a crash
        return f"it cannot be decoded ({type(e).__name__})"
    return proves(run, snapshot)


def _id(stored: StoredEvent) -> str:
    return str(stored.originator_id)


__all__ = (
    "Proofs", "check_link", "checked", "checked_events", "load_run", "proves", "snapshot_digest",
    "snapshot_problems", "state_of", "write_snapshot",
)
