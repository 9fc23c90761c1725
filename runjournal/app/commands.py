"""Commands on a run that exists: a worker's steps, approvals and outcomes, an operator's cancel.

Each is validate -> load -> command -> save through the unit of work; a worker's
commands are fenced by its claim's epoch, so a worker whose lease was taken over
is refused before anything is saved.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from ..domain import (
    ApprovalNotFound, ConcurrencyConflict, InvalidInput, Run, RunjournalError, RunNotFound, StoreUnavailable,
)
from .claims import Claims
from .models import (
    MAX_TEXT,
    ApprovalInput,
    CancelInput,
    Claim,
    ClaimInput,
    DecisionInput,
    ErrorInput,
    OutcomeInput,
    RunSnapshot,
    StepInput,
    validate,
)
from .payload import PayloadRule
from .unit_of_work import default_actor


class RunCommands(Claims):
    """The verbs that move a claimed (or any live) run on: steps, approvals, completion, failure, cancel."""

    payload_rule: PayloadRule = PayloadRule()  # the limits every payload is checked against; a journal sets its own

    def record_step(self, claim: Claim, kind: str, content: Any) -> RunSnapshot:
        """Record a step, tool result or message of the running agent."""
        return self.record_steps(claim, [(kind, content)])

    def record_steps(self, claim: Claim, steps: Sequence[tuple[str, Any]]) -> RunSnapshot:
        """Record several steps of the running agent, in order, in one save."""
        reqs = [validate(StepInput, self.payload_rule, kind=kind, content=content) for kind, content in steps]

        def record(run: Run) -> None:
            now = self._now()
            for req in reqs:
                run.record_step(worker_id=claim.worker_id, epoch=claim.epoch, kind=req.kind, content=req.content,
                                now=now)

        run, _ = self._execute(claim.run_id, record)
        return RunSnapshot.of(run)

    def request_approval(
        self,
        claim: Claim,
        *,
        tool_name: str,
        tool_args: Any = None,
        tool_call_id: str | None = None,
        content: Any = None,
        checkpoint_ref: str | None = None,
        output: str | None = None,
        expires_in: float | None = None,
        assignees: list[str] | None = None,
        on_expiry: str = "reject",
    ) -> str:
        """Pause the run for a person's decision (``output``: the answer so far); returns the approval id.

        ``expires_in`` seconds later an undecided approval expires (``ApprovalExpired``, by
        ``system:approvals``): ``on_expiry`` "reject" resumes the agent as rejected, "fail"
        fails the run. ``assignees``: only they may decide.
        """
        req = validate(
            ApprovalInput,
            self.payload_rule,
            tool_name=tool_name,
            tool_args={} if tool_args is None else tool_args,
            tool_call_id=tool_call_id,
            content=content,
            checkpoint_ref=checkpoint_ref,
            output=output,
            expires_in=expires_in,
            assignees=assignees,
            on_expiry=on_expiry,
        )
        now = self._now()
        fields = req.model_dump(exclude={"expires_in"})
        deadline = now + timedelta(seconds=req.expires_in) if req.expires_in is not None else None
        _, approval_id = self._execute(
            claim.run_id,
            lambda run: run.request_approval(
                worker_id=claim.worker_id, epoch=claim.epoch, now=now, deadline=deadline, **fields
            ),
        )
        return str(approval_id)

    def expire_approvals(self, *, limit: int = 500) -> list[str]:
        """Append ``ApprovalExpired`` to every run whose pending approval's deadline has passed; returns their ids.

        Exactly once however many workers do it at once: each run is saved at the version it
        was read at, and a run decided (or expired) meanwhile refuses the event.
        """
        now = self._now()
        with self._faults():
            due = self.inline_views.due_approvals(now.timestamp(), limit)

        def expire(run: Run) -> bool:
            pending = run.pending_approval or {}
            return run.expire_approval(approval_id=str(pending.get("approval_id")), now=now)

        return self._expire_due(due, expire, by="system:approvals")

    def resolve_approval(
        self, approval_id: str, *, decision: str, edits: Any = None, actor: str | None = None
    ) -> RunSnapshot:
        """Record a decision (approve / reject / edit); the run is then resumed by a worker."""
        req = validate(
            DecisionInput,
            self.payload_rule, approval_id=approval_id, decision=decision, edits=edits, actor=actor or default_actor()
        )
        run_id = approval_id.rsplit(".a", 1)[0]
        try:
            run, _ = self._execute(
                run_id,
                lambda run: run.resolve_approval(
                    approval_id=req.approval_id, decision=req.decision, edits=req.edits, actor=req.actor, now=self._now()
                ),
            )
        except RunNotFound:
            raise ApprovalNotFound(approval_id) from None
        return RunSnapshot.of(run)

    def complete(self, claim: Claim, *, output: Any = None) -> RunSnapshot:
        """Finish a run with its output."""
        req = validate(OutcomeInput, self.payload_rule, output=output)
        run, _ = self._execute(
            claim.run_id,
            lambda run: run.complete(worker_id=claim.worker_id, epoch=claim.epoch, output=req.output, now=self._now()),
        )
        return RunSnapshot.of(run)

    def complete_many(self, items: Sequence[tuple[Claim, Any]]) -> list[RunSnapshot | RunjournalError]:
        """Complete several runs in ONE save (a group commit); per run, its snapshot or the error refusing it.

        All or nothing on a conflict: then each run is completed on its own, so a run
        changed meanwhile (say, cancelled from elsewhere) gets its own refusal.
        """
        refusals, changed = self._completed_runs(items)
        if changed:
            try:
                self._save(*changed.values())
            except ConcurrencyConflict:
                return [self._complete_one(claim, output) for claim, output in items]
        return [refusal or RunSnapshot.of(changed[claim.run_id]) for refusal, (claim, _) in zip(refusals, items, strict=True)]

    def complete_and_claim(
        self, items: Sequence[tuple[Claim, Any]], *, worker_id: str, count: int, lease_seconds: float = 30,
        start: bool = False, agents: Collection[str] | None = None,
    ) -> tuple[list[RunjournalError | None], list[Claim]]:
        """Complete the finished runs and claim up to ``count`` more in ONE save: a worker's turn, one commit.

        Per item, ``None`` (completed) or the error refusing it; then the new claims.
        On a conflict (a candidate another worker took, a run changed meanwhile) it
        falls back to ``complete_many`` and then ``claim_many``: no run is held up by another.
        """
        req = validate(ClaimInput, worker_id=worker_id, lease_seconds=lease_seconds, agents=agents)
        refusals, changed = self._completed_runs(items)
        if any(isinstance(r, StoreUnavailable) for r in refusals):
            count = 0  # that run still holds its slot (and lease): no new claim may take it
        with self._reserved_candidates():
            prepared = self._prepared_claims(req, count, start=start, busy=changed)
            runs = [*changed.values(), *(run for run, _ in prepared)]
            if not runs:
                return refusals, []
            try:
                self._save(*runs)
                return refusals, [claim for _, claim in prepared]
            except ConcurrencyConflict:
                pass  # fall back: completions first, then claims
        completed = [r if isinstance(r, RunjournalError) else None for r in self.complete_many(items)]
        return completed, self.claim_many(worker_id=worker_id, count=count, lease_seconds=lease_seconds,
                                          start=start, agents=agents)

    def _completed_runs(self, items: Sequence[tuple[Claim, Any]]) -> tuple[list[RunjournalError | None], dict[str, Run]]:
        """Apply ``Completed`` to each item's run, unsaved: per item its refusal (or None), and the runs changed."""
        refusals: list[RunjournalError | None] = []
        changed: dict[str, Run] = {}  # an item may name a run an earlier item already completed
        now = self._now()
        for claim, output in items:
            try:
                req = validate(OutcomeInput, self.payload_rule, output=output)
                run = changed.get(claim.run_id) or self._load(claim.run_id)
                run.complete(worker_id=claim.worker_id, epoch=claim.epoch, output=req.output, now=now)
            except RunjournalError as e:
                if claim.run_id not in changed:  # a refused command triggers nothing: keep batch changes
                    self._runs.pop(claim.run_id, None)
                refusals.append(e)
                continue
            changed[run.run_id] = run
            refusals.append(None)
        return refusals, changed

    def _complete_one(self, claim: Claim, output: Any) -> RunSnapshot | RunjournalError:
        try:
            return self.complete(claim, output=output)
        except RunjournalError as e:
            return e

    def fail(
        self, claim: Claim, *, error: str, stage: Literal["stream", "invoke"] | None = None, retries: int = 0
    ) -> RunSnapshot:
        """Fail a run the worker holds; ``stage`` says where the agent failed (recorded in ``Failed``).

        With ``retries`` > 0, a run that failed while resuming a decision is not failed
        while it has retries left: it records ``ResumeFailed`` and waits, ``resuming``,
        to be retried (the snapshot's state says which).
        """
        req = validate(ErrorInput, error=_clip(error), actor=f"worker:{claim.worker_id}")
        if stage not in (None, "stream", "invoke"):
            raise InvalidInput("stage", f"must be 'stream', 'invoke' or None (got {stage!r})")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidInput("retries", f"must be a whole number >= 0 (got {retries!r})")
        run, _ = self._execute(
            claim.run_id,
            lambda run: run.fail_agent(
                worker_id=claim.worker_id, epoch=claim.epoch, error=req.error, stage=stage, retries=retries,
                now=self._now(),
            ),
        )
        return RunSnapshot.of(run)

    def fail_run(self, run_id: str, *, error: str, actor: str | None = None) -> RunSnapshot:
        """Fail any non-terminal run (recovery and operators; not fenced)."""
        req = validate(ErrorInput, error=_clip(error), actor=actor or default_actor())
        run, _ = self._execute(run_id, lambda run: run.fail(error=req.error, actor=req.actor, now=self._now()))
        return RunSnapshot.of(run)

    def attempt_recovery(self, run_id: str, *, resume_kind: str = "startup-recovery") -> RunSnapshot:
        """Count a recovery attempt on a run (it is then resumed with ``resume_kind``)."""
        run, _ = self._execute(run_id, lambda run: run.attempt_recovery(resume_kind=resume_kind, now=self._now()))
        return RunSnapshot.of(run)

    def recover_many(
        self, *, failures: Mapping[str, str] | None = None, attempts: Sequence[str] = (),
        resume_kind: str = "startup-recovery", actor: str = "system:recovery",
    ) -> dict[str, RunjournalError | None]:
        """Fail runs (run id -> error) and count recovery attempts on others in ONE save; per run, None or its refusal.

        Recovery's transitions as one group commit; a run changed meanwhile (a lost race)
        gets its own refusal and fails no other.
        """
        fails = {run_id: validate(ErrorInput, error=_clip(error), actor=actor) for run_id, error in (failures or {}).items()}
        now = self._now()
        def fail(req: ErrorInput) -> Callable[[Run], Any]:
            return lambda run: run.fail(error=req.error, actor=req.actor, now=now)

        def attempt(run: Run) -> Any:
            return run.attempt_recovery(resume_kind=resume_kind, now=now)

        commands = [(run_id, fail(req)) for run_id, req in fails.items()] + [(run_id, attempt) for run_id in attempts]
        results = self._execute_many(commands)
        return {run_id: r if isinstance(r, RunjournalError) else None for (run_id, _), r in zip(commands, results, strict=True)}

    def finish_cancel(self, claim: Claim) -> RunSnapshot:
        """The worker has stopped a cancelling run: append ``Cancelled``."""
        run, _ = self._execute(
            claim.run_id, lambda run: run.finish_cancel(worker_id=claim.worker_id, epoch=claim.epoch, now=self._now())
        )
        return RunSnapshot.of(run)

    def cancel(self, run_id: str, *, reason: str | None = None, actor: str | None = None) -> RunSnapshot:
        """Cancel a run: at once when no worker holds it, else ask its worker to stop."""
        req = validate(CancelInput, reason=reason, actor=actor or default_actor())

        run = self._load(run_id, fresh=True)
        if not run.can_be_cancelled:  # over, or cancelling already (its worker will finish it)
            return RunSnapshot.of(run)
        return RunSnapshot.of(self._execute(
            run_id, lambda run: run.cancel_as_asked(reason=req.reason, actor=req.actor, now=self._now()))[0])


def _clip(error: str) -> str:
    """An error message cut to MAX_TEXT characters, saying so: failing a run must not fail."""
    if not isinstance(error, str) or len(error) <= MAX_TEXT:
        return error
    note = f" ... [cut: {len(error):,} characters]"
    return error[: MAX_TEXT - len(note)] + note
