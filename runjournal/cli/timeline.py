"""A run's (or a thread's) history as one self-contained HTML page: no network, no CDN.

Each run is a lane; the time between two events is a span coloured by the
state the run was in (a run that ended is not drawn past its end); every event
is a marker whose data shows on hover (title) and on click (the details
panel). Approvals show their decision and who made it; leases show the worker
and epoch. A time axis runs along the top, each lane says how long its run
took and where a retry or fork came from, a run list above the lanes filters
them by text and final state, and the zoom buttons widen the tracks.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from ..app.models import RecordedEvent
from ..domain.transitions import RunState, allowed_targets

COLOURS = {
    "created": "#9aa5b1", "queued": "#5b8def", "claimed": "#7f6df2", "running": "#1fb8cd",
    "waiting_for_approval": "#f2b134", "resuming": "#c47ff2", "cancelling": "#e86fa5",
    "completed": "#3bb273", "failed": "#e15554", "cancelled": "#a05195",
}


def states_after(events: Sequence[RecordedEvent]) -> list[str]:
    """The state after each event, read off the transition table."""
    states: list[str] = []
    state = ""
    for e in events:
        if e.type == "Created":
            state = "created"
        else:
            targets = allowed_targets(state, e.type)
            target = e.data.get("to_state")
            state = str(target) if target else str(next(iter(targets))) if targets else state
        states.append(state)
    return states


def _label(e: RecordedEvent) -> str:
    d = e.data
    if e.type == "ApprovalResolved":
        return f"{e.type}: {d.get('decision')} by {e.actor}"
    if e.type == "ApprovalRequested":
        return f"{e.type}: {d.get('tool_name')} {json.dumps(d.get('tool_args'))}"
    if "worker_id" in d:
        return f"{e.type}: {d['worker_id']} epoch {d.get('epoch')}"
    return f"{e.type} by {e.actor}"


def _origin(events: Sequence[RecordedEvent]) -> tuple[str, str]:
    """(the parent run, a line saying how this run came from it) read off its Created; ("", "") for a root."""
    created = next((e for e in events if e.type == "Created"), None)
    parent = str(created.data.get("parent_run_id") or "") if created is not None else ""
    if not parent or created is None:
        return "", ""
    how = "fork" if created.data.get("fork") is not None else "retry"
    return parent, (f'<div class="origin">{how} of {html.escape(parent)} at '
                    f'v{html.escape(str(created.data.get("parent_version")))}</div>')


def _seconds(seconds: float) -> str:
    """A duration for people: 0.125 s, 12.4 s, 3 min 20 s, 2 h 5 min."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _axis(start: datetime, total: float, ticks: int = 5) -> str:
    """Tick marks along the top of the tracks: the time at each, and how long after the start."""
    marks = []
    for i in range(ticks + 1):
        at = 100.0 * i / ticks
        moment = start + timedelta(seconds=total * i / ticks)
        label = f"{moment.strftime('%H:%M:%S')} (+{_seconds(total * i / ticks)})" if i else moment.strftime("%H:%M:%S")
        marks.append(f'<div class="tick" style="left:{at:.3f}%">{html.escape(label)}</div>')
    return f'<div class="axis"><div class="name"></div><div class="ticks">{"".join(marks)}</div></div>'


def _run_list(runs: dict[str, list[RecordedEvent]]) -> str:
    """A table of the page's runs (its filters show or hide lanes and rows alike)."""
    rows = []
    for run_id, events in runs.items():
        states = states_after(events)
        agent = next((str(e.data.get("agent_id")) for e in events if e.type == "Created"), "")
        took = (events[-1].timestamp - events[0].timestamp).total_seconds() if events else 0.0
        final = states[-1] if states else ""
        rows.append(f'<tr class="listed" data-run="{html.escape(run_id)}" data-final="{html.escape(final)}" '
                    f'data-agent="{html.escape(agent)}"><td>{html.escape(run_id)}</td><td>{html.escape(agent)}</td>'
                    f'<td>{html.escape(final)}</td><td>{len(events)}</td><td>{_seconds(took)}</td></tr>')
    finals = sorted({states_after(e)[-1] for e in runs.values() if e})
    options = "".join(f'<option value="{html.escape(f)}">{html.escape(f)}</option>' for f in finals)
    return (f'<div id="filters">filter: <input id="filter-text" placeholder="run id or agent"> '
            f'<select id="filter-state"><option value="">any state</option>{options}</select> '
            f'zoom: <button id="zoom-in" type="button">+</button> <button id="zoom-out" type="button">&minus;</button> '
            f'<button id="zoom-reset" type="button">reset</button> <span id="zoom-level">1x</span></div>'
            f'<table id="runlist"><tr><th>run</th><th>agent</th><th>state</th><th>events</th><th>took</th></tr>'
            f'{"".join(rows)}</table>')


def _lane(run_id: str, events: Sequence[RecordedEvent], start: datetime, total: float) -> str:
    def at(t: datetime) -> float:
        return 100.0 * (t - start).total_seconds() / total if total > 0 else 0.0

    states = states_after(events)
    agent = next((str(e.data.get("agent_id")) for e in events if e.type == "Created"), "")
    label = f"{html.escape(run_id)} {html.escape(agent)} · {html.escape(states[-1] if states else '')}"
    parent, origin = _origin(events)
    final = html.escape(states[-1] if states else "")
    took = (events[-1].timestamp - events[0].timestamp).total_seconds() if events else 0.0
    parts = [f'<div class="lane" data-run="{html.escape(run_id)}" data-parent="{html.escape(parent)}" '
             f'data-final="{final}" data-agent="{html.escape(agent)}">'
             f'<div class="name">{label}{origin}<div class="took">{_seconds(took)}</div></div><div class="track">']
    for i, e in enumerate(events):
        left = at(e.timestamp)
        # A run in a state until its next event; a run that ended is a mark where it ended (not drawn on to
        # the end of the page); a run still going is drawn to the end of what the page shows.
        last_is_terminal = i + 1 == len(events) and RunState(states[i]).is_terminal
        right = at(events[i + 1].timestamp) if i + 1 < len(events) else left if last_is_terminal else 100.0
        width = max(right - left, 0.4)
        left = min(left, 100.0 - width)  # the last span stays inside the track
        parts.append(
            f'<div class="span state-{states[i]}" data-state="{states[i]}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%;background:{COLOURS.get(states[i], "#ccc")}" '
            f'title="{html.escape(states[i])}"></div>'
        )
    previous = -1.0
    for e in events:
        # Events saved together share a timestamp: nudge each one clear of the one before,
        # so every marker can be hovered and clicked.
        position = min(max(at(e.timestamp), previous + 0.8), 99.7)
        previous = position
        payload = html.escape(json.dumps(e.model_dump(mode="json"), sort_keys=True))
        parts.append(
            f'<div class="event kind-{e.type}" style="left:{position:.3f}%" data-event="{payload}" '
            f'title="v{e.version} {html.escape(_label(e))}"></div>'
        )
    parts.append("</div></div>")
    return "".join(parts)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:24px;color:#1f2933}}
h1{{font-size:18px}} .lane{{display:flex;align-items:center;margin:10px 0}}
.name{{width:260px;font-family:monospace;font-size:12px}} .origin{{color:#52606d;font-size:11px}} .track{{position:relative;flex:1;height:26px;background:#f0f4f8;border-radius:4px}}
.span{{position:absolute;top:4px;height:18px;border-radius:3px;opacity:.85}}
.event{{position:absolute;top:0;width:3px;height:26px;background:#1f2933;cursor:pointer;margin-left:-1px}}
.event:hover{{background:#e15554}} #details{{white-space:pre-wrap;font-family:monospace;background:#f7f7f7;padding:12px;margin-top:16px;min-height:40px}}
.legend span{{display:inline-block;margin-right:10px;padding:2px 6px;border-radius:3px;color:#fff;font-size:12px}}
.took{{color:#52606d;font-size:11px}} #lanes{{overflow-x:auto}} #lanes-inner{{min-width:100%}}
.axis{{display:flex;height:18px;margin-top:8px}} .ticks{{position:relative;flex:1;border-bottom:1px solid #9aa5b1}}
.tick{{position:absolute;bottom:0;font-size:11px;color:#52606d;border-left:1px solid #9aa5b1;padding-left:2px;white-space:nowrap}}
#runlist{{border-collapse:collapse;margin:10px 0;font-size:12px}} #runlist td,#runlist th{{padding:2px 8px;text-align:left}}
#runlist td:first-child{{font-family:monospace}} #filters{{margin-top:12px}}
</style></head><body>
<h1>{title}</h1>
<div class="legend">{legend}</div>
<p>{start} &rarr; {end} ({seconds:.3f} s, {count} events). Click an event for its data.</p>
{run_list}
<div id="lanes"><div id="lanes-inner">
{axis}
{lanes}
</div></div>
<div id="details">(no event selected)</div>
<script>
document.querySelectorAll('.event').forEach(function (el) {{
  el.addEventListener('click', function () {{
    var data = JSON.parse(el.getAttribute('data-event'));
    document.getElementById('details').textContent = JSON.stringify(data, null, 2);
  }});
}});
var zoom = 1;
function setZoom(z) {{
  zoom = Math.min(Math.max(z, 1), 64);
  document.getElementById('lanes-inner').style.width = (100 * zoom) + '%';
  document.getElementById('zoom-level').textContent = zoom + 'x';
}}
document.getElementById('zoom-in').addEventListener('click', function () {{ setZoom(zoom * 2); }});
document.getElementById('zoom-out').addEventListener('click', function () {{ setZoom(zoom / 2); }});
document.getElementById('zoom-reset').addEventListener('click', function () {{ setZoom(1); }});
function applyFilters() {{
  var text = document.getElementById('filter-text').value.toLowerCase();
  var state = document.getElementById('filter-state').value;
  document.querySelectorAll('.lane, .listed').forEach(function (el) {{
    var hit = (!text || el.getAttribute('data-run').toLowerCase().indexOf(text) >= 0
               || el.getAttribute('data-agent').toLowerCase().indexOf(text) >= 0)
              && (!state || el.getAttribute('data-final') === state);
    el.style.display = hit ? '' : 'none';
  }});
}}
document.getElementById('filter-text').addEventListener('input', applyFilters);
document.getElementById('filter-state').addEventListener('change', applyFilters);
</script>
</body></html>
"""


def render_timeline(title: str, runs: dict[str, list[RecordedEvent]]) -> str:
    """The page for one or more runs' histories."""
    every = [e for events in runs.values() for e in events]
    if not every:
        raise ValueError("nothing to draw: no events")
    start = min(e.timestamp for e in every)
    end = max(e.timestamp for e in every)
    total = (end - start).total_seconds()
    lanes = "\n".join(_lane(run_id, events, start, total) for run_id, events in runs.items())
    legend = "".join(f'<span style="background:{c}">{s}</span>' for s, c in COLOURS.items())
    return PAGE.format(
        title=html.escape(title), legend=legend, start=start.isoformat(timespec="seconds"), end=end.isoformat(timespec="seconds"),
        seconds=total, count=len(every), lanes=lanes, axis=_axis(start, total), run_list=_run_list(runs),
    )
