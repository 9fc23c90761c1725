"""The LangGraph checkpoints a run's log vouches for: each recorded digest recomputed from the stored bytes.

A ``langgraph`` agent records, per super-step, the id and digest of the checkpoint it
saved (see adapters/langgraph/agent.py). ``verify`` reads the log anyway; on the way it
notes those records, and in batches looks the checkpoints up in the store: one edited
since it was saved, or gone (deleted, pruned), is a finding of the run that recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..adapters.langgraph.digest import checkpoint_digest
from .models import VerifyProblem

BATCH = 500  # recorded checkpoints held before they are looked up: memory stays bounded


@dataclass
class CheckpointCheck:
    """Recorded checkpoints noted while the log is read, checked against the store batch by batch."""

    recorder: Any
    problems: list[VerifyProblem] = field(default_factory=list)
    checked: int = 0
    failed: bool = False
    _noted: list[tuple[str, int, str, str]] = field(default_factory=list)

    def note(self, run_id: str, version: int, fields: dict[str, Any]) -> None:
        """Note the checkpoint a StepRecorded's fields record, if they record one."""
        content = fields.get("content")
        checkpoint = content.get("checkpoint") if isinstance(content, dict) else None
        if isinstance(checkpoint, dict) and checkpoint.get("id") and checkpoint.get("digest"):
            self._noted.append((run_id, version, str(checkpoint["id"]), str(checkpoint["digest"])))
            if len(self._noted) >= BATCH:
                self.flush()

    def flush(self) -> None:
        """Look up what was noted; record a problem for each checkpoint changed or gone."""
        noted, self._noted = self._noted, []
        if not noted or self.failed:
            return
        try:
            stored = self.recorder.stored_checkpoints([(run_id, cid) for run_id, _, cid, _ in noted])
        except Exception as e:  # noqa: BLE001 - the store failing here is reported, like any reading
            self.failed = True
            detail = " ".join(str(e).split())[:200]
            self.problems.append(VerifyProblem(run_id="", version=None, problem=(
                f"the LangGraph checkpoints cannot be checked ({type(e).__name__}: {detail})")))
            return
        for run_id, version, checkpoint_id, digest in noted:
            self.checked += 1
            row = stored.get((run_id, checkpoint_id))
            if row is None:
                problem = (f"LangGraph checkpoint {checkpoint_id} the run recorded is no longer stored (deleted or "
                           "pruned): the graph state it vouched for cannot be checked")
            elif (now := checkpoint_digest(row[0], bytes(row[1]), row[2], bytes(row[3]))) != digest:
                problem = (f"LangGraph checkpoint {checkpoint_id} was changed after it was saved: the run recorded "
                           f"{digest}, the store holds {now}")
            else:
                continue
            self.problems.append(VerifyProblem(run_id=run_id, version=version, problem=problem))
