"""What an agent is asked when its run is claimed: the claim's input and envelope, the thread's earlier messages,
and for a fork its parent's record to be served from."""

from __future__ import annotations

from typing import Any

from ..adapters.agents import AgentAdapter, AgentRequest, Tape
from ..app.forks import parent_tape
from ..app.journal import Journal
from ..app.models import Claim
from ..domain import InvalidInput, TamperDetected


def agent_request(journal: Journal, claim: Claim, adapter: AgentAdapter) -> AgentRequest:
    """What the agent is asked for a claimed run: its input, its thread's earlier messages, its decision to resume."""
    messages: tuple[dict[str, str], ...] = ()
    if getattr(adapter, "uses_history", True):
        messages = tuple(
            {"role": m.role, "content": m.content}
            for m in journal.messages(claim.thread_id)
            if m.run_id != claim.run_id
        )
    resume = claim.resume or {}
    invocation = claim.invocation or {}
    return AgentRequest(
        run_id=claim.run_id, thread_id=claim.thread_id, agent_id=claim.agent_id, input=claim.input,
        messages=messages, resume=resume.get("decision"), resume_kind=resume.get("resume_kind"),
        context=invocation.get("context"), inputs=invocation.get("inputs"),
        attachments=tuple(invocation.get("attachments") or ()),
        tape=_fork_tape(journal, claim.fork_of) if claim.fork_of else None,
        fork=({k: claim.fork_of.get(k) for k in ("run_id", "version", "input")} if claim.fork_of else None),
    )


def _fork_tape(journal: Journal, fork_of: dict[str, Any]) -> Tape:
    """The parent's record a fork is served from; a parent that no longer proves itself fails the fork."""
    try:
        return parent_tape(journal.history(fork_of["run_id"]), fork_of)
    except TamperDetected as e:
        raise InvalidInput("fork", f"parent run {e.run_id} no longer proves itself ({e.what}): the fork cannot be "
                           "served its record") from None
