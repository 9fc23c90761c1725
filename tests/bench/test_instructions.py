"""bench/instructions.py: instructions per run from two callgrind counts; skipped with a reason without valgrind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import instructions


def test_the_per_run_figure_is_the_difference_of_two_counts_over_the_runs(monkeypatch, tmp_path: Path) -> None:
    counts = {"0": 1_000_000, "200": 401_000_000}
    seen: list[list[str]] = []
    real_run = subprocess.run

    def callgrind(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if cmd[0] != "valgrind":  # the machine facts the results record
            return real_run(cmd, **kwargs)
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", f"==1== Collected : {counts[cmd[-1]]}\n")

    monkeypatch.setattr(instructions.shutil, "which", lambda _: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions.subprocess, "run", callgrind)
    out = tmp_path / "instructions.json"

    figures = instructions.main(["--runs", "200", "--out", str(out)])

    assert figures is not None and figures["instructions_per_run"] == 2_000_000
    assert figures["instructions_per_event"] == 400_000
    assert [c[0] for c in seen] == ["valgrind", "valgrind"] and [c[-1] for c in seen] == ["0", "200"]
    assert json.loads(out.read_text())["instructions_per_run"] == 2_000_000


def test_a_failed_callgrind_run_is_an_error_naming_it(monkeypatch) -> None:
    monkeypatch.setattr(instructions.subprocess, "run",
                        lambda cmd, **_: subprocess.CompletedProcess(cmd, 1, "", "valgrind: no such tool"))
    with pytest.raises(RuntimeError, match="callgrind run of 0 runs failed .exit 1.: valgrind: no such tool"):
        instructions.instructions(0)


def test_without_valgrind_it_says_so_and_writes_nothing(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda _: None)
    out = tmp_path / "instructions.json"
    assert instructions.main(["--out", str(out)]) is None
    assert "valgrind is not installed" in capsys.readouterr().out
    assert not out.exists()


def test_the_child_drives_the_harness_to_idle() -> None:
    assert instructions.main(["--child", "5"]) is None  # drives 5 runs through the harness and returns
