"""The ``run_facts`` view: what happened in each run, one row per fact, indexed to find runs by it.

A fact is (kind, value, actor): ``tool`` with the tool's name for every tool result a run
recorded (a tool it called), ``decision`` with approve / reject / edit and who decided for
every approval decided. ``Journal.find_runs`` joins it to the ``runs`` view.
"""

from __future__ import annotations

from .base import ProjectedEvent
from .rows import Row, RowProjection


class RunFactsView(RowProjection):
    name = "run_facts"
    version = 1
    pk = "position"
    append_only = True
    columns = {"position": int, "run_id": str, "fact": str, "value": str, "actor": str}  # noqa: RUF012
    indexes = (("fact", "value", "run_id"), ("fact", "actor", "run_id"))

    def key(self, e: ProjectedEvent) -> int | None:
        if e.type == "ApprovalResolved":
            return e.position
        if e.type == "StepRecorded" and e.data["kind"] == "tool_result" and isinstance(e.data["content"], dict):
            return e.position if isinstance(e.data["content"].get("tool"), str) else None
        return None

    def apply(self, row: Row | None, e: ProjectedEvent) -> Row:
        if e.type == "ApprovalResolved":
            return {"position": e.position, "run_id": e.run_id, "fact": "decision", "value": e.data["decision"],
                    "actor": e.actor}
        return {"position": e.position, "run_id": e.run_id, "fact": "tool", "value": e.data["content"]["tool"],
                "actor": None}
