"""Files the journal writes: a private store, and --out files that appear whole or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runjournal import InvalidInput, Journal
from runjournal.cli.outputs import atomic_output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_store(folder: Path) -> Path:
    db = folder / "store" / "j.db"
    with Journal.open(f"sqlite:///{db}") as j:
        j.submit(agent_id="a", input={"m": "secret plans"})
        j.catch_up()
    return db


def test_a_new_store_and_its_views_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNJOURNAL_FILE_MODE", raising=False)
    old = os.umask(0o022)
    try:
        db = make_store(tmp_path)
    finally:
        os.umask(old)
    assert mode(db.parent) == 0o700
    files = [p for p in db.parent.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"j.db", "j.views.db"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_group_access_is_an_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_FILE_MODE", "0640")
    db = make_store(tmp_path)
    assert mode(db.parent) == 0o750
    assert {mode(p) for p in db.parent.iterdir() if p.is_file()} == {0o640}
    monkeypatch.setenv("RUNJOURNAL_FILE_MODE", "0444")
    with pytest.raises(InvalidInput, match="RUNJOURNAL_FILE_MODE"):
        Journal.open(f"sqlite:///{tmp_path / 'other' / 'j.db'}")


def test_an_out_file_needs_force_to_replace_and_is_untouched_by_an_error(cli) -> None:
    with Journal.open(cli.url) as j:
        j.submit(agent_id="a", input={})
    kept = cli.cwd / "kept.jsonl"
    kept.write_text("precious\n")
    refused = cli("export", "--out", kept)
    assert refused.code == 1 and "already exists" in refused.message and "--force" in refused.message
    unknown = cli("export", "--run", "no-such-run", "--out", kept, "--force")
    assert unknown.code == 1 and "Traceback" not in unknown.err
    assert kept.read_text() == "precious\n", "a failed export truncated its --out file"
    assert not [p for p in cli.cwd.iterdir() if p.name.startswith(".kept.jsonl.")], "a temp file was left behind"
    assert cli("export", "--out", kept, "--force").code == 0
    assert kept.read_text().count("\n") == 2  # Created, Queued


def test_an_out_symlink_is_never_written_through(cli) -> None:
    with Journal.open(cli.url) as j:
        j.submit(agent_id="a", input={})
    target = cli.cwd / "target.txt"
    target.write_text("not yours\n")
    link = cli.cwd / "link.jsonl"
    link.symlink_to(target)
    assert cli("export", "--out", link).code == 1
    assert cli("timeline", "--thread", "x", "--html", link).code == 1
    assert cli("export", "--out", link, "--force").code == 0
    assert target.read_text() == "not yours\n" and not link.is_symlink()


def test_atomic_output_leaves_nothing_on_an_error(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(path) as stream:
        stream.write("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(path) as stream:
        stream.write("whole")
    assert path.read_text() == "whole" and mode(path) == 0o644
