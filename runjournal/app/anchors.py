"""Anchors: the head chain of every run and of the whole log at one moment.

Kept outside the store, anchors reveal what no chain can: a truncated tail (a
removed last event leaves no broken link) and a log changed before the moment
they were taken. ``take`` writes them; ``parse`` checks a file's shape before
anything is compared; ``compare`` reports only what the anchors add to a
verify report, so each problem is printed once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..domain import InvalidInput

if TYPE_CHECKING:
    from .journal import Journal
    from .models import VerifyReport

Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Anchors(BaseModel):
    """One anchors file, as ``export --anchors`` writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    events: Annotated[int, Field(ge=0)]
    log_head: Digest
    runs: dict[str, Digest]
    versions: dict[str, Annotated[int, Field(ge=1)]]

    @model_validator(mode="after")
    def _same_runs(self) -> Anchors:
        if self.runs.keys() != self.versions.keys():
            odd = sorted(self.runs.keys() ^ self.versions.keys())
            raise ValueError(f"runs and versions must name the same runs; only one of them names {', '.join(odd[:5])}")
        if sum(self.versions.values()) > self.events:
            raise ValueError(f"the runs' versions add up to more than the {self.events} events it says the log held")
        return self


def take(journal: Journal) -> dict[str, Any]:
    """The anchors of the store as it is now (verified first), as the JSON document to keep."""
    report = journal.verify()
    return {"events": report.events_checked, "log_head": report.log_head, "runs": report.heads,
            "versions": report.versions}


def parse(doc: Any, source: str = "anchors") -> Anchors:
    """The anchors in ``doc``, or InvalidInput naming ``source`` and every field that is wrong."""
    try:
        return Anchors.model_validate(doc)
    except ValidationError as e:
        found = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'the document'}: {err['msg']}" for err in e.errors()[:5])
        more = f" (and {e.error_count() - 5} more)" if e.error_count() > 5 else ""
        raise InvalidInput(source, f"not an anchors file from `runjournal export --anchors`: {found}{more}") from None


def compare(anchors: Anchors, report: VerifyReport) -> list[str]:
    """What the anchors reveal beyond ``report`` (made with their versions and event count); empty: consistent.

    A run whose chain ``report`` already names as broken is not reported again.
    """
    broken = {p.run_id for p in report.problems}
    problems: list[str] = []
    for run_id, head in anchors.runs.items():
        if run_id in broken:
            continue
        version = anchors.versions[run_id]
        seen = report.anchored.get(run_id)
        if seen is None:
            problems.append(f"run {run_id}: missing or truncated before version {version} (anchored)")
        elif seen != head:
            problems.append(f"run {run_id} version {version}: head differs from the anchor")
    if report.events_checked < anchors.events:
        problems.append(f"log truncated: {report.events_checked} events, the anchor saw {anchors.events}")
    elif report.log_head_at != anchors.log_head:
        problems.append("log head differs from the anchor: events were removed, added or reordered before it")
    return problems


def check(journal: Journal, doc: Any) -> list[str]:
    """Every problem of the store: verify's, then what the anchors in ``doc`` add."""
    anchors = parse(doc)
    report = journal.verify(at_versions=anchors.versions, log_head_at=anchors.events)
    return [f"run {p.run_id} version {p.version}: {p.problem}" for p in report.problems] + compare(anchors, report)
