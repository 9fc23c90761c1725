"""PythonAgent: an agent written in Python, named ``module:callable`` and imported on first use.

The module is looked for in the agent's ``folder`` (the workspace file's) first, then
where Python finds installed modules. The folder is never added to ``sys.path``: a
host's imports stay its own. A module found there is imported once under its name,
like any import; its own imports of files beside it should be relative (make the
folder a package) or of installed modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from pathlib import Path
from types import ModuleType
from typing import Any

from .base import AgentLoadError, AgentRequest, Chunk


def to_chunk(item: object, *, source: str = "agent") -> Chunk:
    """A Chunk from what an agent yielded: a Chunk, a str (content) or a dict with ``kind``."""
    if isinstance(item, Chunk):
        return item
    if isinstance(item, str):
        return Chunk.say(item)
    if isinstance(item, Mapping) and "kind" in item:
        try:
            return Chunk(**item)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{source} yielded an invalid chunk {dict(item)!r}: {e}") from None
    raise TypeError(
        f"{source} yielded {type(item).__name__}; expected Chunk, str or dict with 'kind'"
    )


def _import(module_name: str, folder: Path | None) -> ModuleType:
    """``module_name``, its top-level module taken from ``folder`` when it is there."""
    top = module_name.partition(".")[0]
    source = _source_in(folder, top) if folder is not None and top not in sys.modules else None
    if source is not None:
        package = [str(source.parent)] if source.name == "__init__.py" else None
        spec = importlib.util.spec_from_file_location(top, source, submodule_search_locations=package)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[top] = module  # as an import does: its submodules and the module itself find it there
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[top]
            raise
    return importlib.import_module(module_name)


def _source_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.py", folder / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def resolve(target: str, folder: Path | None = None) -> tuple[object, object, str]:
    """(the object named by ``target``, the object holding it, its name)."""
    module_name, colon, path = target.partition(":")
    if not colon or not module_name or not path:
        raise AgentLoadError(f"cannot load agent {target!r}: expected 'module:callable'")
    try:
        holder: object = _import(module_name, folder)
    except ImportError as e:
        raise AgentLoadError(f"cannot import agent {target!r}: {e}") from e
    except Exception as e:  # the module itself raised while being imported
        raise AgentLoadError(f"cannot import agent {target!r}: {type(e).__name__}: {e}") from e
    parts = path.split(".")
    for part in parts[:-1]:
        holder = _attr(target, holder, part)
    return _attr(target, holder, parts[-1]), holder, parts[-1]


def _attr(target: str, obj: object, name: str) -> object:
    try:
        return getattr(obj, name)
    except AttributeError:
        owner = getattr(obj, "__name__", obj)
        raise AgentLoadError(
            f"cannot load agent {target!r}: {owner!r} has no attribute {name!r}"
        ) from None


class PythonAgent:
    """An agent given as ``module:callable``: an async generator function or an adapter object.

    The callable may also be an object with ``stream`` (and optionally ``invoke``),
    or a class building one with no arguments. For a generator function, a
    ``<callable>_invoke`` next to it provides ``invoke``.
    """

    kind = "python"

    def __init__(self, target: str, *, supports_replay: bool = False, folder: str | Path | None = None) -> None:
        self.target = target
        self.supports_replay = supports_replay
        self.folder = Path(folder) if folder is not None else None  # looked in first for the module
        self._stream: Callable[[AgentRequest], Any] | None = None
        self._invoke: Callable[[AgentRequest], Any] | None = None

    def __repr__(self) -> str:
        return f"PythonAgent({self.target!r})"

    def load(self) -> None:
        """Import the target now (otherwise it happens on first use); raises AgentLoadError."""
        if self._stream is not None:
            return
        obj, holder, name = resolve(self.target, self.folder)
        invoke = None
        if inspect.isclass(obj):
            try:
                obj = obj()
            except Exception as e:
                raise AgentLoadError(f"cannot build agent {self.target!r}: {e}") from e
        if callable(method := getattr(obj, "stream", None)):
            stream, invoke = method, getattr(obj, "invoke", None)
        elif callable(obj):
            stream, invoke = obj, getattr(holder, f"{name}_invoke", None)
        else:
            raise AgentLoadError(
                f"cannot load agent {self.target!r}: expected an async generator function or an "
                f"object with stream(), got {type(obj).__name__}"
            )
        self._invoke = invoke if callable(invoke) else None
        self._stream = stream

    @property
    def can_invoke(self) -> bool:
        """Whether the target provides ``invoke`` (loads the target)."""
        self.load()
        return self._invoke is not None

    async def stream(self, request: AgentRequest) -> AsyncIterator[Chunk]:
        """Run the target and yield its output as chunks."""
        self.load()
        assert self._stream is not None
        produced = self._stream(request)
        if not hasattr(produced, "__aiter__"):
            if inspect.iscoroutine(produced):
                produced.close()
            raise TypeError(
                f"agent {self.target!r} returned {type(produced).__name__}; "
                "expected an async iterator (write it as an async generator)"
            )
        if hasattr(produced, "aclose"):
            async with aclosing(produced) as items:
                async for item in items:
                    yield to_chunk(item, source=f"agent {self.target!r}")
        else:
            async for item in produced:
                yield to_chunk(item, source=f"agent {self.target!r}")

    async def invoke(self, request: AgentRequest) -> list[Chunk]:
        """Call the target's ``invoke`` and return its output as chunks."""
        if not self.can_invoke:
            raise NotImplementedError(f"agent {self.target!r} has no invoke")
        assert self._invoke is not None
        result = self._invoke(request)
        if inspect.isawaitable(result):
            result = await result
        if hasattr(result, "__aiter__"):
            result = [item async for item in result]
        if isinstance(result, (str, Chunk, Mapping)):
            result = [result]
        return [to_chunk(item, source=f"agent {self.target!r}") for item in result]
