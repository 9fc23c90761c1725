"""The YAML side of a workspace file: the node tree, the line each key is on, and a loader refusing duplicate keys."""

from __future__ import annotations

from typing import Any

import yaml

from ..domain import WorkspaceError


def _line(node: yaml.Node) -> int:
    """The 1-based line a YAML node starts on."""
    return node.start_mark.line + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node giving the line, the value node) one step along a location, or None."""
    if isinstance(node, yaml.MappingNode):
        return next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part]
    return None


def line_at(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node found along ``loc``; a mapping entry gives its key's line."""
    line = _line(node) if node is not None else None
    for part in loc:
        found = _child(node, part) if node is not None else None
        if found is None:
            break
        line, node = _line(found[0]), found[1]
    return line


class _Loader(yaml.SafeLoader):
    """The safe YAML loader, refusing a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping, unless a key in it is written twice."""
        first: dict[tuple[str, Any], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and not key.tag.endswith(":merge"):
                if (key.tag, key.value) in first:
                    where = f"(first on line {first[key.tag, key.value]})"
                    problem = f"duplicate key {key.value!r} {where}"
                    raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
                first[key.tag, key.value] = _line(key)
        return super().construct_mapping(node, deep=deep)


def compose(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree and the data it builds; syntax errors become WorkspaceError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and start.line != getattr(mark, "line", None):
            problem += f" ({context} from line {start.line + 1})"
        line = mark.line + 1 if mark is not None else None
        raise WorkspaceError(f"invalid YAML: {problem}", file=filename, line=line) from None
    finally:
        loader.dispose()
