"""What an agent is asked when its run is claimed: the claim's input and envelope, the thread's earlier messages."""

from __future__ import annotations

from ..adapters.agents import AgentAdapter, AgentRequest
from ..app.journal import Journal
from ..app.models import Claim


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
    )
