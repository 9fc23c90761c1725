"""docs/reference-fidelity.md stays honest: every "same" row names a test that exists, and the counts add up."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "reference-fidelity.md"
STATUSES = {"same", "same (untested)", "different by design", "not applicable"}


def _rows() -> list[list[str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith(("| reference", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            assert len(cells) == 4, line
            rows.append(cells)
    return rows


def test_every_same_row_names_a_test_that_exists() -> None:
    rows = _rows()
    assert len(rows) > 100
    for behaviour, _, status, test in rows:
        assert status in STATUSES, behaviour
        if status == "same":
            assert test, f"a 'same' row without a test: {behaviour}"
        for one in filter(None, (t.strip() for t in test.split(";"))):  # a cell may name several tests
            path, _, name = one.strip("`").partition("::")
            source = (ROOT / path).read_text(encoding="utf-8")
            assert not name or re.search(rf"^(async )?def {re.escape(name)}\(", source, re.M), one


def test_the_counts_line_matches_the_rows() -> None:
    counts = Counter(status for _, _, status, _ in _rows())
    text = TABLE.read_text(encoding="utf-8")
    assert f"Counts ({sum(counts.values())} rows):" in text
    for status in STATUSES:
        assert f"- `{status}`: {counts.get(status, 0)}\n" in text, status
