"""docs/concepts.md shows the code's transition table, not a copy that drifted."""

from __future__ import annotations

from pathlib import Path

from runjournal.cli.tables import END, START, generated_block

CONCEPTS = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"


def test_the_concepts_page_holds_the_generated_table() -> None:
    text = CONCEPTS.read_text()
    start, end = text.index(START), text.index(END) + len(END)
    assert text[start:end] == generated_block(), "run: python -m runjournal.cli.tables docs/concepts.md"


def test_the_generated_table_lists_every_transition() -> None:
    from runjournal.domain.transitions import TRANSITIONS

    block = generated_block()
    for event, sources in TRANSITIONS.items():
        for source in sources:
            assert any(line.startswith(f"| {event} |") and str(source) in line for line in block.splitlines())
