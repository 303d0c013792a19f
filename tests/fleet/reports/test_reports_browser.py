"""The HTML reports in a real browser: headless Chromium draws every chart, and the page
asks for nothing but its own file. On SQLite and PostgreSQL, for the 300-terminal sample
fleet with a rollout in every state and notices composed and sent (or not) by the real
outbox.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
the browser reads commands on fd 3 and writes answers and events on fd 4, one JSON
message per NUL-terminated chunk), so no WebSocket client and no port are needed.

- **charts**: every ``<figure>`` holds an ``<svg>`` laid out at a non-zero size with its
  bars and measurable text, and a screenshot of it contains the chart's series colours
  (bars were painted, not just parsed);
- **network**: ``Network.requestWillBeSent`` is recorded for the page from before the
  navigation; the only URL it may ever name is the report's own ``file://`` URL. The
  browser also runs with ``--host-resolver-rules="MAP * ~NOTFOUND"``, so that nothing it
  might try (its own update checks included) reaches a network while the test runs.

Chromium is ``chromium`` on PATH (Debian: ``apt-get install chromium``). Without it the
test is skipped locally and fails under CI (``CI`` set).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine, update
from sqlalchemy import select as sql_select

from fleet.core.db import writer
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.core.policy import NoticePolicy, ReplacementPolicy
from fleet.notices import payload_of, queue
from fleet.notices.channels import Outgoing, TransportError
from fleet.notices.compose import compose
from fleet.notices.dispatch import Dispatcher, DispatchResult
from fleet.notices.text import KINDS, sample_items
from fleet.reports import (
    NoticeFilter,
    charts,
    fleet_report,
    notices_report,
    render,
    replacements_report,
    rollout_report,
)
from fleet.reports.charts import colors
from fleet.reports.model import Chart, Report, stacks
from fleet.reports.rollout import JOB_COLORS, JOB_STATUSES
from tests.fleet.reports.test_reports import seed_rollout

AS_OF = "2026-11-01"
TIMEOUT_S = 30.0


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is required under CI (apt-get install chromium) but not on PATH")
    pytest.skip("chromium not installed (apt-get install chromium); under CI this fails")


class Chromium:
    """Headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_browser = os.pipe()
        from_browser = os.pipe()
        mine = (to_browser[1], from_browser[0])
        theirs = (to_browser[0], from_browser[1])

        def fds_3_and_4() -> None:  # in the child, before exec: the pipe ends on 3 and 4
            os.dup2(theirs[0], 3)
            os.dup2(theirs[1], 4)

        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        with log.open("wb") as err:
            # Python's own descriptors are close-on-exec; only fds 0-4 reach the browser.
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                close_fds=False,
                preexec_fn=fds_3_and_4,  # noqa: PLW1509 - dup2 only; no threads here
            )
        for fd in theirs:
            os.close(fd)
        self.send_fd, self.recv_fd = mine
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.call("Network.enable", session=True)
        self.call("Page.enable", session=True)

    def _read(self, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                self.events.append(message)
                if until(message):
                    return message
            ready, _, _ = select.select([self.recv_fd], [], [], deadline - time.monotonic())
            if not ready:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.recv_fd, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self.buffer += chunk

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> Any:
        self.next_id += 1
        ident = self.next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.send_fd, json.dumps(message).encode() + b"\0")
        answer = self._read(lambda m: m.get("id") == ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def load(self, url: str) -> None:
        """Open ``url`` and wait for its load event (the events seen so far are dropped)."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self._read(
            lambda m: (
                m.get("method") == "Page.loadEventFired" and m.get("sessionId") == self.session
            )
        )

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        return result["result"]["value"]

    def screenshot(self, box: dict[str, float]) -> Image.Image:
        clip = {k: box[k] for k in ("x", "y", "width", "height")} | {"scale": 1}
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            session=True,
        )
        return Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")

    def requested(self) -> list[str]:
        """Every URL the page asked for (documents, subresources, fonts, everything)."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == self.session
        ]

    def close(self) -> None:
        with contextlib.suppress(EOFError, OSError, TimeoutError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.send_fd)
        os.close(self.recv_fd)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    binary = chromium_path()
    log = tmp_path / "chromium.log"
    chrome = Chromium(binary, tmp_path / "profile", log)
    try:
        yield chrome
    finally:
        chrome.close()


# Per chart: its key, its size on the page, the bars drawn (matplotlib's patches, less the
# figure's and axes' backgrounds), and the narrowest of its laid-out texts.
CHARTS_JS = """
JSON.stringify([...document.querySelectorAll('figure[data-chart]')].map(f => {
  const svg = f.querySelector(':scope > svg');
  const box = svg ? svg.getBoundingClientRect() : {x: 0, y: 0, width: 0, height: 0};
  const texts = svg ? [...svg.querySelectorAll('text')].map(t => t.getComputedTextLength()) : [];
  return {
    key: f.dataset.chart,
    box: {x: box.x + scrollX, y: box.y + scrollY, width: box.width, height: box.height},
    patches: svg ? svg.querySelectorAll('g[id*="-patch_"] > path').length : 0,
    texts: texts.length,
    narrowest: texts.length ? Math.min(...texts) : 0,
  };
}))
"""


def _hex(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


class _Gateway:
    """Every channel's transport: delivers, but refuses every fourth message for good
    (quoting the address) and every fifth for now (to be retried)."""

    name = "test:gateway"

    def __init__(self) -> None:
        self.sent = 0

    def send(self, out: Outgoing) -> str:
        self.sent += 1
        if self.sent % 4 == 0:
            raise TransportError(f"rejected {out.address}: unknown subscriber", retryable=False)
        if self.sent % 5 == 0:
            raise TransportError("HTTP 503: try later")
        return f"ok:{out.code}"

    def close(self) -> None:
        pass


def seed_notices(engine: Engine) -> None:
    """Notices of every kind to 40 merchants over five days, composed by the outbox on
    2026-10-31 (with the fee:1 notices the rollout's publication queued), 25 of the
    messages sent through :class:`_Gateway`: notices in every status, messages on each
    channel in most."""
    with engine.connect() as conn:
        ids = conn.scalars(sql_select(MERCHANTS.c.id).order_by(MERCHANTS.c.id).limit(40)).all()
    start = datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    with writer(engine).begin() as conn:
        # no contact data: the fee change fails; opted out of everything: the follow-up
        # is cancelled
        conn.execute(
            update(MERCHANTS).where(MERCHANTS.c.id == ids[0]).values(phone=None, email=None)
        )
        conn.execute(
            update(MERCHANTS)
            .where(MERCHANTS.c.id == ids[3])
            .values(opt_out=["sms", "email", "call"])
        )
        for i, merchant in enumerate(ids):
            kind = KINDS[i % len(KINDS)]
            queue(
                conn,
                payload_of(kind, sample_items(kind)[0].payload),
                merchant_id=merchant,
                ref=f"report:{i}",
                at=start + timedelta(days=i % 5, minutes=i),
                not_before=datetime(2026, 12, 1, 2, 0, tzinfo=UTC) if i % 6 == 5 else None,
            )
    policy = NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=100, backoff_s=0.0)
    composed_at = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    assert compose(engine, policy, at=composed_at).messages > 30
    gateway = _Gateway()
    transports = dict.fromkeys(("sms", "email", "call"), gateway)
    dispatcher = Dispatcher(engine, policy, transports, worker="report-test", batch=25)
    result = DispatchResult()
    for message in dispatcher.claim(at=composed_at + timedelta(minutes=1)):
        dispatcher.send(message, result)
    assert result.sent and result.failed and result.retried


def _reports(engine: Engine, tmp_path: Path) -> dict[str, Report]:
    with engine.connect() as conn:
        live = conn.scalars(
            sql_select(TERMINALS.c.serial)
            .where(TERMINALS.c.status == "deployed", TERMINALS.c.merchant_id.is_not(None))
            .order_by(TERMINALS.c.serial)
            .limit(40)
        ).all()
    seed_rollout(engine, live, tmp_path)
    seed_notices(engine)
    day = date.fromisoformat(AS_OF)
    return {
        "fleet": fleet_report(engine, day),
        "replacements": replacements_report(engine, ReplacementPolicy(), day, limit=50),
        "rollout": rollout_report(engine, day),
        "notices": notices_report(engine, NoticeFilter(day)),
    }


def test_reports_render_in_chromium_without_network(
    loaded: Engine, browser: Chromium, tmp_path: Path
) -> None:
    reports = _reports(loaded, tmp_path)
    assert [len(r.charts) for r in reports.values()] == [2, 2, 1, 4]
    for name, report in reports.items():
        page = tmp_path / f"{name}.html"
        page.write_text(render.html(report), encoding="utf-8")
        url = page.as_uri()
        browser.load(url)

        charts = json.loads(browser.evaluate(CHARTS_JS))
        assert [c["key"] for c in charts] == [c.key for c in report.charts], name
        for drawn, chart in zip(charts, report.charts, strict=True):
            where = f"{name}/{chart.key}"
            assert drawn["box"]["width"] > 300 and drawn["box"]["height"] > 100, (where, drawn)
            bars = sum(1 for s in chart.series for v in s.values if v)
            assert drawn["patches"] >= bars > 0, (where, drawn)
            assert drawn["texts"] > 5 and drawn["narrowest"] > 0, (where, drawn)
            # painted: the screenshot of the chart shows every series' colour
            image = browser.screenshot(drawn["box"])
            seen = {rgb for _, rgb in image.getcolors(maxcolors=1 << 20) or []}
            assert len(seen) > 10, (where, "blank chart")
            for series, color in zip(chart.series, colors(chart), strict=True):
                if any(series.values):
                    assert _hex(color) in seen, (where, series.name, color)

        title = browser.evaluate("document.title")
        assert title == report.title
        assert browser.requested() and set(browser.requested()) == {url}, browser.requested()


# -- issue 13, "Daily use": wide tables, the rollout chart's legend, printed pages ----------

A4_LANDSCAPE_PX = 1047
"""The width of an A4 landscape page inside 10 mm margins, in CSS pixels (277 mm)."""

TABLES_JS = """
JSON.stringify([...document.querySelectorAll('section table')].map(t => {
  const box = t.getBoundingClientRect(), holder = t.parentElement;
  return {section: t.closest('section').id, right: box.right,
          page: document.documentElement.clientWidth,
          hidden: holder.scrollWidth - holder.clientWidth,
          scrolls: getComputedStyle(holder).overflowX === 'auto'};
}))
"""


def _overflowing(browser: Chromium) -> list[dict[str, Any]]:
    return [
        t
        for t in json.loads(browser.evaluate(TABLES_JS))
        if t["hidden"] > 1 or t["right"] > t["page"] + 1
    ]


def _pdf_pages(browser: Chromium) -> int:
    pdf = browser.call(
        "Page.printToPDF",
        {"landscape": True, "paperWidth": 11.69, "paperHeight": 8.27, "preferCSSPageSize": True},
        session=True,
    )
    return len(re.findall(rb"/Type\s*/Page[^s]", base64.b64decode(pdf["data"])))


def test_wide_tables_are_not_clipped_on_screen_or_in_print(
    loaded: Engine, browser: Chromium, tmp_path: Path
) -> None:
    reports = _reports(loaded, tmp_path)
    for name, report in reports.items():
        page = tmp_path / f"{name}.html"
        page.write_text(render.html(report), encoding="utf-8")
        for width, media in ((1280, "screen"), (1024, "screen"), (A4_LANDSCAPE_PX, "print")):
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                session=True,
            )
            browser.call("Emulation.setEmulatedMedia", {"media": media}, session=True)
            browser.load(page.as_uri())
            over = _overflowing(browser)
            if width == 1024:  # narrower than the page: a wide table scrolls, never clipped
                over = [t for t in over if not t["scrolls"]]
            assert not over, (name, width, media, over)


def test_the_rollout_chart_has_a_legend(loaded: Engine, tmp_path: Path) -> None:

    report = _reports(loaded, tmp_path)["rollout"]
    all_done = Chart(  # a rollout that is done: one status left, its colour still named
        "rollout_9", "Rollout 9: table v2, done", ("wave 1 (10%)", "wave 2 (100%)"),
        stacks(JOB_STATUSES, JOB_COLORS, [{"done": 3}, {"done": 27}]), stacked=True,
        ylabel="terminals",
    )  # fmt: skip
    for chart in [*report.charts, all_done]:
        drawn = charts.svg(chart)
        assert "legend_1" in drawn, chart.key
        for s in chart.series:
            assert f">{s.name.replace('_', ' ')}<" in drawn, (chart.key, s.name)


def test_the_replacements_report_prints_to_few_a4_pages(
    loaded: Engine, browser: Chromium, tmp_path: Path
) -> None:
    report = _reports(loaded, tmp_path)["replacements"]
    page = tmp_path / "replacements.html"
    page.write_text(render.html(report), encoding="utf-8")
    browser.load(page.as_uri())
    pages = _pdf_pages(browser)
    print(f"replacements report: {pages} A4 pages")
    assert pages <= 6, pages
