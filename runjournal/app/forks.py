"""Forks: a new run from another as it was at one of its versions, its input kept, replaced or edited.

The fork's ``Created`` names its parent, the version, the parent's chain there (an
anchor: the parent's log up to the fork can be proven unchanged) and what changed.
Its agent is served the parent's recorded tool and model outputs up to the fork
(``parent_tape``; see ``adapters/agents/tape.py``), so nothing the parent did before
the fork is done again, and it runs live from the first call the record does not hold.
"""

from __future__ import annotations

from typing import Any

from ..adapters.agents.tape import Recorded, Tape
from ..domain import InvalidInput
from .models import RecordedEvent, RunSnapshot

SERVED_KINDS = ("tool_result", "step")  # what a record can serve: tool results and model steps


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied as an RFC 7386 JSON merge patch (null removes a key)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def fork_request(parent: RunSnapshot, at_version: int, *, input: Any, edits: Any) -> dict[str, Any]:  # noqa: A002
    """The submit arguments of a fork of ``parent`` (the run as it was at ``at_version``)."""
    if input is not None and edits is not None:
        raise InvalidInput("edits", "give a new input or edits to the parent's input, not both")
    how, new_input = "kept", parent.input
    if edits is not None:
        if not isinstance(edits, dict):
            raise InvalidInput("edits", 'a JSON merge patch is an object, e.g. {"env": "staging"}')
        how, new_input = "edited", merge_patch(parent.input, edits)
    elif input is not None:
        how, new_input = "replaced", input
    return {
        "agent_id": parent.agent_id, "input": new_input, "priority": parent.priority,
        "parent_run_id": parent.run_id, "parent_version": at_version, "invocation": parent.invocation,
        "requested_agent_id": parent.requested_agent_id, "execution_mode": parent.execution_mode,
        "fork": {"parent_chain": parent.chain, "input": how, "edits": edits},
    }


def recorded_steps(events: list[RecordedEvent], *, up_to: int | None = None) -> list[Recorded]:
    """The steps of a run's events (up to a version) that a tape can serve, in order."""
    return [Recorded(e.run_id, e.version, e.data["kind"], e.data["content"]) for e in events
            if e.type == "StepRecorded" and e.data.get("kind") in SERVED_KINDS and (up_to is None or e.version <= up_to)]


def parent_tape(parent_events: list[RecordedEvent], fork_of: dict[str, Any]) -> Tape:
    """What a fork is served: its parent's record up to the fork, checked against the anchor in its Created."""
    at_version = fork_of["version"]
    anchor = next((e.chain for e in parent_events if e.version == at_version), None)
    if anchor != fork_of.get("parent_chain"):
        run_id = parent_events[0].run_id if parent_events else "(gone)"
        raise InvalidInput("fork", f"the log of parent run {run_id} up to version {at_version} is not the one "
                           "the fork was made from (its chain differs); run `runjournal verify`")
    return Tape(recorded_steps(parent_events, up_to=at_version))
