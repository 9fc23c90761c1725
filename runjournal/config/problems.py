"""Problems of a workspace, reported as ``FILE:LINE: FIELD.PATH: MESSAGE``, in file order.

pydantic's errors are rewritten in plain words; the line comes from the YAML node tree
(``yaml_lines``), so every message points into the file.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ..domain import WorkspaceError
from .yaml_lines import line_at

M = TypeVar("M", bound=BaseModel)

Loc = tuple[str | int, ...]  # where in the workspace: keys and list indexes


class Problem(ValueError):
    """Validation problems, each a (location below the model that raised it, message)."""

    def __init__(self, *items: tuple[Loc, str]) -> None:
        super().__init__("; ".join(message for _, message in items))
        self.items = items


def did_you_mean(word: str, choices: list[str], listed: str) -> str:
    """`` (did you mean 'x'?)`` for a close choice, else the list of choices."""
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({listed}: {', '.join(choices) or 'none'})"


def shown(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)


_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
          "dict": "a mapping", "model": "a mapping", "list": "a list"}


def _message(error: Mapping[str, Any]) -> str:
    """A short human message for one pydantic error."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, shown(error.get("input"))
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "missing":
        return "is required"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return f"must be {op} {shown(ctx[key])} (got {got})"
    if kind == "literal_error":
        options = ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
        return f"must be one of: {options} (got {got})"
    if kind.endswith("too_short"):
        return "must not be empty"
    if kind.split("_")[0] in _KINDS and kind.endswith(("_type", "_parsing", "_from_float")):
        return f"must be {_KINDS[kind.split('_')[0]]} (got {got})"
    return str(error["msg"][:1].lower() + error["msg"][1:])


def _unwrap(kind: Any) -> Any:
    """``X`` for an annotation ``X | None``; any other annotation as it is."""
    if get_origin(kind) in (Union, types.UnionType):
        args = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The section model that validates the mapping at ``loc`` below ``root``, if any."""
    kind: Any = root
    for part in loc:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return None
            kind = field.annotation
        elif get_origin(kind) in (list, dict):
            kind = get_args(kind)[-1]  # the items of a list, the values of a mapping
        else:
            return None
    kind = _unwrap(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _entries(root: type[BaseModel], exc: ValidationError) -> list[tuple[Loc, str]]:
    """(location, message) of every problem pydantic found, each of a Problem's on its own."""
    entries: list[tuple[Loc, str]] = []
    for error in exc.errors():
        loc, problem = tuple(error["loc"]), (error.get("ctx") or {}).get("error")
        if error["type"] == "extra_forbidden":
            key, model = str(loc[-1]), _model_at(root, loc[:-1])
            hint = did_you_mean(key, list(model.model_fields), "allowed keys") if model else ""
            entries.append(((*loc[:-1], key), f"unknown key {key!r}{hint}"))
        elif isinstance(problem, Problem):
            entries.extend(((*loc, *below), message) for below, message in problem.items)
        else:
            entries.append((loc, _message(error)))
    return entries


def _dotted(loc: tuple[str | int, ...]) -> str:
    """``agents.deployer.script[2].tool_call`` for a location."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(
    model: type[M], data: Any, root: yaml.Node | None, file: str | None,
    *, across: Callable[[Any], list[tuple[Loc, str]]],
) -> M:
    """The ``model`` that ``data`` describes, or one WorkspaceError listing every problem in it.

    ``across`` finds the problems across sections in plain data: pydantic runs those checks
    only on a valid model, so when a section fails they are run here, to be reported too.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        entries = _entries(model, exc)
        if all(error["loc"] for error in exc.errors()):
            entries += across(data)
    raise _workspace_error(entries, root, file)


def _workspace_error(
    entries: list[tuple[Loc, str]], root: yaml.Node | None, file: str | None
) -> WorkspaceError:
    """One WorkspaceError for all ``entries``, in the order of their lines in the file."""
    rows: dict[tuple[int | None, str, str], int] = {}
    for index, (loc, message) in enumerate(entries):
        rows.setdefault((line_at(root, loc), _dotted(loc), message), index)
    ordered = sorted(rows, key=lambda row: (row[0] or 0, rows[row]))
    problems: list[dict[str, object]] = [
        {"file": file, "line": line, "field": field or None, "problem": message}
        for line, field, message in ordered
    ]
    line, field, message = ordered[0]
    return WorkspaceError(message, file=file, line=line, field=field or None, more=problems[1:])
