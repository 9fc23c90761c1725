"""Docs pages whose shell sessions are run as written: every `$ runjournal ...` line, its output compared.

A block marked ``file=NAME`` (after its language) is written to NAME at its place in the page.
A block of a page is a session when its first line starts with ``$ ``. Its commands run in
order, in one folder for the whole page, and each one's output must match the lines under
it. Run ids differ from one run to the next, so each id a page shows is bound to the id
the command really printed where it first appears (any unique start of it, as a reader
would type it, is translated too); times are compared as times. A line ``...`` stands for
any lines; a trailing ``…`` on a line for the rest of it. Tables are compared cell by cell
(their rules and padding depend on the width of what is in them), a worker's name (its
host and process) as any name, and an age or a time left (``12s``, ``59m``) as any. A ``$`` line that ends in
`` # fails`` must exit 1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BLOCK = re.compile(r"```([^\n]*)\n(.*?)```", re.S)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_START = re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{1,12}){0,4}\b")
BOX = re.compile(r"[\u2500-\u257f\s]+")  # table rules and the padding rich gives columns of any width
WORKER = re.compile(r"((?:worker:|worker_id=|worker )[\w.-]+?)(?=[\s:,]|$)")  # named after its host and process
# How long ago, how long until (a second more or less from run to run); never a piece of an id ("-978d-").
AGE = re.compile(r"(?<![\w-])\d+[smhd](?![\w-])")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?|\b\d\d:\d\d:\d\d(?:\.\d+)?\b")


def steps(page: Path) -> list[tuple[str, str, list[str]]]:
    """A page's steps in order: ("file", name, body lines) for a block marked ``file=NAME``, and
    ("run", command, expected output lines) for each ``$`` line of a session block."""
    found: list[tuple[str, str, list[str]]] = []
    for info, body in BLOCK.findall(page.read_text(encoding="utf-8")):
        lines = body.rstrip("\n").split("\n")
        name = next((word.removeprefix("file=") for word in info.split() if word.startswith("file=")), None)
        if name is not None:
            found.append(("file", name, lines))
        elif lines and lines[0].startswith("$ "):
            for line in lines:
                if line.startswith("$ "):
                    found.append(("run", line[2:], []))
                else:
                    found[-1][2].append(line)
    return found


class Transcript:
    """Runs a page's sessions in one folder, binding the page's ids to the real ones."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.real: dict[str, str] = {}  # page id -> real id
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNJOURNAL_")}
        self.env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                         "RUNJOURNAL_ACTOR": "alice", **(env or {})})
        for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TERM"):
            self.env.pop(name, None)

    def translated(self, command: str) -> str:
        """The command with each id (or start of one) of the page replaced by the real one's."""
        def real(match: re.Match[str]) -> str:
            token = match.group(0)
            page_id = next((p for p in self.real if p.startswith(token)), None)
            return self.real[page_id][: len(token)] if page_id else token

        return ID_START.sub(real, command)

    def run(self, command: str, expected: list[str]) -> None:
        """Run one command; its output must match ``expected`` (see the module docstring)."""
        fails = command.endswith("# fails")
        command = self.translated(command.removesuffix("# fails").rstrip())
        done = subprocess.run(["bash", "-c", command], cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == (1 if fails else 0), f"$ {command}\n{done.stdout}{done.stderr}"
        got = (done.stdout + done.stderr).rstrip("\n").split("\n") if (done.stdout + done.stderr).strip() else []
        self._compare(command, expected, got)

    def _compare(self, command: str, expected: list[str], got: list[str]) -> None:
        at = 0
        for i, want in enumerate(expected):
            if want == "...":
                rest = expected[i + 1:]
                if not rest:
                    return
                while at < len(got) and not self._same(rest[0], got[at], bind=False):
                    at += 1
                continue
            assert at < len(got), f"$ {command}\nmissing line {want!r}\ngot:\n" + "\n".join(got)
            assert self._same(want, got[at], bind=True), f"$ {command}\nwanted {want!r}\ngot    {got[at]!r}\n" + \
                "\n".join(got)
            at += 1
        assert at == len(got), f"$ {command}\nmore output than the page shows:\n" + "\n".join(got[at:])

    def _same(self, want: str, got: str, *, bind: bool) -> bool:
        want, got = _plain(want), _plain(got)
        page_ids, real_ids = UUID.findall(want), UUID.findall(got)
        if len(page_ids) != len(real_ids):
            return False
        for page_id, real_id in zip(page_ids, real_ids, strict=True):
            if self.real.get(page_id, real_id) != real_id:
                return False
        if not re.fullmatch(_pattern(want), got):
            return False
        if bind:
            for page_id, real_id in zip(page_ids, real_ids, strict=True):
                self.real.setdefault(page_id, real_id)
        return True


def _plain(line: str) -> str:
    """A line as compared: table rules and padding as one space, worker names as one name."""
    return AGE.sub("N", WORKER.sub("worker W", BOX.sub(" ", line))).strip()


def _pattern(want: str) -> str:
    """A regular expression for one line of a page: its ids and times stand for any id and time."""
    parts = re.split(f"({UUID.pattern}|{TIME.pattern})", want)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(UUID.pattern if UUID.fullmatch(part) else f"(?:{TIME.pattern})")
        elif i == len(parts) - 1 and part.endswith("…"):
            out.append(re.escape(part[:-1]) + ".*")
        else:
            out.append(re.escape(part))
    return "".join(out)


def run_page(page: Path, folder: Path, env: dict[str, str] | None = None) -> Transcript:
    """Run every session of ``page`` in ``folder``; returns the transcript (its id bindings)."""
    transcript = Transcript(folder, env)
    for kind, what, lines in steps(page):
        if kind == "file":  # written at its place in the story, as a reader would
            (folder / what).write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            transcript.run(what, lines)
    return transcript


__all__ = ["Transcript", "run_page", "steps"]
