"""A run's (or a thread's) history as one self-contained HTML page: no network, no CDN.

Each run is a lane; the time between two events is a span coloured by the
state the run was in; every event is a marker whose data shows on hover
(title) and on click (the details panel). Approvals show their decision and
who made it; leases show the worker and epoch.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime

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


def _lane(run_id: str, events: Sequence[RecordedEvent], start: datetime, total: float) -> str:
    def at(t: datetime) -> float:
        return 100.0 * (t - start).total_seconds() / total if total > 0 else 0.0

    states = states_after(events)
    agent = next((str(e.data.get("agent_id")) for e in events if e.type == "Created"), "")
    label = f"{html.escape(run_id)} {html.escape(agent)} · {html.escape(states[-1] if states else '')}"
    parent, origin = _origin(events)
    parts = [f'<div class="lane" data-run="{html.escape(run_id)}" data-parent="{html.escape(parent)}">'
             f'<div class="name">{label}{origin}</div><div class="track">']
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
</style></head><body>
<h1>{title}</h1>
<div class="legend">{legend}</div>
<p>{start} &rarr; {end} ({seconds:.3f} s, {count} events). Click an event for its data.</p>
{lanes}
<div id="details">(no event selected)</div>
<script>
document.querySelectorAll('.event').forEach(function (el) {{
  el.addEventListener('click', function () {{
    var data = JSON.parse(el.getAttribute('data-event'));
    document.getElementById('details').textContent = JSON.stringify(data, null, 2);
  }});
}});
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
        seconds=total, count=len(every), lanes=lanes,
    )
