"""The journal: runs on an append-only event log, as its public verbs.

Every verb is load -> command -> save through the unit of work it is built on
(``unit_of_work.py``: the cache, the save, the one map from library errors to ours).
A command the domain refuses raises before anything is saved.

Over 400 lines for now: the submit, step and outcome verbs still live here, and the
audit ones are to move into ``audit.py``, leaving a thin facade. Claims are
``claims.py`` (on ``quarantine.py``), the followed views the ``views`` component.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.persistence import (
    InfrastructureFactoryError,
    PersistenceError,
)

from ..adapters.clock import Clock
from ..adapters.storage.index import LeaseRow, QueueRow
from ..adapters.storage.urls import redacted as _redact
from ..adapters.storage.urls import resolve_url, sqlite_path, store_env
from ..domain import (
    ApprovalNotFound,
    ConcurrencyConflict,
    InvalidInput,
    Run,
    RunjournalError,
    RunNotFound,
    StoreError,
)
from ..projections import Projection, ProjectionError, ProjectionRunner, RefusedRun
from . import load_check
from .decoding import EventDecoder
from .models import (
    MAX_TEXT,
    ApprovalInput,
    CancelInput,
    Claim,
    DecisionInput,
    ErrorInput,
    OutcomeInput,
    RecordedEvent,
    RunSnapshot,
    StepInput,
    SubmitInput,
    VerifyReport,
    validate,
)
from .payload import DEFAULT_MAX_BYTES, PayloadRule
from .verification import verify_store
from .claims import Claims
from .unit_of_work import UNDECODABLE, RunStore, default_actor, missing_driver, recorded, store_fault
from .queries import ApprovalRow, Message, RunRow, ThreadSummary
from .views import FollowedViews

_IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "runjournal:idempotency-key")
CATCH_UP_PAGE_SIZE = 5000  # bigger pages fold more events into each row write; memory stays bounded


class Journal(Claims):
    """Runs on an append-only event log: submit, claim, drive, inspect, verify."""

    def __init__(
        self,
        store: RunStore,
        *,
        url: str,
        clock: Clock | None = None,
        views_path: str | None = None,
        payload_rule: PayloadRule | None = None,
    ) -> None:
        super().__init__(store, url=url, clock=clock)
        self.views = FollowedViews(
            mapper=store.mapper, read_pages=lambda start, size: self.raw_pages(start, page_size=size),
            views_path=views_path or default_views_path(url), appended=self._appended, page_size=CATCH_UP_PAGE_SIZE,
        )
        self.payload_rule = payload_rule or PayloadRule()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        views_path: str | None = None,
        max_payload_bytes: int | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> Journal:
        """Open (creating if needed) the store at ``url``, $RUNJOURNAL_URL or the default file.

        ``max_payload_bytes`` caps each input, output, step, tool argument set and
        edit (default $RUNJOURNAL_MAX_PAYLOAD_BYTES, else 1 MiB; see payload.py).
        ``create=False`` refuses a store that does not exist yet (a mistyped path) instead
        of creating an empty one. ``read_only=True`` implies it and opens a SQLite store
        read-only: no file, folder, table or WAL checkpoint is written, any save is refused,
        and the followed views live in memory when their file beside the store cannot be written.
        """
        url = resolve_url(url)
        rule = PayloadRule(max_bytes=_max_payload_bytes(max_payload_bytes))
        try:
            store = RunStore(env=store_env(url, create=create, read_only=read_only))
        except StoreError:
            raise
        except InfrastructureFactoryError as e:  # the persistence module did not import
            raise missing_driver(url, e) from None
        except (PersistenceError, OSError, sqlite3.Error) as e:
            raise store_fault(url, e, opening=True) from None
        if read_only and views_path is None:
            views_path = _writable_or_memory(default_views_path(url))
        journal = cls(store, url=url, clock=clock, views_path=views_path, payload_rule=rule)
        journal._check_readable()
        if not read_only:
            journal._label_queue()
        return journal

    def _check_readable(self) -> None:
        """Decode the first stored event: a wrong or missing cipher key fails here, clearly."""
        try:
            first = next(self.raw_pages(0, page_size=1), [])
            if first:
                EventDecoder(self._store.mapper).decode(first[0])
        except StoreError:
            self._store.close()
            raise
        except UNDECODABLE as e:
            encrypted = "CIPHER_KEY" in self._store.env
            hint = ("the RUNJOURNAL_CIPHER_KEY is wrong" if encrypted
                    else "the store may be encrypted or compressed: set RUNJOURNAL_CIPHER_KEY and "
                    "RUNJOURNAL_COMPRESS as when it was written")
            self._store.close()
            raise StoreError(
                f"cannot read the events of store {_redact(self.url)}: {hint} ({type(e).__name__})"
            ) from None

    def close(self) -> None:
        """Stop following, release the store's and the views' connections."""
        self.views.close()
        self._store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- followed views (views.py) --------------------------------------------------

    @property
    def runner(self) -> ProjectionRunner:
        """The projection runner (created on first use, with the built-in views)."""
        return self.views.runner

    @property
    def views_path(self) -> str:
        """The views database file (``:memory:`` for an in-process store)."""
        return self.views.views_path

    @property
    def page_size(self) -> int:
        """Events per page (and per views transaction) in catch-up."""
        return self.views.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        self.views.page_size = value

    @property
    def follow_error(self) -> ProjectionError | None:
        """The error of the follower's last catch-up, if it failed (it retries on the next wake)."""
        return self.views.follow_error

    def add_projection(self, projection: Projection) -> None:
        """Register a followed projection; a new or changed version is built from the start."""
        self.views.add_projection(projection)

    def catch_up(self) -> int:
        """Bring every followed view up to the end of the log; returns the events processed."""
        return self.views.catch_up()

    def rebuild(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild one followed view from the start of the log; returns the events processed."""
        return self.views.rebuild(name, progress=progress)

    def follow(self, *, interval: float = 0.25) -> None:
        """Keep the followed views caught up in a background thread: woken by local appends, else polling."""
        self.views.follow(interval=interval)

    def stop_following(self) -> None:
        """Stop the background catch-up thread, if any."""
        self.views.stop_following()

    def refused_runs(self) -> list[RefusedRun]:
        """Runs the views stopped following at a stored event whose topic is not runjournal's (log order)."""
        return self.views.refused_runs()

    def runs(
        self, *, state: str | None = None, agent_id: str | None = None, thread_id: str | None = None
    ) -> list[RunRow]:
        """Runs from the ``runs`` view, oldest first, filtered by any of state, agent and thread."""
        return self.views.runs(state=state, agent_id=agent_id, thread_id=thread_id)

    def threads(self) -> list[ThreadSummary]:
        """Thread summaries, most recently updated first."""
        return self.views.threads()

    def thread(self, thread_id: str) -> ThreadSummary:
        """One thread's summary; ``RunNotFound`` names the thread when it has no runs."""
        return self.views.thread(thread_id)

    def messages(self, thread_id: str) -> list[Message]:
        """A thread's messages in log order."""
        return self.views.messages(thread_id)

    def approvals(self, *, status: str | None = None) -> list[ApprovalRow]:
        """Approvals, oldest first, optionally by status (pending, approved, rejected, edited, withdrawn)."""
        return self.views.approvals(status=status)

    def pending_approvals(self) -> list[ApprovalRow]:
        """Approvals waiting for a person."""
        return self.views.pending_approvals()

    # -- submitting ------------------------------------------------------------

    def submit(
        self,
        *,
        agent_id: str,
        input: Any,  # noqa: A002
        thread_id: str | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        actor: str | None = None,
        parent_run_id: str | None = None,
        parent_version: int | None = None,
        refuse: str | None = None,
        invocation: dict[str, Any] | None = None,
        requested_agent_id: str | None = None,
        execution_mode: str | None = None,
    ) -> RunSnapshot:
        """Create and queue a run (one save); with an idempotency key, a repeat returns the first.

        ``refuse="reason"`` records the request and fails it at once instead of queueing it
        (a policy denial: the log shows what was asked and why it never ran).
        ``invocation`` (``context``, ``inputs``, ``attachments``) is kept beside the input and
        reaches the agent; ``requested_agent_id`` and ``execution_mode`` record how the agent
        was chosen (a harness fills them in).
        """
        req = validate(
            SubmitInput,
            self.payload_rule,
            agent_id=agent_id,
            input=input,
            thread_id=thread_id,
            priority=priority,
            idempotency_key=idempotency_key,
            actor=actor or default_actor(),
            parent_run_id=parent_run_id,
            parent_version=parent_version,
            invocation=invocation,
            requested_agent_id=requested_agent_id,
            execution_mode=execution_mode,
        )
        if req.idempotency_key is not None:
            run_id = uuid5(_IDEMPOTENCY_NAMESPACE, req.idempotency_key)
            try:
                return RunSnapshot.of(self._load(str(run_id), fresh=True))
            except RunNotFound:
                pass
        else:
            run_id = uuid4()
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
        runs = [self._new_run(uuid4(), req, refuse) for req, refuse in prepared]
        if runs:
            self._save(*runs)
        return [RunSnapshot.of(run) for run in runs]

    def _new_run(self, run_id: UUID, req: SubmitInput, refuse: str | None) -> Run:
        now = self._now()
        run = Run.create(
            run_id=run_id,
            thread_id=req.thread_id or str(uuid4()),
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
        )
        if refuse is None:
            run.enqueue(actor=req.actor, now=now)
        else:
            run.fail(error=refuse, actor=req.actor, now=now)
        return run

    # -- reading -----------------------------------------------------------------

    def get_run(self, run_id: str, *, at_version: int | None = None) -> RunSnapshot:
        """The run now, or as it was after its ``at_version``-th event."""
        if at_version is None:
            return RunSnapshot.of(self._load(run_id, fresh=True))
        try:
            uuid = UUID(str(run_id))
        except ValueError:
            raise RunNotFound(run_id) from None
        # Only the events up to ``at_version`` are read (and checked): a run broken later still shows its past.
        past = self._load(run_id, fresh=True) if at_version < 1 else self._load_checked(uuid, run_id, version=at_version)
        if not 1 <= at_version <= past.version:
            raise InvalidInput("at_version", f"run {run_id} has versions 1..{past.version} (got {at_version})")
        return RunSnapshot.of(past)

    def history(self, run_id: str) -> list[RecordedEvent]:
        """Every event of a run, in order."""
        try:
            uuid = UUID(str(run_id))
        except ValueError:
            raise RunNotFound(run_id) from None
        try:
            with self._faults():
                events = load_check.checked_events(self._store, uuid)
        except UNDECODABLE as e:  # see _load
            raise StoreError(f"run {run_id}: a stored event cannot be decoded ({type(e).__name__}); "
                             "run `runjournal verify` to find it") from None
        if not events:
            raise RunNotFound(run_id)
        return [recorded(e) for e in events]

    def queue(self) -> list[QueueRow]:
        """Claimable runs in claim order: priority first, then log position."""
        with self._faults():
            rows = self.inline_views.queue_rows()
        held = self.quarantined_ids() if rows else set()
        return [r for r in rows if r.run_id not in held]

    def leases(self) -> list[LeaseRow]:
        """Every current lease."""
        with self._faults():
            return self.inline_views.lease_rows()

    # -- a worker's verbs on its run (claiming and leases: claims.py) ------------------

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
    ) -> str:
        """Pause the run for a person's decision (``output``: the answer so far); returns the approval id."""
        req = validate(
            ApprovalInput,
            self.payload_rule,
            tool_name=tool_name,
            tool_args={} if tool_args is None else tool_args,
            tool_call_id=tool_call_id,
            content=content,
            checkpoint_ref=checkpoint_ref,
            output=output,
        )
        _, approval_id = self._execute(
            claim.run_id,
            lambda run: run.request_approval(
                worker_id=claim.worker_id, epoch=claim.epoch, now=self._now(), **req.model_dump()
            ),
        )
        return str(approval_id)

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
        outcomes: list[RunSnapshot | RunjournalError] = []
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
                outcomes.append(e)
                continue
            changed[run.run_id] = run
            outcomes.append(RunSnapshot.of(run))
        if not changed:
            return outcomes
        try:
            self._save(*changed.values())
        except ConcurrencyConflict:
            return [self._complete_one(claim, output) for claim, output in items]
        return outcomes

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

    def finish_cancel(self, claim: Claim) -> RunSnapshot:
        """The worker has stopped a cancelling run: append ``Cancelled``."""
        run, _ = self._execute(
            claim.run_id, lambda run: run.finish_cancel(worker_id=claim.worker_id, epoch=claim.epoch, now=self._now())
        )
        return RunSnapshot.of(run)

    # -- operators -----------------------------------------------------------------

    def cancel(self, run_id: str, *, reason: str | None = None, actor: str | None = None) -> RunSnapshot:
        """Cancel a run: at once when no worker holds it, else ask its worker to stop."""
        req = validate(CancelInput, reason=reason, actor=actor or default_actor())

        run = self._load(run_id, fresh=True)
        if not run.can_be_cancelled:  # over, or cancelling already (its worker will finish it)
            return RunSnapshot.of(run)
        return RunSnapshot.of(self._execute(
            run_id, lambda run: run.cancel_as_asked(reason=req.reason, actor=req.actor, now=self._now()))[0])

    # -- audit ------------------------------------------------------------------------

    def verify(
        self,
        *,
        deep: bool = False,
        progress: Callable[[int], None] | None = None,
        at_versions: dict[str, int] | None = None,
        log_head_at: int = 0,
    ) -> VerifyReport:
        """Check the file, every chain, the rows beside the log, each run as loaded and each snapshot.

        ``deep`` runs SQLite's full ``integrity_check`` instead of ``quick_check``. See verification.py.
        """
        return verify_store(self, deep=deep, progress=progress, at_versions=at_versions, log_head_at=log_head_at)

    # -- recovery ---------------------------------------------------------------------

    def recovery_intents(self) -> list[Any]:
        """What recovery must do for each non-terminal run, quarantined runs left out."""
        intents = self.views.recovery_intents()
        held = self.quarantined_ids() if intents else set()
        return [i for i in intents if i.run_id not in held]

def _clip(error: str) -> str:
    """An error message cut to MAX_TEXT characters, saying so: failing a run must not fail."""
    if not isinstance(error, str) or len(error) <= MAX_TEXT:
        return error
    note = f" ... [cut: {len(error):,} characters]"
    return error[: MAX_TEXT - len(note)] + note


def default_views_path(url: str) -> str:
    """Where the followed views live: beside a SQLite store, in memory for memory://, else a local file."""
    if url.startswith("memory:"):
        return ":memory:"
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        return str(path.with_name(path.stem + ".views.db"))
    safe = "".join(c if c.isalnum() else "-" for c in _redact(url).split("://", 1)[-1]).strip("-")
    return str(Path(".runjournal") / f"{safe}.views.db")


def _max_payload_bytes(given: int | None) -> int:
    raw_value = given if given is not None else os.environ.get("RUNJOURNAL_MAX_PAYLOAD_BYTES")
    if raw_value is None or raw_value == "":
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw_value)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise InvalidInput("max_payload_bytes", f"must be a positive number of bytes (got {raw_value!r})")
    return value


def _writable_or_memory(path: str) -> str:
    """``path`` if it can be written (or created), else ``:memory:``: a read-only store's views."""
    if path == ":memory:":
        return path
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    return path if os.access(target, os.W_OK) else ":memory:"


__all__: Sequence[str] = ("Journal", "default_actor", "recorded")
