"""docs/api.md lists exactly the public members of Journal and Harness, as the code declares them."""

from __future__ import annotations

from pathlib import Path

import pytest

from runjournal import Harness, Journal, Workspace
from runjournal.cli.demo import DEMO_WORKSPACE
from runjournal.cli.reference import END, START, generated_block, public_members

API = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_api_page_holds_the_generated_reference() -> None:
    text = API.read_text()
    start, end = text.index(START), text.index(END) + len(END)
    assert text[start:end] == generated_block(), "run: python -m runjournal.cli.reference docs/api.md"


@pytest.mark.parametrize("cls", [Journal, Harness])
def test_every_public_member_is_listed_with_a_summary(cls: type) -> None:
    block = generated_block()
    for name, _ in public_members(cls):
        lines = [line for line in block.splitlines() if line.startswith(f"- `{name}") or f"`async {name}(" in line]
        assert lines, f"{cls.__name__}.{name} is missing from the reference"
        assert not lines[0].rstrip().endswith(":"), f"{cls.__name__}.{name} has no docstring"


def test_the_instance_attributes_the_page_names_exist() -> None:
    journal = Journal.open("memory://")
    try:
        harness = Harness(journal, Workspace.from_dict(DEMO_WORKSPACE))
        text = API.read_text().split(START)[0]
        for obj, names in ((journal, ("url", "clock", "views", "listener_errors")),
                           (harness, ("journal", "workspace", "worker_id", "adapters", "agents", "settings",
                                      "successes", "failures"))):
            for name in names:
                assert hasattr(obj, name) and f"`{name}`" in text, name
    finally:
        journal.close()
