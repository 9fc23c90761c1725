"""Plots of the benches' results: one PNG per bench under docs/images/, drawn from its results JSON.

``write_results`` (bench/common.py) calls ``draw`` right after it writes a bench's JSON, with the same
dict; ``python -m bench.plots [NAME ...]`` redraws the plots from bench/results/*.json (all of them, or
the named benches). Each plot function takes that dict and returns a matplotlib figure, or None when the
dict lacks the figures it plots (e.g. the PostgreSQL bench with no cases).

matplotlib is optional (``pip install 'runjournal[bench]'``, also in the test extra) and imported only
when a plot is drawn, with the non-interactive Agg backend: without it the benches still run, and
``draw`` says the plot was skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

IMAGES_DIR = Path(__file__).resolve().parent.parent / "docs" / "images"
RESULTS_DIR = Path(__file__).resolve().parent / "results"  # the same folder as bench.common.RESULTS_DIR
INSTALL_HINT = "pip install 'runjournal[bench]'"

EARLY_STEP = 10  # bench/long_runs.py's EARLY_AT: the early latencies are those just after this step
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}  # PRAGMA synchronous values
BASELINE_COLOR = "0.45"
AIM_COLOR = "tab:red"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _subplots(ncols: int = 1, width: float = 8.0, height: float = 4.8) -> tuple[Figure, list[Axes]]:
    """A figure with ``ncols`` axes side by side (pyplot is imported by ``draw`` first, on Agg)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def _thousands(ax: Axes, axis: str = "y") -> None:
    """Tick labels with thousands separators on ``axis``."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _hline(ax: Axes, y: float, label: str, *, dashed: bool) -> None:
    """A horizontal reference line across ``ax``: dashed red for an aim or floor, solid grey for a baseline."""
    ax.axhline(y, color=AIM_COLOR if dashed else BASELINE_COLOR, linestyle="--" if dashed else "-",
               linewidth=1.4, label=label, zorder=3)


def _finish(fig: Figure, doc: Mapping[str, Any], title: str) -> Figure:
    """Title, a footnote naming the run (date, Python, SQLite, CPUs), tight layout."""
    fig.suptitle(title, fontsize=12)
    when = str(doc.get("timestamp", ""))[:10]
    parts = [when, f"Python {doc['python_version']}" if "python_version" in doc else "",
             f"SQLite {doc['sqlite_version']}" if "sqlite_version" in doc else "",
             f"{doc['cpu_count']} CPUs" if doc.get("cpu_count") else ""]
    fig.text(0.99, 0.01, " · ".join(p for p in parts if p), ha="right", va="bottom", fontsize=7.5,
             color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _slots_cases(group: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """``{"slots_4": {...}}`` as ``{4: {...}}``, by slot count."""
    out = {}
    for key, case in group.items():
        if key.startswith("slots_") and isinstance(case, Mapping) and "runs_per_s" in case:
            out[int(key.removeprefix("slots_"))] = dict(case)
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------
# One plot per bench
# ---------------------------------------------------------------------------------------------


def plot_harness(doc: Mapping[str, Any]) -> Figure | None:
    """Runs/s per case (SQLite and memory://, by slots) as grouped bars; raw sqlite3 commits/s; the floor."""
    sqlite, memory = _slots_cases(doc.get("sqlite", {})), _slots_cases(doc.get("memory", {}))
    slots = sorted(set(sqlite) | set(memory))
    if not slots:
        return None
    sync = next((c.get("synchronous") for c in sqlite.values() if c.get("synchronous") is not None), None)
    sqlite_label = f"SQLite {SYNCHRONOUS.get(sync, sync)}" if sync is not None else "SQLite"
    fig, (ax,) = _subplots()
    width = 0.38
    for offset, (label, group, color) in zip((-width / 2, width / 2), (
            (sqlite_label, sqlite, "tab:blue"), ("memory://", memory, "tab:orange"))):
        xs = [i + offset for i, k in enumerate(slots) if k in group]
        ys = [group[k]["runs_per_s"] for k in slots if k in group]
        bars = ax.bar(xs, ys, width, label=label, color=color, zorder=2)
        ax.bar_label(bars, labels=[f"{y:,.0f}" for y in ys], padding=2, fontsize=8)
    raw = doc.get("raw_sqlite3", {}).get("commits_per_s")
    if raw:
        _hline(ax, raw, f"baseline: raw sqlite3, {raw:,.0f} durable commits/s", dashed=False)
    floors = doc.get("floors", {}).get("runs_per_s", {})
    floor = floors.get("floor")
    if floor:  # the floor is for one SQLite case: the one whose figure it measured
        at = next((k for k, c in sqlite.items() if c["runs_per_s"] == floors.get("measured")), None)
        where = f" ({sqlite_label}, {at} slots)" if at is not None else ""
        _hline(ax, floor, f"floor: {floor:,.0f} runs/s{where}", dashed=True)
    ax.set_xticks(range(len(slots)), [f"{k} slot{'s' if k != 1 else ''}" for k in slots])
    ax.set_xlabel("slots (runs a worker holds at once)")
    ax.set_ylabel("throughput (runs/s)")
    ax.set_ylim(0, max([raw or 0, floor or 0, *(c["runs_per_s"] for c in [*sqlite.values(), *memory.values()])])
                * 1.32)
    _thousands(ax)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(loc="upper left", fontsize=8.5, ncol=2)
    runs = doc.get("runs")
    repeat = doc.get("repeat")
    sub = ", ".join(p for p in (f"{runs:,} runs" if runs else "", f"fastest of {repeat}" if repeat else "") if p)
    return _finish(fig, doc, f"Harness: no-op runs per second{f' ({sub})' if sub else ''}")


def plot_postgres(doc: Mapping[str, Any]) -> Figure | None:
    """Runs/s for each worker count (bars), and rollbacks per run beside it."""
    cases = sorted((c for c in doc.get("cases") or [] if "runs_per_s" in c), key=lambda c: c["workers"])
    if not cases:
        return None  # skipped: no server answered
    fig, (left, right) = _subplots(2, width=9.5)
    labels = [str(c["workers"]) for c in cases]
    bars = left.bar(labels, [c["runs_per_s"] for c in cases], color="tab:blue", width=0.6, zorder=2)
    left.bar_label(bars, labels=[f"{c['runs_per_s']:,.0f}" for c in cases], padding=2, fontsize=8)
    one = next((c for c in cases if c["workers"] == 1), None)
    tops = [c["runs_per_s"] for c in cases]
    if one:
        _hline(left, one["runs_per_s"], f"baseline: 1 worker, {one['runs_per_s']:,.0f} runs/s", dashed=False)
        scaling = doc.get("floors", {}).get("scaling", {})
        if scaling.get("floor"):
            target = scaling["floor"] * one["runs_per_s"]
            tops.append(target)
            _hline(left, target, f"floor: {scaling['floor']:g}x 1 worker at {scaling.get('workers', '?')} workers",
                   dashed=True)
    left.set_ylim(0, max(tops) * 1.2)
    left.set_xlabel(f"worker processes ({cases[0].get('slots', '?')} slots each)")
    left.set_ylabel("throughput (runs/s)")
    left.set_title("runs drained per second", fontsize=10)
    _thousands(left)
    left.grid(axis="y", alpha=0.3, zorder=0)
    left.legend(loc="upper right", fontsize=8)

    rb = [c.get("rollbacks_per_run", 0.0) for c in cases]
    bars = right.bar(labels, rb, color="tab:purple", width=0.6, zorder=2)
    right.bar_label(bars, labels=[f"{v:.3g}" for v in rb], padding=2, fontsize=8)
    aim = doc.get("floors", {}).get("rollbacks_per_run", {}).get("floor")
    if aim:
        _hline(right, aim, f"aim: below {aim:g} rollbacks per run", dashed=True)
        right.legend(loc="upper left", fontsize=8)
    right.set_ylim(0, max([*rb, aim or 0, 0.01]) * 1.25)
    right.set_xlabel("worker processes")
    right.set_ylabel("rolled-back transactions per run")
    right.set_title("rollbacks (pg_stat_database)", fontsize=10)
    right.grid(axis="y", alpha=0.3, zorder=0)
    runs = cases[0].get("runs")
    return _finish(fig, doc, f"PostgreSQL: {f'{runs:,} ' if runs else ''}no-op runs, several workers")


def plot_projections(doc: Mapping[str, Any]) -> Figure | None:
    """Events/s of a plain read and of the views' catch-up, per log size; the aim dashed."""
    cases = sorted(((int(k), c) for k, c in (doc.get("cases") or {}).items()
                    if "read" in c and "catch_up" in c), key=lambda kc: kc[0])
    if not cases:
        return None
    sizes = [n for n, _ in cases]
    fig, (ax,) = _subplots()
    for key, label, color, marker in (("read", "read the log (no views)", "tab:gray", "s"),
                                      ("catch_up", "catch every view up", "tab:blue", "o")):
        ys = [c[key]["events_per_s"] for _, c in cases]
        ax.plot(sizes, ys, marker=marker, color=color, label=label, linewidth=1.8, markersize=7, zorder=3)
        for x, y in zip(sizes, ys):
            ax.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    aim = doc.get("aim_events_per_s")
    if aim:
        _hline(ax, aim, f"aim: {aim:,.0f} events/s (catch-up)", dashed=True)
    if len(sizes) > 1 and max(sizes) / min(sizes) >= 10:
        ax.set_xscale("log")
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
    else:
        pad = (max(sizes) - min(sizes)) * 0.15 or max(sizes) * 0.2
        ax.set_xlim(min(sizes) - pad, max(sizes) + pad)
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("events in the log" + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("throughput (events/s)")
    tops = [c[k]["events_per_s"] for _, c in cases for k in ("read", "catch_up")]
    ax.set_ylim(0, max([*tops, aim or 0]) * 1.18)
    _thousands(ax)
    ax.grid(alpha=0.3, zorder=0)
    ax.legend(loc="lower left", fontsize=8.5)
    return _finish(fig, doc, "Followed views: events per second on a growing log")


def plot_long_runs(doc: Mapping[str, Any]) -> Figure | None:
    """Median record_step latency early (after step 10) and late (before the last step), per store."""
    stores = {k: v for k, v in doc.items() if isinstance(v, Mapping) and "early_median_us" in v}
    if not stores:
        return None
    fig, axes = _subplots(len(stores), width=4.2 * len(stores) + 0.8)
    names = {"sqlite": "SQLite FULL", "memory": "memory://"}
    aim = doc.get("aim_late_over_early")
    for ax, (store, r) in zip(axes, stores.items()):
        labels = [f"after step {EARLY_STEP}", f"before step {r.get('steps', '?'):,}"]
        ys = [r["early_median_us"], r["late_median_us"]]
        bars = ax.bar(labels, ys, color=["tab:gray", "tab:blue"], width=0.55, zorder=2)
        ax.bar_label(bars, labels=[f"{y:,.1f} µs" for y in ys], padding=2, fontsize=8.5)
        if aim:
            _hline(ax, aim * r["early_median_us"], f"aim: late within {aim:g}x early", dashed=True)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylim(0, max([*ys, (aim or 0) * r["early_median_us"]]) * 1.25)
        ratio = r.get("late_over_early")
        ax.set_title(f"{names.get(store, store)}" + (f": late / early = {ratio:g}" if ratio is not None else ""),
                     fontsize=10)
        ax.set_ylabel(f"record_step latency, median of {r.get('sample', '?')} calls (µs)")
        ax.set_xlabel("when in the run")
        ax.grid(axis="y", alpha=0.3, zorder=0)
    return _finish(fig, doc, "Long runs: record_step early and late in one run")


CLI_LABELS = {
    "python -c pass": "python -c pass\n(baseline)",
    "--help": "runjournal\n--help",
    "status": "runjournal\nstatus RUN",
    "history": "runjournal\nhistory RUN",
    "status's libraries": "status's libraries,\nimported alone",
}


def plot_cli(doc: Mapping[str, Any]) -> Figure | None:
    """Median whole-process ms per command, beside ``python -c pass``; every sample as a dot; the aim."""
    commands = {k: v for k, v in (doc.get("commands") or {}).items() if "median_ms" in v}
    if not commands:
        return None
    baseline = "python -c pass" if "python -c pass" in commands else next(iter(commands))
    aimed = set(doc.get("aim_commands") or ())
    fig, (ax,) = _subplots(width=8.5)
    names = list(commands)
    colors = [BASELINE_COLOR if n == baseline else "tab:blue" if n in aimed else "tab:cyan" for n in names]
    medians = [commands[n]["median_ms"] for n in names]
    bars = ax.bar(range(len(names)), medians, color=colors, width=0.6, zorder=2)
    ax.bar_label(bars, labels=[f"{m:,.0f} ms" for m in medians], padding=2, fontsize=8.5)
    for i, n in enumerate(names):
        samples = commands[n].get("samples_ms") or []
        ax.scatter([i + 0.18] * len(samples), samples, s=9, color="black", alpha=0.35, zorder=4,
                   label="each sample" if i == 0 and samples else None)
    aim = doc.get("aim_ms")
    if aim:
        which = " and ".join(n for n in names if n in aimed)
        _hline(ax, aim, f"aim: {aim:,.0f} ms{f' ({which})' if which else ''}", dashed=True)
    ax.set_xticks(range(len(names)), [CLI_LABELS.get(n, n) for n in names], fontsize=8.5)
    ax.set_ylabel("whole process, wall clock (ms)")
    tops = [max(commands[n].get("samples_ms") or [commands[n]["median_ms"]]) for n in names]
    ax.set_ylim(0, max([*tops, aim or 0]) * 1.15)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(loc="upper left", fontsize=8.5)
    repeat = doc.get("repeat")
    return _finish(fig, doc, f"CLI start-up: median of {repeat} whole processes per command" if repeat
                   else "CLI start-up: median whole-process time per command")


def plot_append(doc: Mapping[str, Any]) -> Figure | None:
    """Events/s of the journal against raw sqlite3 doing the same inserts; the aim (within 3x its time)."""
    raw, journal = doc.get("baseline") or {}, doc.get("journal") or {}
    if "events_per_s" not in raw or "events_per_s" not in journal:
        return None
    fig, (ax,) = _subplots(width=7.5)
    ys = [raw["events_per_s"], journal["events_per_s"]]
    bars = ax.bar(["raw sqlite3 inserts\n(baseline)", "the journal\nsubmit, claim, start, complete"], ys,
                  color=[BASELINE_COLOR, "tab:blue"], width=0.55, zorder=2)
    ax.bar_label(bars, labels=[f"{y:,.0f} events/s" for y in ys], padding=2, fontsize=8.5)
    aim = doc.get("aim")
    if aim:
        _hline(ax, raw["events_per_s"] / aim, f"aim: within {aim:g}x the baseline's time "
               f"({raw['events_per_s'] / aim:,.0f} events/s)", dashed=True)
        ax.legend(loc="upper right", fontsize=8.5)
    ax.set_ylabel("throughput (events/s)")
    ax.set_ylim(0, max(ys) * 1.22)
    _thousands(ax)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    runs, events = doc.get("runs"), doc.get("events")
    if runs and events:
        ax.set_title(f"{runs:,} runs, {events:,} events, each side on a fresh file", fontsize=10)
    return _finish(fig, doc, "Append: the journal against raw sqlite3 (SQLite, cold)")


def plot_recovery(doc: Mapping[str, Any]) -> Figure | None:
    """recover() seconds behind a long log (A) and alone (B), with the aim; the views' catch-up events/s."""
    cases = doc.get("cases") or {}
    stores = [s for s in ("A", "B") if isinstance(cases.get(s), Mapping) and "recover" in cases[s]]
    if len(stores) < 2:
        return None
    fig, (left, right) = _subplots(2, width=10)

    def label(s: str) -> str:
        c = cases[s]
        return f"{s}: {c.get('completed', 0):,} completed\n+ {c.get('live', 0):,} live ({c.get('events', 0):,} events)"

    labels = [label(s) for s in stores]
    secs = [cases[s]["recover"]["seconds"] for s in stores]
    bars = left.bar(labels, secs, color=["tab:blue", BASELINE_COLOR], width=0.55, zorder=2)
    left.bar_label(bars, labels=[f"{v:.2f} s" for v in secs], padding=2, fontsize=8.5)
    everything = list(secs)
    for i, s in enumerate(stores):
        tries = cases[s]["recover"].get("all_seconds") or []
        everything += tries
        left.scatter([i + 0.2] * len(tries), tries, s=12, color="black", alpha=0.45, zorder=4,
                     label=f"each of {len(tries)} attempts" if i == 0 and tries else None)
    aim = doc.get("aim_ratio")
    if aim:
        everything.append(aim * secs[1])
        _hline(left, aim * secs[1], f"aim: A within {aim:g}x B", dashed=True)
    left.set_ylim(0, max(everything) * 1.15)
    left.set_ylabel("recover() wall clock, fastest attempt (s)")
    left.set_title("recovery: the same live runs, with and without history", fontsize=10)
    left.grid(axis="y", alpha=0.3, zorder=0)
    left.legend(loc="upper right", fontsize=8)

    rates = [cases[s].get("catch_up", {}).get("events_per_s", 0.0) for s in stores]
    bars = right.bar(labels, rates, color=["tab:blue", BASELINE_COLOR], width=0.55, zorder=2)
    right.bar_label(bars, labels=[f"{v:,.0f}" for v in rates], padding=2, fontsize=8.5)
    right.set_ylim(0, max([*rates, 1.0]) * 1.18)
    right.set_ylabel("throughput (events/s)")
    right.set_title("views caught up once after building (not recovery)", fontsize=10)
    _thousands(right)
    right.grid(axis="y", alpha=0.3, zorder=0)
    return _finish(fig, doc, "Recovery at start-up against log length (SQLite)")


PLOTS: dict[str, Callable[[Mapping[str, Any]], Figure | None]] = {
    "harness": plot_harness,
    "postgres": plot_postgres,
    "projections": plot_projections,
    "long_runs": plot_long_runs,
    "cli": plot_cli,
    "append": plot_append,
    "recovery": plot_recovery,
}


def draw(bench: str, doc: Mapping[str, Any], out_dir: Path = IMAGES_DIR) -> Path | None:
    """Draw ``bench``'s plot from its results dict to ``out_dir/BENCH.png``; returns the path.

    None when the bench has no plot, when the dict lacks its figures, or when matplotlib is not installed
    (then one line says so).
    """
    plot = PLOTS.get(bench)
    if plot is None:
        return None
    try:
        import matplotlib
    except ImportError:
        print(f"plot for {bench} skipped: matplotlib is not installed ({INSTALL_HINT})")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot(doc)
    if fig is None:
        return None
    out = Path(out_dir) / f"{bench}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=120)
    finally:
        plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Redraw the plots from bench/results/*.json (only the named benches when given); returns the PNGs."""
    wanted = set(sys.argv[1:] if argv is None else argv)
    drawn = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        bench = doc.get("bench", path.stem)
        if path.stem != bench or (wanted and bench not in wanted):
            continue  # e.g. chaos-postgres.json: a labelled run of a bench, not its own results
        png = draw(bench, doc)
        print(f"{path.name}: {f'plot written to {png}' if png else 'no plot'}")
        if png:
            drawn.append(png)
    return drawn


if __name__ == "__main__":
    main()
