"""The console in a real browser against a real ``posfleet serve`` (SQLite and
PostgreSQL): sign in, the dashboard, a rollout's page following a real ``posfleet
rollout run`` against ``possim`` terminals (the counts move), verifying a genuine and a
fake reference as an agent, an agent refused an ops action. Screenshots for the README
are taken here (``POSFLEET_SCREENSHOTS=docs/img`` copies them there)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from fleet.core import db
from fleet.core.db import writer
from fleet.core.models import EVENTS, JOBS, MERCHANTS, TERMINALS
from fleet.core.policy import FeePolicy, RolloutPolicy
from fleet.fees import Group, publish
from fleet.rollout import create
from tests.fleet.rollout.test_rollout_e2e import TABLE, tcp_fleet
from tests.fleet.web.browser import launched, shot
from tests.fleet.web.server import POSFLEET, Served, password_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    pg = context.new_page()
    pg.set_default_timeout(60_000)  # a bound on a hung page, not a timing check
    pg.requests = requests
    yield pg
    context.close()


def sign_in(page: Any, base: str, role: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", role)
    page.fill("input[name=password]", password_of(role))
    # the sign-in's page, not the login page's own load state: the click returns once the
    # POST is sent, and the login page is idle already (argon2 under load takes a while)
    with page.expect_navigation(wait_until="networkidle"):
        page.click("button[type=submit]")


def test_sign_in_and_dashboard(console: Served, page: Any, tmp_path: Path) -> None:
    page.goto(f"{console.url}/dashboard")
    assert page.url.startswith(f"{console.url}/login?next=")  # anonymous: sent to sign in
    page.fill("input[name=name]", "ops")
    page.fill("input[name=password]", "wrong password!")
    page.click("button[type=submit]")
    assert "wrong name or password" in page.inner_text(".error")
    page.fill("input[name=name]", "ops")
    page.fill("input[name=password]", password_of("ops"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/dashboard")
    assert page.inner_text("h1") == "Fleet at a glance"
    terminals = page.inner_text("[data-fact='fleet.terminals'] .value")
    assert terminals == "300"
    assert "P1" in page.inner_text("[data-fact='replacements.by_priority'] .value")
    # the reports' charts, drawn: an <svg> of non-zero size in every figure
    sizes = page.eval_on_selector_all(
        "figure[data-chart] svg", "els => els.map(e => e.getBoundingClientRect().width)"
    )
    assert len(sizes) == 3 and min(sizes) > 100
    if "sqlite" in console.db:
        shot(page, tmp_path, "console-dashboard")
        page.goto(f"{console.url}/terminals?status=deployed")
        assert page.locator("#terminals tbody tr").count() == 50
        shot(page, tmp_path, "console-terminals")
    # nothing but our own origin was ever asked for
    assert all(u.startswith(console.url) for u in page.requests), page.requests


def _possim_rollout(console: Served, tmp: Path) -> tuple[int, Any, Any]:
    """Only ``possim`` terminals keep a link; a new table (for every merchant) is rolled
    out to them in two waves. Returns the rollout id, the served fleet's context and its
    value."""
    engine = db.connect(console.db)
    with writer(engine).begin() as conn:
        conn.execute(update(TERMINALS).values(link=None))
        # the table is in CNY, which targets merchants in China only (fleet.fees.targets)
        conn.execute(update(MERCHANTS).values(country="CN"))
    fleet = tcp_fleet(engine, tmp, 24)
    served = fleet.__enter__()
    body = TABLE.replace('name = "e2e"', 'name = "console live"')
    extra = "".join(
        f'[[rules]]\ncard = "debit"\nmcc = "{2000 + i}"\nrate = "0.{10 + i % 80}%"\n'
        for i in range(200)
    )  # a table of a few KiB: each push takes a little while
    head, tail = body.split('[[rules]]\ncard = "any"')
    path = tmp / "live.toml"
    path.write_text(head + extra + '[[rules]]\ncard = "any"' + tail)
    version = publish(
        engine, path, actor="test", policy=FeePolicy(), override_reason="test"
    ).version
    rollout_id, _ = create(
        engine, version, group=Group(), policy=RolloutPolicy(), actor="test",
        waves=(250_000, 1_000_000), max_failure_ppm=1_000_000,
    )  # fmt: skip
    with engine.connect() as conn:
        jobs = conn.execute(select(JOBS.c.id).where(JOBS.c.rollout_id == rollout_id)).all()
    assert len(jobs) == len(served.serials) == 24
    engine.dispose()
    return rollout_id, fleet, served


def test_rollout_page_follows_a_worker(console: Served, page: Any, tmp_path: Path) -> None:
    rollout_id, fleet, served = _possim_rollout(console, tmp_path)
    worker = None
    try:
        sign_in(page, console.url, "ops")
        page.goto(f"{console.url}/rollouts/{rollout_id}")
        assert page.inner_text("#count-done") == "0"
        assert page.inner_text("#status") == "running"
        worker = subprocess.Popen(
            [POSFLEET, "--db", console.db, "rollout", "run", str(rollout_id), "--key-file",
             str(served.key), "--workers", "1", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = int(page.inner_text("#count-done"))
            if not seen or seen[-1] != done:
                seen.append(done)
            if page.inner_text("#status") == "done":
                break
            page.wait_for_timeout(200)
        assert page.inner_text("#status") == "done", seen
        # the page moved with the worker (no reload): from 0, through counts between, to all
        assert seen[0] == 0 and int(page.inner_text("#count-done")) == 24
        assert any(0 < n < 24 for n in seen), seen
        if "sqlite" in console.db:
            shot(page, tmp_path, "console-rollout")
        assert worker.wait(timeout=60) == 0, worker.stderr.read() if worker.stderr else ""
        engine = db.connect(console.db)  # the worker's last transaction told the outbox
        with engine.connect() as conn:
            done = (
                conn.execute(select(EVENTS.c.payload).where(EVENTS.c.kind == "rollout.done"))
                .scalars()
                .all()
            )
        engine.dispose()
        assert [d["rollout"] for d in done] == [rollout_id] and done[0]["jobs"] == {"done": 24}
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        fleet.__exit__(None, None, None)


def test_agent_verifies_genuine_and_fake(console: Served, page: Any, tmp_path: Path) -> None:
    sign_in(page, console.url, "agent")
    assert page.url == f"{console.url}/verify"  # an agent's home
    page.fill("input[name=code]", str(console.facts["code"]).lower().replace("-", " "))
    page.click("#verify-form button")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict").startswith("GENUINE")
    to = page.inner_text("#to")
    assert "****" in to  # masked for an agent
    if "sqlite" in console.db:
        shot(page, tmp_path, "console-verify-genuine")
    page.fill("input[name=code]", "ZZZZZ-ZZZZZ")
    page.click("#verify-form button")
    page.wait_for_selector("#verdict.not-genuine")
    assert page.inner_text("#verdict").startswith("NOT GENUINE")
    if "sqlite" in console.db:
        shot(page, tmp_path, "console-verify-fake")


def test_agent_refused_an_ops_action(console: Served, page: Any) -> None:
    sign_in(page, console.url, "agent")
    assert "Rollouts" not in page.inner_text("header nav")
    answer = page.goto(f"{console.url}/rollouts/{console.facts['rollout']}")
    assert answer.status == 403
    assert "may not" in page.inner_text(".error")
    # the pause form posted anyway (with the agent's own CSRF token): refused, nothing paused
    token = page.goto(f"{console.url}/verify") and page.get_attribute(
        "input[name=csrf_token]", "value"
    )
    answer = page.request.post(
        f"{console.url}/rollouts/{console.facts['rollout']}/pause",
        form={"csrf_token": token, "reason": "agent tries"},
        max_redirects=0,
    )
    assert answer.status == 403
    engine = db.connect(console.db)
    from fleet.rollout import status  # noqa: PLC0415

    assert str(status(engine, int(str(console.facts["rollout"]))).status) == "running"
    engine.dispose()
