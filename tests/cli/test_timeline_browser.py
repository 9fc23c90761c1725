"""`runjournal timeline --html` in a real headless browser: the rendered DOM, the click handler,
and no script errors in the console.

Needs Debian's `chromium` (`apt-get install chromium`). Without it these tests are skipped,
unless RUNJOURNAL_REQUIRE_BROWSER=1 (set by `./dev test` in CI, which installs chromium), in
which case they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from runjournal.adapters.clock import ManualClock

from runjournal import Journal

REQUIRE_BROWSER = os.environ.get("RUNJOURNAL_REQUIRE_BROWSER") == "1"
SKIP_BROWSER = (
    "browser tests skipped: chromium is not installed (install it with `apt-get install chromium`; "
    "`./dev test` does this in CI, where RUNJOURNAL_REQUIRE_BROWSER=1 makes its absence a failure)"
)
CLI = Path(sys.executable).parent / "runjournal"
TIMEOUT = 60  # seconds, for every subprocess
# Headless, and nothing that would reach for the network (this CI machine refuses connections).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
)
# Uncaught exceptions reach stderr as: ...:INFO:CONSOLE:7] "Uncaught ReferenceError: f is not
# defined", source: file:///.../page.html (7)
SCRIPT_ERROR = re.compile(r"Uncaught|SyntaxError|ReferenceError|TypeError")
THREAD = "t-browser"

# The state after each event, i.e. the data-state of each span, per run (all runs end terminal,
# so every event starts a span).
EXPECTED_STATES = {
    "completed": ["created", "queued", "claimed", "running", "running", "completed"],
    "approved": ["created", "queued", "claimed", "running", "waiting_for_approval", "resuming",
                 "claimed", "running", "completed"],
    "cancelled_running": ["created", "queued", "claimed", "running", "cancelling", "cancelled"],
    "failed": ["created", "queued", "claimed", "running", "failed"],
    "cancelled_queued": ["created", "queued", "cancelled"],
}


# ---------------------------------------------------------------------------------------------
# The journal: one thread, a run ending in each way, on a clock that moves a second per step
# ---------------------------------------------------------------------------------------------


@dataclass
class Store:
    url: str
    runs: dict[str, str]  # name in EXPECTED_STATES -> run id
    histories: dict[str, list[dict[str, Any]]]  # run id -> its events, as JSON


def build_journal(url: str) -> Store:
    clock = ManualClock()
    journal = Journal.open(url, clock=clock)
    runs: dict[str, str] = {}

    def tick() -> None:
        clock.advance(1.5)

    def submit(name: str, message: str) -> str:
        run = journal.submit(agent_id="echo", input={"message": message}, thread_id=THREAD, actor="tester")
        runs[name] = run.run_id
        tick()
        return run.run_id

    def claim() -> Any:
        c = journal.claim_next(worker_id="w1", start=True)
        assert c is not None
        tick()
        return c

    try:
        submit("completed", "hello")
        c = claim()
        journal.record_step(c, "message", {"text": "hello back"})
        tick()
        journal.complete(c, output={"text": "hello back"})
        tick()

        submit("approved", "deploy to prod")
        c = claim()
        approval_id = journal.request_approval(c, tool_name="deploy", tool_args={"env": "prod"})
        tick()
        journal.resolve_approval(approval_id, decision="approve", actor="alice")
        tick()
        c = claim()
        journal.complete(c, output={"deployed": True})
        tick()

        run_id = submit("cancelled_running", "a long report")
        c = claim()
        journal.cancel(run_id, reason="not needed", actor="bob")
        tick()
        journal.finish_cancel(c)
        tick()

        submit("failed", "divide by zero")
        c = claim()
        journal.fail(c, error="ZeroDivisionError: division by zero")
        tick()

        run_id = submit("cancelled_queued", "never mind")
        journal.cancel(run_id, reason="changed my mind", actor="tester")

        for name, run_id in runs.items():
            assert journal.get_run(run_id).state == EXPECTED_STATES[name][-1], name
        histories = {run_id: [e.model_dump(mode="json") for e in journal.history(run_id)] for run_id in runs.values()}
        return Store(url=url, runs=runs, histories=histories)
    finally:
        journal.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_journal(f"sqlite:///{tmp_path_factory.mktemp('timeline') / 'journal.db'}")


def runjournal(url: str, *args: str, cwd: Path | None = None) -> str:
    """Run the installed `runjournal` CLI on the store; its stdout."""
    proc = subprocess.run(
        [str(CLI), "--store", url, *args], capture_output=True, text=True, timeout=TIMEOUT,
        stdin=subprocess.DEVNULL, cwd=cwd or tempfile.gettempdir(),
    )
    assert proc.returncode == 0, f"runjournal {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# ---------------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if REQUIRE_BROWSER:
            pytest.fail("RUNJOURNAL_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)")
        pytest.skip(SKIP_BROWSER)
    return path


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> list[Node]:
        return [self, *(n for c in self.children for n in c.walk())]

    def text_content(self) -> str:
        return "".join(self.text) + "".join(c.text_content() for c in self.children)

    def select(self, cls: str) -> list[Node]:
        return [n for n in self.walk() if cls in n.classes]

    def by_id(self, id_: str) -> Node:
        (node,) = [n for n in self.walk() if n.attrs.get("id") == id_]
        return node


class DomParser(HTMLParser):
    """Chromium's serialised DOM as a tree of Nodes (the serialisation closes every element)."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                      "track", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)


@dataclass
class Rendered:
    dom: Node
    console_errors: list[str]


def load(chromium: str, page: Path) -> Rendered:
    """Load the page in headless chromium: the DOM after its scripts ran, and its script errors."""
    with tempfile.TemporaryDirectory(prefix="rj-chromium-") as profile:
        proc = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
        )
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    parser = DomParser()
    parser.feed(proc.stdout)
    parser.close()
    errors = [line for line in proc.stderr.splitlines() if SCRIPT_ERROR.search(line) and page.as_uri() in line]
    return Rendered(parser.root, errors)


def write_timeline(store: Store, out: Path, *args: str) -> Path:
    stdout = runjournal(store.url, "timeline", *args, "--html", str(out))
    assert out.is_file(), stdout
    return out


def with_click(page: Path, selector: str) -> Path:
    """A copy of the page that clicks the first element matching ``selector`` once it has loaded."""
    script = (
        "<script>document.querySelector(%s).dispatchEvent(new MouseEvent('click', {bubbles: true}));</script>"
        % json.dumps(selector)
    )
    html = page.read_text(encoding="utf-8")
    assert html.count("</body>") == 1
    copy = page.with_name(f"{page.stem}-click{page.suffix}")
    copy.write_text(html.replace("</body>", script + "</body>"), encoding="utf-8")
    return copy


def lane_checks(lane: Node, history: list[dict[str, Any]], states: list[str]) -> None:
    events = lane.select("event")
    assert len(events) == len(history)
    assert [json.loads(e.attrs["data-event"]) for e in events] == history
    assert all(e.attrs.get("title", "").startswith(f"v{h['version']} ") for e, h in zip(events, history))
    spans = lane.select("span")
    assert [s.attrs["data-state"] for s in spans] == states
    assert all("width:" in s.attrs["style"] and "background:#" in s.attrs["style"] for s in spans)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_a_run_page_renders_a_span_per_state_and_a_marker_per_event(chromium: str, store: Store,
                                                                    tmp_path: Path) -> None:
    run_id = store.runs["approved"]
    page = write_timeline(store, tmp_path / "run.html", run_id)

    rendered = load(chromium, page)

    assert rendered.console_errors == []
    dom = rendered.dom
    (lane,) = dom.select("lane")
    assert lane.attrs["data-run"] == run_id
    lane_checks(lane, store.histories[run_id], EXPECTED_STATES["approved"])
    legend = [s.text_content() for s in dom.select("legend")[0].walk() if s.tag == "span"]
    assert {"created", "waiting_for_approval", "completed", "failed", "cancelled"} <= set(legend)
    summary = next(n for n in dom.walk() if n.tag == "p").text_content()
    assert f"{len(store.histories[run_id])} events" in summary
    assert dom.by_id("details").text_content() == "(no event selected)"


def test_a_thread_page_has_a_lane_per_run_with_every_state(chromium: str, store: Store, tmp_path: Path) -> None:
    page = write_timeline(store, tmp_path / "thread.html", "--thread", THREAD)

    rendered = load(chromium, page)

    assert rendered.console_errors == []
    lanes = {lane.attrs["data-run"]: lane for lane in rendered.dom.select("lane")}
    assert set(lanes) == set(store.runs.values())
    for name, run_id in store.runs.items():
        lane_checks(lanes[run_id], store.histories[run_id], EXPECTED_STATES[name])
    total = sum(len(h) for h in store.histories.values())
    assert len(rendered.dom.select("event")) == total
    states = {s.attrs["data-state"] for s in rendered.dom.select("span")}
    assert states == {s for expected in EXPECTED_STATES.values() for s in expected}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (".event", {"type": "Created", "version": 1, "actor": "tester"}),
        (".event.kind-ApprovalResolved", {"type": "ApprovalResolved", "actor": "alice"}),
    ],
    ids=["first-event", "approval"],
)
def test_clicking_an_event_shows_its_data(chromium: str, store: Store, tmp_path: Path, selector: str,
                                          expected: dict[str, Any]) -> None:
    run_id = store.runs["approved"]
    page = with_click(write_timeline(store, tmp_path / "run.html", run_id), selector)

    rendered = load(chromium, page)

    assert rendered.console_errors == []
    details = rendered.dom.by_id("details").text_content()
    assert details != "(no event selected)", "the click handler did not run"
    shown = json.loads(details)
    assert shown.items() >= expected.items()
    assert shown in store.histories[run_id]
    if expected["type"] == "ApprovalResolved":
        assert shown["data"]["decision"] == "approve"
        assert '"type": "ApprovalResolved"' in details  # pretty-printed by JSON.stringify(data, null, 2)


def with_script(page: Path, script: str, name: str) -> Path:
    """A copy of the page that runs ``script`` once it has loaded."""
    html = page.read_text(encoding="utf-8")
    copy = page.with_name(f"{page.stem}-{name}{page.suffix}")
    copy.write_text(html.replace("</body>", f"<script>{script}</script></body>"), encoding="utf-8")
    return copy


def test_the_page_has_a_time_axis_durations_and_ended_runs_stop_where_they_ended(
        chromium: str, store: Store, tmp_path: Path) -> None:
    rendered = load(chromium, write_timeline(store, tmp_path / "thread.html", "--thread", THREAD))
    assert rendered.console_errors == []
    ticks = rendered.dom.select("tick")
    assert len(ticks) == 6 and "+" in ticks[-1].text_content()
    for lane in rendered.dom.select("lane"):
        assert lane.select("took")[0].text_content().endswith(" s")
        last = lane.select("span")[-1]
        width = float(re.search(r"width:([\d.]+)%", last.attrs["style"]).group(1))
        assert width < 1.0, "a run that ended is drawn on past its end"
    assert {row.attrs["data-run"] for row in rendered.dom.select("listed")} == set(store.runs.values())


def test_zoom_widens_the_tracks_and_the_filters_hide_other_runs(chromium: str, store: Store, tmp_path: Path) -> None:
    page = write_timeline(store, tmp_path / "thread.html", "--thread", THREAD)
    script = ("document.getElementById('zoom-in').click(); document.getElementById('zoom-in').click();"
              "var s = document.getElementById('filter-state'); s.value = 'failed';"
              "s.dispatchEvent(new Event('change'));")
    rendered = load(chromium, with_script(page, script, "zoomed"))
    assert rendered.console_errors == []
    assert "width: 400%" in rendered.dom.by_id("lanes-inner").attrs["style"]
    assert rendered.dom.by_id("zoom-level").text_content() == "4x"
    shown = [lane.attrs["data-run"] for lane in rendered.dom.select("lane") if "none" not in lane.attrs.get("style", "")]
    assert shown == [store.runs["failed"]]
    listed = [r.attrs["data-run"] for r in rendered.dom.select("listed") if "none" not in r.attrs.get("style", "")]
    assert listed == [store.runs["failed"]]
