"""Quarantine: runs set aside because their stored events failed their check on load.

Claims and lease expiry skip a quarantined run until it is released; the mark is kept
in the store's quarantine table (every worker sees it, it survives restarts), or in
memory for an in-process store.
"""

from __future__ import annotations

from ..adapters.clock import Clock
from ..adapters.storage import index
from ..adapters.storage.index import IndexEntry, QuarantineRow
from ..domain import InvalidInput, RunNotFound
from ..domain.errors import TamperDetected
from .unit_of_work import RunStore, UnitOfWork, default_actor


class Quarantine(UnitOfWork):
    """A unit of work that can set runs aside, list them and give them back."""

    def __init__(self, store: RunStore, *, url: str, clock: Clock | None = None) -> None:
        super().__init__(store, url=url, clock=clock)
        self._quarantine_local: dict[str, QuarantineRow] = {}  # stores without a quarantine table

    def quarantine(self, error: TamperDetected, *, by: str) -> QuarantineRow:
        """Set a run aside that failed its check on load: claims and lease expiry skip it until released.

        Kept in the store's quarantine table (it survives restarts and every worker sees it);
        an in-process store keeps it in memory. The first finding of a run stays.
        """
        row = QuarantineRow(run_id=error.run_id, version=error.version, what=error.what,
                            quarantined_at=self._now().timestamp(), quarantined_by=by)
        self._runs.pop(error.run_id, None)
        self._log.error("run quarantined", run_id=error.run_id, version=error.version, what=error.what, by=by)
        if index.persists_quarantine(self._store.recorder):
            with self._faults():
                index.write_markers(self._store.recorder, [IndexEntry.quarantined(row)])
        else:
            self._quarantine_local.setdefault(error.run_id, row)
        return row

    def quarantined(self) -> list[QuarantineRow]:
        """Every quarantined run, oldest first."""
        with self._faults():
            rows = index.select_quarantine(self._store.recorder)
        if rows is None:
            return sorted(self._quarantine_local.values(), key=lambda r: (r.quarantined_at, r.run_id))
        return rows

    def quarantined_ids(self) -> set[str]:
        """The ids of the quarantined runs."""
        return {r.run_id for r in self.quarantined()}

    def release(self, run_id: str, *, actor: str | None = None) -> QuarantineRow:
        """Give a quarantined run back to the workers, once its events check again.

        Raises ``TamperDetected`` while the run still fails its check (repair the store
        first, e.g. from a backup), ``InvalidInput`` when the run is not quarantined.
        A run whose events are all gone is released and its rows removed.
        """
        row = next((r for r in self.quarantined() if r.run_id == run_id), None)
        if row is None:
            raise InvalidInput("run_id", f"run {run_id} is not quarantined (list them with `runjournal quarantine`)")
        try:
            entry = IndexEntry.of(self._load(run_id, fresh=True))
        except RunNotFound:
            entry = IndexEntry.gone(run_id)
        if index.persists_quarantine(self._store.recorder):
            with self._faults():  # the run's queue and lease rows are written again, as after a save
                index.write_markers(self._store.recorder, [IndexEntry.released(run_id), entry])
        else:
            self._quarantine_local.pop(run_id, None)
        self._log.warning("run released from quarantine", run_id=run_id, actor=actor or default_actor(),
                          version=row.version, what=row.what)
        return row
