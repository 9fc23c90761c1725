"""Stored strings reach the terminal as what they hold: no escape sequence, no markup, acts."""

from __future__ import annotations

import re

import pytest

from runjournal import Journal
from runjournal.cli.render import plain, visible

# Clears the line, hides the rest, reverses it, and styles it, if a terminal acted on it.
HOSTILE = "ok\x1b[2K\x1b[8mhidden[bold]loud[/bold]\u202eevil\x07"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202e]")  # what must never be printed raw (tabs and newlines may)


def test_visible_escapes_controls_and_markup() -> None:
    assert visible(HOSTILE) == "ok\\x1b[2K\\x1b[8mhidden\\[bold]loud\\[/bold]\\u202eevil\\x07"
    assert plain("line one\nrun \x1b[31mX") == "line one\nrun \\x1b[31mX"


@pytest.fixture
def hostile_store(cli) -> str:
    """A store whose runs carry hostile text in the actor, thread, agent, output, error and tool fields."""
    with Journal.open(cli.url) as j:
        done = j.submit(agent_id=HOSTILE, input={"m": HOSTILE}, thread_id=HOSTILE)
        claim = j.claim_next(worker_id="w", start=True)
        j.record_step(claim, "message", {"role": "assistant", "content": HOSTILE})
        j.complete(claim, output={"text": HOSTILE})
        j.submit(agent_id="a", input={})
        j.cancel(j.queue()[0].run_id, reason=HOSTILE, actor=HOSTILE)
        j.submit(agent_id="a", input={})
        claim = j.claim_next(worker_id="w", start=True)
        j.request_approval(claim, tool_name=HOSTILE, tool_args={"path": HOSTILE})
        j.catch_up()
        return done.run_id


def test_no_read_verb_prints_a_stored_escape_raw(cli, hostile_store: str) -> None:
    runs = [r.run_id for r in Journal.open(cli.url, read_only=True).runs()]
    commands = [["history", r] for r in runs] + [["status", r] for r in runs]
    commands += [["threads"], ["approvals", "--all"], ["queue"], ["verify"]]
    for args, result in zip(commands, cli.many(*commands), strict=True):
        assert result.code == 0, (args, result.err)
        for stream in (result.out, result.err):
            assert not RAW.search(stream), (args, stream)
    history = cli("history", runs[1]).out
    assert "\\x1b" in history, "the hostile actor must be shown, escaped"
    assert "hidden[bold]loud" in cli("status", runs[0]).out, "markup must be shown as text, not applied"


def test_an_error_naming_hostile_input_is_printed_escaped(cli, hostile_store: str) -> None:
    result = cli("status", "\x1b[2Kforged")
    assert result.code == 1
    assert "\x1b" not in result.err and "\\x1b" in result.err
