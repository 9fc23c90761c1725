"""Blocks of the docs generated from the code: rewritten between their markers, checked by tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def rewrite(path: Path, start: str, end: str, block: str) -> bool:
    """Replace what lies between ``start`` and ``end`` (markers included) in ``path``; True when it changed."""
    text = path.read_text()
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    new = f"{head}{block}{tail}"
    path.write_text(new)
    return new != text


def main(start: str, end: str, block: Callable[[], str]) -> None:
    """Rewrite the block of every file named on the command line, saying which changed."""
    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if rewrite(Path(arg), start, end, block()) else 'up to date'}")
