"""Claims and leases: which run a worker gets next, and what happens when a lease runs out.

A claim is one save: ``Dequeued`` (and ``Started`` or ``Resumed`` with ``start=True``)
fenced by an epoch. Candidates come from the store's inline queue view, best first;
a row that says claimable while its run is not (over, gone) is healed, a run whose
events fail their check is quarantined. ``claim_many`` claims several in one save
(a group commit) and falls back to one at a time if it lost a race.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..adapters.storage.index import IndexEntry
from ..domain import ConcurrencyConflict, InvalidInput, Run, RunjournalError, RunNotFound
from ..domain.errors import TamperDetected
from ..domain.transitions import is_allowed
from .models import Claim, ClaimInput, RunSnapshot, validate
from .quarantine import Quarantine

_CLAIM_ROUNDS = 64


class Claims(Quarantine):
    """Claiming runs for workers, renewing and expiring their leases."""

    def _label_queue(self) -> None:
        """Name the agent of queue rows written before rows named it, so claims by agent see them."""
        try:
            with self._faults():
                unlabelled = self.inline_views.unlabelled_rows()
            labels = []
            for run_id in unlabelled:
                with contextlib.suppress(RunNotFound, TamperDetected):  # a claim heals or quarantines these
                    labels.append((run_id, self._load(run_id).agent_id))
            if labels:
                with self._faults():
                    self.inline_views.label_rows(labels)
                self._log.info("queue rows labelled with their agent", rows=len(labels))
        except BaseException:
            self._store.close()
            raise

    def claim_next(
        self, *, worker_id: str, lease_seconds: float = 30, start: bool = False, agents: Collection[str] | None = None
    ) -> Claim | None:
        """Claim the best claimable run (priority, then age); ``None`` when none is left.

        ``start=True`` also appends ``Started`` (or ``Resumed``) in the same save: one
        transaction for a worker that runs what it claims at once. ``agents`` claims
        only runs of those agents (a worker whose workspace has only some of them);
        the others are left, untouched, for workers that have them.
        """
        req = validate(ClaimInput, worker_id=worker_id, lease_seconds=lease_seconds, agents=agents)
        skipped: set[str] = set()  # rows that say claimable while their run is not: look past them
        with self._reserved_candidates():
            for _ in range(_CLAIM_ROUNDS):  # each round claims, or lost a race, or meets stale rows
                # One candidate at a time: a store that reserves them (PostgreSQL) holds back no
                # better run from other workers than the one this claim tries.
                candidates = [r for r in self._candidates(1 + len(skipped), req.agents) if r not in skipped]
                if not candidates:
                    return None
                claim = self._try_claim(candidates[0], req, start=start)
                if claim is not None:
                    return claim
                skipped.add(candidates[0])
        return None  # every candidate went to other workers, round after round: try again later

    @contextlib.contextmanager
    def _reserved_candidates(self) -> Iterator[None]:
        """Around a claim: the candidates a store reserved for it (PostgreSQL) are released after its save."""
        try:
            yield
        finally:
            self.inline_views.release_candidates()  # never raises: a dropped session released them already

    def _candidates(self, limit: int, agents: tuple[str, ...] | None) -> list[str]:
        with self._faults():
            if not self._quarantine_local:  # SQL stores skip quarantined runs in the query itself
                return self.inline_views.claim_candidates(limit, agents)
            held = self._quarantine_local
            return [r for r in self.inline_views.claim_candidates(limit + len(held), agents) if r not in held][:limit]

    def claim_many(
        self, *, worker_id: str, count: int, lease_seconds: float = 30, start: bool = False,
        agents: Collection[str] | None = None,
    ) -> list[Claim]:
        """Claim up to ``count`` runs in ONE save (a group commit for a worker filling several slots).

        All or nothing: if another worker took any of them meanwhile, this falls
        back to claiming one at a time, so no claim is ever lost or doubled.
        ``agents``: as in ``claim_next``.
        """
        req = validate(ClaimInput, worker_id=worker_id, lease_seconds=lease_seconds, agents=agents)
        if count < 0:
            raise InvalidInput("count", f"must be >= 0 (got {count})")
        if count == 0:  # no free slot: no lease to hold
            return []
        if count == 1:
            one = self.claim_next(worker_id=worker_id, lease_seconds=lease_seconds, start=start, agents=agents)
            return [one] if one else []
        with self._reserved_candidates():
            prepared = self._prepared_claims(req, count, start=start)
            if not prepared:
                return []
            try:
                self._save(*(run for run, _ in prepared))
                return [claim for _, claim in prepared]
            except ConcurrencyConflict:
                pass  # lost a race: one at a time
        claims: list[Claim] = []
        while len(claims) < count and (c := self.claim_next(worker_id=worker_id, lease_seconds=lease_seconds,
                                                            start=start, agents=agents)):
            claims.append(c)
        return claims

    def _prepared_claims(
        self, req: ClaimInput, count: int, *, start: bool, busy: Collection[str] = ()
    ) -> list[tuple[Run, Claim]]:
        """Up to ``count`` of the best claimable runs, claimed (and started) but not saved; ``busy`` runs skipped.

        A candidate may turn out taken since the queue was read (another worker claimed
        it in between): it is passed over and the queue read again for the slots left.
        """
        prepared: list[tuple[Run, Claim]] = []
        passed: set[str] = set()  # looked at: the queue may still list them
        for _ in range(_CLAIM_ROUNDS):
            wanted = count - len(prepared)
            if wanted <= 0:
                break
            asked = wanted + len(passed)
            listed = self._candidates(asked, req.agents)
            for run_id in [r for r in listed if r not in passed][:wanted]:
                passed.add(run_id)
                run = None if run_id in busy else self._claimable(run_id, req.worker_id)
                if run is not None:
                    prepared.append(self._prepare_claim(run, req, start=start))
            if len(listed) < asked:  # the queue holds no more
                break
        return prepared

    def _claimable(self, run_id: str, worker_id: str) -> Run | None:
        """The run, loaded, if it may be claimed; the rows of a run that is over or gone are removed.

        A run whose events fail their check is quarantined, never claimed.
        """
        try:
            run = self._load(run_id)  # a stale cached copy only costs a lost race when saving
            if not is_allowed(run.state, "Dequeued"):
                run = self._load(run_id, fresh=True)
        except RunNotFound:
            self._heal(IndexEntry.gone(run_id))
            return None
        except TamperDetected as e:
            self.quarantine(e, by=f"worker:{worker_id}")
            return None
        if is_allowed(run.state, "Dequeued"):
            return run
        if run.is_terminal:  # final: its rows can only be stale. A live run's rows are left to its
            self._heal(IndexEntry.of(run))  # next save: a heal from this copy could undo a newer one.
        return None

    def _heal(self, entry: IndexEntry) -> None:
        """Remove the inline rows of a run that is over or gone (a save of no events, one transaction)."""
        self._log.warning("healed a stale queue row", run_id=entry.run_id, state=entry.state)
        with self._faults():
            self._store.save(index_entries=[entry])

    def _prepare_claim(self, run: Run, req: ClaimInput, *, start: bool) -> tuple[Run, Claim]:
        now = self._now()
        expires = now + timedelta(seconds=req.lease_seconds)
        epoch = run.dequeue(worker_id=req.worker_id, lease_expires_at=expires, now=now)
        # Unvalidated: every value is the run's own or the validated request's (dicts copied, as validation did).
        claim = Claim.model_construct(
            run_id=run.run_id, worker_id=req.worker_id, epoch=epoch, lease_expires_at=expires,
            agent_id=run.agent_id, thread_id=run.thread_id, input=run.input,
            invocation=None if run.invocation is None else dict(run.invocation),
            resume=None if run.pending_resume is None else dict(run.pending_resume),
            fork_of=None if run.fork is None else {"run_id": run.parent_run_id, "version": run.parent_version,
                                                   "parent_chain": run.fork.get("parent_chain"),
                                                   "input": run.fork.get("input")},
        )
        if start:
            begin(run, req.worker_id, epoch, now)
        return run, claim

    def _try_claim(self, run_id: str, req: ClaimInput, *, start: bool = False) -> Claim | None:
        run = self._claimable(run_id, req.worker_id)
        if run is None:
            return None
        run, claim = self._prepare_claim(run, req, start=start)
        try:
            self._save(run)
        except ConcurrencyConflict:
            return None  # another worker won this one: try the next candidate
        return claim

    def start(self, claim: Claim) -> RunSnapshot:
        """Start a claimed run: ``Started``, or ``Resumed`` when it has a decision to resume with."""

        return RunSnapshot.of(self._execute(claim.run_id, lambda run: begin(run, claim.worker_id, claim.epoch, self._now()))[0])

    def heartbeat(self, claim: Claim, *, lease_seconds: float = 30) -> Claim:
        """Renew the lease; returns the claim with its new expiry."""
        req = validate(ClaimInput, worker_id=claim.worker_id, lease_seconds=lease_seconds)
        now = self._now()
        expires = now + timedelta(seconds=req.lease_seconds)
        self._execute(claim.run_id, _renewal(claim, expires, now))
        return claim.model_copy(update={"lease_expires_at": expires})

    def heartbeat_many(self, claims: Sequence[Claim], *, lease_seconds: float = 30) -> list[RunSnapshot | RunjournalError]:
        """Renew several leases in ONE save; per claim, the run renewed or the error refusing it.

        One worker's beat for all its runs. A run changed meanwhile by another process (a
        cancel) is renewed on its own from a fresh read, so its snapshot shows ``cancelling``.
        """
        if not claims:
            return []
        req = validate(ClaimInput, worker_id=claims[0].worker_id, lease_seconds=lease_seconds)
        now = self._now()
        expires = now + timedelta(seconds=req.lease_seconds)
        results = self._execute_many([(c.run_id, _renewal(c, expires, now)) for c in claims])
        return [r if isinstance(r, RunjournalError) else RunSnapshot.of(r[0]) for r in results]

    def expire_leases(
        self,
        *,
        can_replay: Callable[[str], bool] | None = None,
        running_grace: timedelta = timedelta(0),
        limit: int = 500,
    ) -> list[str]:
        """Apply ``LeaseExpired`` where leases ran out; returns the run ids handled.

        A ``running`` run is only taken as stale once its lease has been expired
        for ``running_grace`` too (recovery's ``stale_running_after_seconds``).
        """
        now = self._now()
        with self._faults():
            expired = self.inline_views.expired_leases(now.timestamp(), limit + len(self._quarantine_local))
        expired = [r for r in expired if r not in self._quarantine_local][:limit]

        def expire(run: Run) -> bool:
            replay = bool(can_replay and can_replay(run.agent_id))
            return run.expire_if_due(now=now, running_grace=running_grace, can_replay=replay)

        # Every lease that ran out, expired in ONE save (fresh copies: another process renews them).
        return self._expire_due(expired, expire, by="system:lease")

    def _expire_due(self, run_ids: Sequence[str], expire: Callable[[Run], bool], *, by: str) -> list[str]:
        """Apply ``expire`` to each run in ONE save (fresh copies); returns the runs it expired.

        A run another process handled first (renewed, decided, expired) is left as it is; a run
        whose events fail their check is quarantined ``by`` this actor.
        """
        handled = []
        for run_id, result in zip(run_ids, self._execute_many([(r, expire) for r in run_ids], fresh=True), strict=True):
            if isinstance(result, TamperDetected):
                self.quarantine(result, by=by)
            elif not isinstance(result, RunjournalError) and result[1]:
                handled.append(run_id)
        return handled

    def rebuild_index(self) -> int:
        """Rebuild the inline queue and leases from the log; returns the runs indexed."""
        first_position: dict[str, int] = {}
        for page in self.notifications():
            for n in page:
                first_position.setdefault(str(n.originator_id), n.id)
        entries = []
        held = self.quarantined_ids()
        for run_id, position in first_position.items():
            try:
                entry = IndexEntry.of(self._load(run_id, fresh=True))
            except TamperDetected as e:
                if run_id not in held:
                    self.quarantine(e, by="system:rebuild")
                continue
            if entry.live:
                entries.append((entry, position))
        with self._faults():
            self.inline_views.replace_index(entries)
        return len(entries)


def begin(run: Run, worker_id: str, epoch: int, now: Any) -> None:
    """``Resumed`` when the run has something to resume with, else ``Started``."""
    if run.pending_resume is not None:
        run.resume(worker_id=worker_id, epoch=epoch, now=now)
    else:
        run.start(worker_id=worker_id, epoch=epoch, now=now)


def _renewal(claim: Claim, expires: datetime, now: datetime) -> Callable[[Run], Any]:
    """The command that renews ``claim``'s lease until ``expires``."""
    return lambda run: run.renew_lease(worker_id=claim.worker_id, epoch=claim.epoch, lease_expires_at=expires, now=now)
