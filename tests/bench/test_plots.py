"""bench/plots.py: every bench's plot draws from its committed results JSON (bench/results/NAME.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.plots import PLOTS, RESULTS_DIR, draw

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bench", sorted(PLOTS))
def test_each_plot_draws_a_png_from_the_committed_results(bench: str, tmp_path: Path) -> None:
    doc = json.loads((RESULTS_DIR / f"{bench}.json").read_text(encoding="utf-8"))
    png = draw(bench, doc, out_dir=tmp_path)
    assert png == tmp_path / f"{bench}.png"
    data = png.read_bytes()
    assert len(data) > len(PNG_MAGIC)
    assert data.startswith(PNG_MAGIC)


@pytest.mark.parametrize(("bench", "doc"), [
    ("chaos", {"bench": "chaos"}),  # a bench without a plot
    ("no_such_bench", {}),
    ("postgres", {"bench": "postgres", "cases": []}),  # a plot with nothing to draw: no server answered
])
def test_draw_returns_none_without_a_plot(bench: str, doc: dict, tmp_path: Path) -> None:
    assert draw(bench, doc, out_dir=tmp_path) is None
    assert not list(tmp_path.iterdir())
