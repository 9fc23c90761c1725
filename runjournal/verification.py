"""Recompute every hash chain from the stored bytes, page by page.

The chain is recomputed from what was stored (decrypted and decompressed, but
not upcast), so an edited byte, a deleted middle event or two swapped events
break a link here. A truncated tail leaves no broken link: compare the heads
with an exported anchor for that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import resolve_topic

from .domain import chain
from .models import VerifyProblem, VerifyReport


def decode_stored(mapper: Mapper[Any], n: Notification) -> dict[str, Any]:
    """The stored field values of one event, before any upcasting."""
    state = n.state
    if mapper.cipher:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor:
        state = mapper.compressor.decompress(state)
    fields: dict[str, Any] = mapper.transcoder.decode(state)
    return fields


def expected_link(previous: str, n: Notification, fields: dict[str, Any]) -> str:
    """The chain value an untouched event would have."""
    event_class = resolve_topic(n.topic)
    return chain.link(
        previous,
        event_type=event_class.__name__,
        run_id=str(n.originator_id),
        version=n.originator_version,
        timestamp=fields["timestamp"],
        class_version=fields.get("class_version", 1),
        data=fields,
    )


def verify_log(
    mapper: Mapper[Any],
    pages: Iterator[list[Notification]],
    *,
    progress: Callable[[int], None] | None = None,
    at_versions: dict[str, int] | None = None,
    log_head_at: int = 0,
) -> VerifyReport:
    """Check every chain of the log; report the first broken link of each run.

    ``at_versions`` (run -> version) also records each run's chain at that
    version and ``log_head_at`` the log head after that many events: what
    anchors taken earlier are compared with.
    """
    heads: dict[str, tuple[int, str]] = {}
    broken: dict[str, VerifyProblem] = {}
    anchored: dict[str, str] = {}
    at_versions = at_versions or {}
    log_head = chain.GENESIS
    head_at = ""
    events = 0
    for page in pages:
        for n in page:
            events += 1
            run_id = str(n.originator_id)
            if run_id in broken:
                continue
            problem, stored = _check_one(mapper, n, heads.get(run_id, (0, chain.GENESIS)))
            if problem:
                broken[run_id] = VerifyProblem(run_id=run_id, version=n.originator_version, problem=problem)
                continue
            heads[run_id] = (n.originator_version, stored)
            if at_versions.get(run_id) == n.originator_version:
                anchored[run_id] = stored
            log_head = hashlib.sha256((log_head + stored).encode()).hexdigest()
            if events == log_head_at:
                head_at = log_head
        if progress:
            progress(len(page))
    problems = sorted(broken.values(), key=lambda p: (p.run_id, p.version or 0))
    return VerifyReport(
        ok=not problems,
        runs_checked=len(heads.keys() | broken.keys()),
        events_checked=events,
        problems=problems,
        heads={run_id: head for run_id, (_, head) in heads.items()},
        versions={run_id: version for run_id, (version, _) in heads.items()},
        log_head=log_head,
        anchored=anchored,
        log_head_at=head_at,
    )


def _check_one(mapper: Mapper[Any], n: Notification, head: tuple[int, str]) -> tuple[str, str]:
    """(problem or "", the stored chain value)."""
    last_version, previous = head
    if n.originator_version != last_version + 1:
        found = n.originator_version
        return f"expected version {last_version + 1} next, found {found} (missing or reordered events)", ""
    try:
        fields = decode_stored(mapper, n)
        expected = expected_link(previous, n, fields)
    except Exception as e:  # noqa: BLE001 - any undecodable byte is a finding, not a crash
        return f"stored event cannot be decoded ({type(e).__name__}: {e})", ""
    if fields.get("chain") != expected:
        return "chain mismatch: the stored event was edited, or an earlier one was removed", ""
    return "", expected
