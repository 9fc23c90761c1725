"""Submitting runs: one save per run (``Created`` + ``Queued``), or one save for many.

An idempotency key names the run (a UUID derived from the key), so a repeat, or a
twin racing it on another process, returns the first run instead of a second one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ..domain import ConcurrencyConflict, InvalidInput, Run, RunNotFound
from .commands import RunCommands
from .ids import time_ordered_id
from .models import RunSnapshot, SubmitInput, validate
from .unit_of_work import default_actor

_IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "runjournal:idempotency-key")


class Submissions(RunCommands):
    """Creating and queueing runs (or recording a refused request as failed at once)."""

    def submit(
        self, *, agent_id: str, input: Any, thread_id: str | None = None, priority: int = 0,  # noqa: A002
        idempotency_key: str | None = None, actor: str | None = None, parent_run_id: str | None = None,
        parent_version: int | None = None, refuse: str | None = None, invocation: dict[str, Any] | None = None,
        requested_agent_id: str | None = None, execution_mode: str | None = None,
        fork: dict[str, Any] | None = None,
    ) -> RunSnapshot:
        """Create and queue a run (one save); with an idempotency key, a repeat returns the first.

        ``refuse="reason"`` records the request and fails it at once instead of queueing it
        (a policy denial: the log shows what was asked and why it never ran).
        ``invocation`` (``context``, ``inputs``, ``attachments``) is kept beside the input and
        reaches the agent; ``requested_agent_id`` and ``execution_mode`` record how the agent
        was chosen (a harness fills them in); ``fork`` what a fork changed (``Journal.fork`` fills it in).
        """
        req = validate(
            SubmitInput, self.payload_rule, agent_id=agent_id, input=input, thread_id=thread_id, priority=priority,
            idempotency_key=idempotency_key, actor=actor or default_actor(), parent_run_id=parent_run_id,
            parent_version=parent_version, invocation=invocation, requested_agent_id=requested_agent_id,
            execution_mode=execution_mode, fork=fork,
        )
        run_id: UUID | None
        if req.idempotency_key is not None:
            run_id = uuid5(_IDEMPOTENCY_NAMESPACE, req.idempotency_key)
            try:
                return RunSnapshot.of(self._load(str(run_id), fresh=True))
            except RunNotFound:
                pass
        else:
            run_id = None
        run = self._new_run(run_id, req, refuse)
        try:
            self._save(run)
        except ConcurrencyConflict:
            if req.idempotency_key is None:
                raise
            return RunSnapshot.of(self._load(str(run_id), fresh=True))  # a twin won the race
        return RunSnapshot.of(run)

    def submit_many(self, requests: Iterable[dict[str, Any]], *, actor: str | None = None) -> list[RunSnapshot]:
        """Create and queue many runs in ONE save (a group commit for bulk submitters).

        Each request takes the keyword arguments of ``submit`` (``refuse`` too), but
        no ``idempotency_key``: use ``submit`` for those. Every request is validated
        first; one bad request appends nothing at all.
        """
        prepared = []
        for i, request in enumerate(requests):
            request = dict(request)
            refuse = request.pop("refuse", None)
            if request.get("idempotency_key") is not None:
                raise InvalidInput(f"requests[{i}].idempotency_key", "use submit() for idempotent submissions")
            request["actor"] = request.get("actor") or actor or default_actor()
            try:
                req = validate(SubmitInput, self.payload_rule, **request)
            except InvalidInput as e:
                raise InvalidInput(f"requests[{i}].{e.field}", e.problem) from None
            except TypeError as e:
                raise InvalidInput(f"requests[{i}]", str(e)) from None
            prepared.append((req, refuse))
        runs = [self._new_run(None, req, refuse) for req, refuse in prepared]
        if runs:
            self._save(*runs)
        return [RunSnapshot.of(run) for run in runs]

    def _new_run(self, run_id: UUID | None, req: SubmitInput, refuse: str | None) -> Run:
        """A new run (its id time-ordered unless an idempotency key named it), queued or refused."""
        now = self._now()
        run = Run.create(
            run_id=run_id or time_ordered_id(now),
            thread_id=req.thread_id or str(time_ordered_id(now)),
            agent_id=req.agent_id,
            requested_agent_id=req.requested_agent_id,
            execution_mode=req.execution_mode,
            input=req.input,
            invocation=req.invocation.recorded() if req.invocation else None,
            priority=req.priority,
            idempotency_key=req.idempotency_key,
            actor=req.actor,
            now=now,
            parent_run_id=req.parent_run_id,
            parent_version=req.parent_version,
            fork=req.fork,
        )
        if refuse is None:
            run.enqueue(actor=req.actor, now=now)
        else:
            run.fail(error=refuse, actor=req.actor, now=now)
        return run
