"""Reading the followed views: plain SQL in, pydantic models out."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from ..projections.sealing import ViewCipher

if TYPE_CHECKING:  # sqlite-utils is imported where the views are opened, not by every reader
    from sqlite_utils import Database


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class RunRow(_Row):
    run_id: str
    thread_id: str
    agent_id: str
    state: str
    priority: int
    version: int
    worker_id: str | None
    epoch: int
    lease_expires_at: str | None
    created_at: str
    updated_at: str
    created_by: str
    error: str | None
    output: Any
    parent_run_id: str | None
    parent_version: int | None = None
    lineage: str = "root"  # how it came to be: root, retry or fork (of parent_run_id at parent_version)


class RunPage(_Row):
    """One page of the runs a query found, and how many it found in all."""

    runs: list[RunRow]
    total: int
    limit: int
    offset: int


class ThreadSummary(_Row):
    thread_id: str
    agent_id: str
    latest_run_id: str
    status: str
    run_count: int
    message_count: int
    created_at: str
    updated_at: str


class ApprovalRow(_Row):
    approval_id: str
    run_id: str
    thread_id: str
    agent_id: str
    tool_name: str
    tool_args: Any
    tool_call_id: str | None
    args_digest: str
    checkpoint_ref: str | None
    status: str
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    edits: Any
    edited_args: Any
    edited_args_digest: str | None
    deadline: str | None = None  # when it expires undecided
    assignees: Any = None  # who alone may decide (None: anyone)
    on_expiry: str | None = None  # reject or fail

    @property
    def edit_diff(self) -> dict[str, Any] | None:
        """For an edit, what changed: each argument asked for and approved that differs, as {arg: [asked, approved]}."""
        if self.edited_args is None or not isinstance(self.tool_args, dict) or not isinstance(self.edited_args, dict):
            return None
        keys = sorted(self.tool_args.keys() | self.edited_args.keys())
        return {k: [self.tool_args.get(k), self.edited_args.get(k)] for k in keys
                if self.tool_args.get(k) != self.edited_args.get(k)}


class RecoveryIntent(_Row):
    run_id: str
    thread_id: str
    agent_id: str
    state: str
    intent: str
    attempts: int
    has_request: bool
    checkpoint_ref: str | None
    resume_kind: str | None
    resume_payload: Any
    lease_expires_at: str | None
    updated_at: str


class Message(_Row):
    position: int
    thread_id: str
    run_id: str
    role: str
    content: str
    created_at: str


JSON_COLUMNS = {"output", "tool_args", "edits", "edited_args", "resume_payload", "assignees"}


def select(
    db: Database,
    model: type[_Row],
    sql: str,
    params: list[Any] | None = None,
    *,
    cipher: ViewCipher | None = None,
    sealed: Collection[str] = (),
) -> list[Any]:
    """Rows of a query as models (``sealed`` columns decrypted with ``cipher``, then JSON columns decoded)."""
    cursor = db.conn.execute(sql, params or [])
    names = [c[0] for c in cursor.description]
    opened = [n for n in names if n in sealed] if cipher is not None and cipher.enabled else []
    out = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for name in opened:
            row[name] = cipher.unseal(row[name])  # type: ignore[union-attr]
        for name in JSON_COLUMNS & row.keys():
            if row[name] is not None:
                row[name] = _json_cell(row[name], name, model)
        out.append(model(**row))
    return out


def _json_cell(text: Any, column: str, model: type[_Row]) -> Any:
    """A JSON column's value; a cell that is not JSON is a damaged views file, said with its fix."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        from ..domain import StoreError

        raise StoreError(f"the views file is damaged: column {column} of a {model.__name__} row is not JSON; "
                         "rebuild the views from the log with `runjournal projections rebuild`") from None


def where(**filters: Any) -> tuple[str, list[Any]]:
    """A WHERE clause for the filters that are not None."""
    given = {k: v for k, v in filters.items() if v is not None}
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in given), list(given.values())
