"""docs/cli.md cannot drift from the parser: every verb has its section, every option and argument is in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .test_failure_paths import VERBS, verb_id

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
SECTION = re.compile(r"^### (.+)$", re.M)


def sections() -> dict[str, str]:
    """The text of each ``### verb`` section of docs/cli.md, by verb."""
    text = CLI_DOC.read_text(encoding="utf-8")
    heads = list(SECTION.finditer(text))
    return {m.group(1).strip().strip("`"): text[m.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            for i, m in enumerate(heads)}


def options(command: Any) -> list[str]:
    """The long option names of a verb (``--json``), its help left out."""
    names = []
    for param in command.params:
        if param.param_type_name == "option":
            longest = max(param.opts, key=len)
            if longest != "--help":
                names.append(longest)
    return names


@pytest.mark.parametrize("verb", VERBS, ids=verb_id)
def test_every_verb_has_a_section_naming_each_of_its_options(verb: tuple[tuple[str, ...], Any]) -> None:
    words, command = verb
    name = " ".join(words)
    found = sections()
    assert name in found, f"docs/cli.md has no '### {name}' section"
    section = found[name]
    missing = [option for option in options(command) if option not in section]
    assert not missing, f"docs/cli.md's section of {name} does not mention {missing}"
    assert f"runjournal {name}" in section, f"docs/cli.md's section of {name} shows no `runjournal {name}` line"


def test_the_verb_table_lists_every_verb() -> None:
    table = CLI_DOC.read_text(encoding="utf-8").split("## Global options", 1)[0]
    for words, _command in VERBS:
        assert f"[`{' '.join(words)}`]" in table, f"the table at the top of docs/cli.md misses {' '.join(words)}"
