"""Finding runs by what happened: the filters of ``Journal.find_runs`` as one validated query, and its SQL.

Every filter is an index of the ``runs`` view (state, agent, thread, parent, created_at)
or of the ``run_facts`` view (a tool called, a decision and who made it); the error text
is matched in SQL, or, when the views file is encrypted, in Python over the decrypted
errors. Pages are ``LIMIT`` / ``OFFSET`` in the order runs were created.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..domain import RunState

DEFAULT_LIMIT = 100
APPROVING = ("approve", "edit")  # the decisions that let the tool run


class RunQuery(BaseModel):
    """What to find: every filter given must hold; None means any."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str | None = None
    agent_id: str | None = None
    thread_id: str | None = None
    tool: str | None = None  # called this tool (recorded a result of it)
    approved_by: str | None = None  # an approval of the run was approved (or edited) by this actor
    decision: Literal["approve", "reject", "edit"] | None = None  # an approval of the run was decided so
    error: str | None = Field(default=None, min_length=1)  # its error contains this text (case ignored)
    waiting_longer: timedelta | None = None  # waiting for approval for longer than this
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=100_000)
    offset: int = Field(default=0, ge=0)

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str | None) -> str | None:
        if value is not None and value not in {str(s) for s in RunState}:
            raise ValueError(f"unknown state {value!r} (one of {', '.join(str(s) for s in RunState)})")
        return value

    @field_validator("waiting_longer")
    @classmethod
    def _not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("a duration is not negative")
        return value

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _iso(moment: datetime) -> str:
    """A time as the views store it (UTC ISO text: compared as text, in time order)."""
    return moment.astimezone(UTC).isoformat()


def conditions(q: RunQuery, now: datetime, *, error_in_sql: bool) -> tuple[str, list[Any]]:
    """The WHERE clause (may be empty) and its parameters for ``q`` over the ``runs`` view."""
    parts: list[str] = []
    params: list[Any] = []
    for column, value in (("state", q.state), ("agent_id", q.agent_id), ("thread_id", q.thread_id)):
        if value is not None:
            parts.append(f"{column} = ?")
            params.append(value)
    for sql, param in fact_selects(q):  # one IN each: SQLite probes them as it walks the runs
        parts.append(f"run_id IN ({sql})")
        params.append(param)
    if q.waiting_longer is not None:
        parts.append("state = 'waiting_for_approval' AND updated_at <= ?")
        params.append(_iso(now - q.waiting_longer))
    if q.since is not None:
        parts.append("created_at >= ?")
        params.append(_iso(q.since))
    if q.until is not None:
        parts.append("created_at < ?")
        params.append(_iso(q.until))
    if q.error is not None and error_in_sql:
        parts.append("instr(lower(error), lower(?)) > 0")
        params.append(q.error)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


RUN_FILTERS = ("state", "agent_id", "thread_id", "error", "waiting_longer", "since", "until")
DENSE = 1000  # found runs above which a page is read along the creation-time index, not sorted


def fact_selects(q: RunQuery) -> list[tuple[str, Any]]:
    """One SELECT of run ids from the run_facts index per fact filter given, with its parameter."""
    selects: list[tuple[str, Any]] = []
    if q.tool is not None:
        selects.append(("SELECT run_id FROM run_facts WHERE fact = 'tool' AND value = ?", q.tool))
    if q.decision is not None:
        selects.append(("SELECT run_id FROM run_facts WHERE fact = 'decision' AND value = ?", q.decision))
    if q.approved_by is not None:
        selects.append(("SELECT run_id FROM run_facts WHERE fact = 'decision' AND actor = ?"
                        " AND value IN ('approve', 'edit')", q.approved_by))
    return selects


def fact_sets(q: RunQuery) -> tuple[str, list[Any]] | None:
    """The runs the fact filters find, as one INTERSECT of the run_facts index (None: no fact filter)."""
    selects = fact_selects(q)
    return (" INTERSECT ".join(sql for sql, _ in selects), [p for _, p in selects]) if selects else None


def count_sql(q: RunQuery, clause: str, params: list[Any]) -> tuple[str, list[Any]]:
    """How to count what ``q`` finds: from the facts index alone when only facts are asked for."""
    facts = fact_sets(q)
    if facts is not None and all(getattr(q, f) is None for f in RUN_FILTERS):
        return f"SELECT COUNT(DISTINCT run_id) FROM ({facts[0]})", facts[1]
    return f"SELECT COUNT(*) FROM runs{clause}", params


def page_sql(q: RunQuery, clause: str, total: int) -> str:
    """One page of what ``q`` finds, oldest first.

    Many runs found by their facts are read along the creation-time index until the page is
    full (sorting them all costs more); a few are looked up by id and sorted.
    """
    along = " INDEXED BY idx_runs_created_at" if total > DENSE and fact_sets(q) is not None else ""
    return f"SELECT * FROM runs{along}{clause} ORDER BY created_at, run_id LIMIT ? OFFSET ?"


def error_matches(q: RunQuery, error: str | None) -> bool:
    """Whether a run's error holds the query's text (the filter applied outside SQL)."""
    return q.error is None or (error is not None and q.error.lower() in error.lower())


def parse_duration(text: str, option: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``2d`` or ``1w`` as a duration; ValueError naming ``option`` otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    number, unit = text[:-1], text[-1:]
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in units or amount < 0:
        raise ValueError(f"{option}: {text!r} is not a duration (give e.g. 90s, 30m, 1h, 2d, 1w)")
    return timedelta(seconds=amount * units[unit])


def parse_moment(text: str, option: str, now: datetime) -> datetime:
    """An ISO date or time (UTC unless it says), or a duration ago (``2h``), as a time."""
    try:
        return now - parse_duration(text, option)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is neither a time (2026-12-04, 2026-12-04T09:30) nor a duration "
                         "ago (2h, 3d)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
