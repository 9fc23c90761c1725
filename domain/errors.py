"""Errors raised by runjournal.

    RunjournalError
    ├── InvalidInput (also a ValueError)     bad input at a boundary; names the field
    ├── RunNotFound (also a LookupError)     no run with that id
    │   └── ApprovalNotFound                 no approval with that id
    ├── InvalidTransition                    the transition table forbids the event
    ├── LeaseLost                            a worker command from a lease that is not current
    ├── ConcurrencyConflict                  another writer saved the run first
    ├── UnknownAgent                         routing found no agent of that name
    ├── ResumeFailedError                    the agent failed a resume; the run is retried
    ├── StoreError                           the store URL is wrong, or the store cannot be read
    │   ├── StoreUnavailable                 a transient fault (locked, disk full, I/O, offline)
    │   └── TamperDetected                   a run's stored events break its hash chain
    ├── WorkspaceError                       the workspace file is missing or invalid
    ├── AgentFailed      (adapters.agents)   an agent reported a failure
    ├── AgentLoadError   (adapters.agents)   an agent cannot be imported or built
    └── ProjectionError  (projections)       a projection's handler raised

Every error keeps its ids as attributes, pickles (workers pass them between
processes) and has a stable ``code`` for the CLI's JSON output. Whatever raised
one appended nothing.
"""

from __future__ import annotations


def _rebuild(cls: type[RunjournalError], args: tuple[object, ...], state: dict[str, object]) -> RunjournalError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class RunjournalError(Exception):
    """Raised for every error runjournal reports on purpose."""

    code = "error"

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take keyword-only ids, which Exception's default pickling cannot replay.
        return _rebuild, (type(self), self.args, dict(self.__dict__))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description, for the CLI and APIs."""
        return {"code": self.code, "message": str(self)}


class InvalidInput(RunjournalError, ValueError):
    """Raised when an input fails validation; nothing was appended."""

    code = "invalid_input"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class RunNotFound(RunjournalError, LookupError):
    """Raised when no run has the given id."""

    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} not found (list runs with `runjournal threads` or `Journal.runs()`)")


class ApprovalNotFound(RunNotFound):
    """Raised when no approval has the given id, or a thread has none pending (``thread_id`` set)."""

    code = "approval_not_found"

    def __init__(self, approval_id: str = "", *, thread_id: str | None = None) -> None:
        self.approval_id = approval_id
        self.thread_id = thread_id
        message = (f"thread {thread_id} has no pending approval to resume" if thread_id is not None
                   else f"approval {approval_id} not found")
        RunjournalError.__init__(self, f"{message} (list them with `runjournal approvals`)")
        self.run_id = ""


class InvalidTransition(RunjournalError):
    """Raised when the transition table does not allow an event in the run's state."""

    code = "invalid_transition"

    def __init__(
        self, run_id: str, state: str, event: str, *, target: str | None = None, why: str = ""
    ) -> None:
        self.run_id = run_id
        self.state = str(state)
        self.event = event
        self.target = target
        to = f" -> {target}" if target else ""
        reason = f": {why}" if why else ""
        super().__init__(f"run {run_id}: {event}{to} is not allowed in state {self.state}{reason}")


class LeaseLost(RunjournalError):
    """Raised when a worker command does not come from the run's current lease."""

    code = "lease_lost"

    def __init__(self, run_id: str, worker_id: str, epoch: int, *, holder: str | None) -> None:
        self.run_id = run_id
        self.worker_id = worker_id
        self.epoch = epoch
        self.holder = holder
        now = f"held by {holder}" if holder else "not held by any worker"
        super().__init__(
            f"run {run_id}: lease of worker {worker_id} (epoch {epoch}) is no longer current; "
            f"the lease is {now}"
        )


class ConcurrencyConflict(RunjournalError):
    """Raised when another writer saved the same run first; nothing of ours was saved."""

    code = "concurrency_conflict"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} was changed by another writer at the same time; retry")


class UnknownAgent(RunjournalError):
    """Raised when a run names, or routing picks, an agent the workspace does not define."""

    code = "unknown_agent"

    def __init__(self, agent_id: str, known: list[str] | tuple[str, ...] = ()) -> None:
        self.agent_id = agent_id
        self.known = list(known)
        listed = ", ".join(sorted(self.known)) or "none"
        super().__init__(f"unknown agent {agent_id!r} (agents defined: {listed})")


class ResumeFailedError(RunjournalError):
    """Raised to whoever waits on a resume the agent failed; recorded, and the run waits to be retried."""

    code = "resume_failed"

    def __init__(self, run_id: str, error: str, *, attempt: int, retries: int) -> None:
        self.run_id = run_id
        self.error = error
        self.attempt = attempt
        self.retries = retries
        super().__init__(
            f"run {run_id}: the agent failed while resuming: {error} (recorded; the run stays resuming "
            f"and is retried: retry {attempt} of {retries})"
        )


class StoreError(RunjournalError):
    """Raised when a store URL is malformed or the store cannot be opened or read."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """Raised when the store fails for a reason that may pass: locked, full, I/O error, offline.

    ``cause`` is one short phrase (``locked by another process``, ``disk full``,
    ``I/O error``, ``read-only``, ``connection lost``); nothing of the failed
    command was saved, and retrying it later is safe.
    """

    code = "store_unavailable"

    def __init__(self, store: str, cause: str, *, detail: str = "", opening: bool = False) -> None:
        self.store = store
        self.cause = cause
        self.detail = detail
        more = f" ({detail})" if detail and detail != cause else ""
        if opening:
            super().__init__(f"cannot open store {store}: {cause}{more}")
        else:
            super().__init__(f"store {store} is unavailable: {cause}{more}; nothing was saved, retry later")


class WorkspaceError(RunjournalError):
    """Raised when a workspace file is missing, unreadable or invalid.

    The message reads ``FILE:LINE: FIELD.PATH: PROBLEM``, one line per problem (a file is
    checked whole, so every problem found in it is listed); parts that do not apply are left
    out. ``problems`` holds each one as ``{"file", "line", "field", "problem"}``; ``file``,
    ``line``, ``field`` and ``problem`` are those of the first, ``more`` gives the others.
    """

    code = "workspace_error"

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        more: list[dict[str, object]] | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.field = field
        # Plain dicts: they pickle with the error and are already JSON-ready.
        first: dict[str, object] = {"file": file, "line": line, "field": field, "problem": problem}
        self.problems: list[dict[str, object]] = [first, *(dict(p) for p in more or ())]
        super().__init__("\n".join(WorkspaceError._describe(p) for p in self.problems))

    @staticmethod
    def _describe(problem: dict[str, object]) -> str:
        file, line, field = problem.get("file"), problem.get("line"), problem.get("field")
        where = f"{file}:{line}" if file and line else file or (f"line {line}" if line else "")
        return ": ".join(str(part) for part in (where, field, problem["problem"]) if part)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description, with the first problem's file, line and field, and every problem."""
        return {
            **super().to_dict(),
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "problems": [dict(p) for p in self.problems],
        }


class TamperDetected(StoreError):
    """Raised when a run's stored events do not prove themselves: a broken chain link or version gap.

    ``version`` is the first event that fails its check, ``what`` says how. Nothing of
    the run was used: workers quarantine it (``runjournal quarantine``) and go on.
    """

    code = "tamper_detected"

    def __init__(self, run_id: str, version: int | None, what: str) -> None:
        self.run_id = run_id
        self.version = version
        self.what = what
        at = f" at version {version}" if version is not None else ""
        super().__init__(f"run {run_id}{at}: {what}; the run was not loaded "
                         "(run `runjournal verify`, see `runjournal quarantine`)")
