"""Find runs by one more thing that happened: which model each run asked, as a projection of your own.

Run it with ``python examples/find_by_model.py``. It opens a journal on a temporary SQLite
file, records a few runs whose agents asked models (the model steps that
``AgentRequest.model`` records), adds the ``ModelCalls`` projection beside the built-in
views, catches it up and prints how many runs asked each model (and failed, for one):
the same way ``journal.find_runs`` answers its own filters from the ``run_facts`` view.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlite_utils import Database

from runjournal import Journal, ProjectedEvent, Projection


class ModelCalls(Projection):
    """One row per model step a run recorded: the run and the model's name, indexed by model."""

    name = "model_calls"
    version = 1

    def setup(self, db: Database) -> None:
        """The table, keyed by the event's log position, and its index by model."""
        table = db["model_calls"]
        table.create({"position": int, "run_id": str, "model": str}, pk="position", if_not_exists=True)  # type: ignore[union-attr]
        table.create_index(["model", "run_id"], if_not_exists=True)  # type: ignore[union-attr]

    def handle(self, event: ProjectedEvent, db: Database) -> None:
        """Keep the model steps (``{"model": name, ...}``); every other event is nothing to this view."""
        content = event.data.get("content") if event.type == "StepRecorded" else None
        if isinstance(content, dict) and isinstance(content.get("model"), str):
            db["model_calls"].insert(  # type: ignore[union-attr]
                {"position": event.position, "run_id": event.run_id, "model": content["model"]}, replace=True)


def runs_that_asked(journal: Journal, model: str, *, state: str | None = None) -> list[str]:
    """The runs that asked ``model`` (in ``state``, when given), oldest first: the view, then find_runs."""
    journal.catch_up()
    asked = {r for (r,) in journal.runner.db.execute("SELECT DISTINCT run_id FROM model_calls WHERE model = ?",
                                                       [model])}
    found = journal.find_runs(state=state, limit=100_000).runs
    return [r.run_id for r in found if r.run_id in asked]


def record(journal: Journal, models: list[str], *, fail: bool = False) -> str:
    """A run whose agent asked ``models`` in turn, then completed (or failed)."""
    run = journal.submit(agent_id="researcher", input={"message": "research"})
    claim = journal.claim_next(worker_id="w1", start=True)
    assert claim is not None and claim.run_id == run.run_id
    journal.record_steps(claim, [("step", {"model": m, "args": {"n": i}, "output": f"answer {i}"})
                                 for i, m in enumerate(models)])
    if fail:
        journal.fail(claim, error="the answer did not parse")
    else:
        journal.complete(claim, output={"text": "done"})
    return run.run_id


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        with Journal.open(f"sqlite:///{Path(folder) / 'journal.db'}") as journal:
            record(journal, ["drafter"])
            record(journal, ["drafter", "critic"])
            record(journal, ["critic"], fail=True)
            journal.add_projection(ModelCalls())
            for model, state in (("drafter", None), ("critic", None), ("critic", "failed")):
                runs = runs_that_asked(journal, model, state=state)
                print(f"{model}{' and ' + state if state else ''}: {len(runs)} runs")


if __name__ == "__main__":
    main()
