"""Every error a user can see is one tree under RunjournalError, carries its ids and pickles."""

from __future__ import annotations

import pickle

from runjournal.adapters.agents import AgentFailed, AgentLoadError
from runjournal.domain import errors
from runjournal.projections import ProjectionError, ProjectionFailure

import runjournal
from runjournal import RunjournalError

SAMPLES: list[RunjournalError] = [
    errors.InvalidInput("input", "bad"),
    errors.RunNotFound("r1"),
    errors.ApprovalNotFound("r1.a1"),
    errors.InvalidTransition("r1", "completed", "Completed", target=None, why="over"),
    errors.LeaseLost("r1", "w1", 2, holder="w2"),
    errors.ConcurrencyConflict("r1"),
    errors.UnknownAgent("x", ["a", "b"]),
    errors.ResumeFailedError("r1", "boom", attempt=1, retries=3),
    errors.StoreError("cannot open"),
    errors.StoreUnavailable("sqlite:///j.db", "disk full", detail="database or disk is full"),
    errors.TamperDetected("r1", 3, "chain mismatch"),
    errors.WorkspaceError("bad", file="w.yaml", line=3, field="agents"),
    AgentFailed("boom"),
    AgentLoadError("cannot import x"),
    ProjectionError([ProjectionFailure(name="p", position=3, event_type="Created", error="KeyError")]),
]


def test_every_public_error_is_a_runjournal_error() -> None:
    public = [getattr(runjournal, name) for name in runjournal.__all__]
    exceptions = [obj for obj in public if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert exceptions and all(issubclass(cls, RunjournalError) for cls in exceptions)
    assert {type(e) for e in SAMPLES} >= set(exceptions) - {RunjournalError}


def test_every_error_pickles_with_its_ids_and_message() -> None:
    for error in SAMPLES:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert vars(copy) == vars(error), type(error).__name__
        assert copy.to_dict()["code"] == error.code != "error"


def test_the_table_comes_before_the_fence() -> None:
    with runjournal.Journal.open("memory://") as j:
        j.submit(agent_id="a", input={})
        claim = j.claim_next(worker_id="w")
        j.start(claim)
        j.complete(claim, output={})
        try:
            j.complete(claim, output={})
        except errors.InvalidTransition as e:
            assert (e.state, e.event) == ("completed", "Completed")
        else:
            raise AssertionError("completing twice was accepted")
