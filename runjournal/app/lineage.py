"""Lineage: the tree of runs made from one another (retries and forks), read from the ``runs`` view."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from .queries import RunRow

MAX_DEPTH = 10_000  # a parent always exists before its child: a longer chain is a damaged view, not a lineage


class LineageNode(BaseModel):
    """One run of a lineage and the runs made from it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    agent_id: str
    state: str
    lineage: str  # root, retry or fork (of its parent, at parent_version)
    parent_version: int | None = None
    created_at: str
    created_by: str
    children: list[LineageNode] = Field(default_factory=list)

    def walk(self) -> list[LineageNode]:
        """This node and every node below it, depth first."""
        return [self, *(n for child in self.children for n in child.walk())]


def lineage_of(
    run_id: str, *, row: Callable[[str], RunRow | None], children: Callable[[Sequence[str]], list[RunRow]],
) -> LineageNode:
    """The whole tree ``run_id`` belongs to, from its first ancestor down (one indexed query per generation)."""
    top = row(run_id)
    for _ in range(MAX_DEPTH):
        if top is None or top.parent_run_id is None:
            break
        above = row(top.parent_run_id)
        if above is None:  # the parent is gone from the view (an import of part of a log): start here
            break
        top = above
    if top is None:
        raise LookupError(run_id)
    below: dict[str, list[RunRow]] = {}
    generation = [top.run_id]
    for _ in range(MAX_DEPTH):
        if not generation:
            break
        found = children(generation)
        for child in found:
            below.setdefault(str(child.parent_run_id), []).append(child)
        generation = [c.run_id for c in found]

    def node(r: RunRow) -> LineageNode:
        return LineageNode(run_id=r.run_id, agent_id=r.agent_id, state=r.state, lineage=r.lineage,
                           parent_version=r.parent_version, created_at=r.created_at, created_by=r.created_by,
                           children=[node(c) for c in below.get(r.run_id, [])])

    return node(top)
