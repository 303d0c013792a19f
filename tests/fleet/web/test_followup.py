"""A done swap's follow-up (回访) recorded from the console, SQLite and PostgreSQL: an
agent through the API (bearer token) and through the terminal page's form (session and
CSRF); the outcome is in the swaps list data and the audit log names the signed-in user;
an auditor is refused (403) both ways and nothing changes."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from fleet.core import db
from fleet.core.db import writer
from fleet.core.models import AUDIT, SWAPS, TERMINALS, now
from fleet.swaps import list_swaps
from tests.fleet.web.server import Client, Served, form_token, signed_in

pytestmark = pytest.mark.slow


def _done_swaps(served: Served, n: int) -> tuple[str, list[int]]:
    """``n`` done swaps of one deployed terminal, their follow-ups due: (serial, ids)."""
    engine = db.connect(served.db)
    try:
        with engine.connect() as conn:
            serial, merchant = conn.execute(
                select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
                .where(TERMINALS.c.status == "deployed", TERMINALS.c.merchant_id.is_not(None))
                .order_by(TERMINALS.c.serial.desc())
                .limit(1)
            ).one()
        row = {
            "old_serial": serial, "merchant_id": merchant, "tid": "T0000009", "mid": "M9",
            "status": "done", "reason": "worn keypad", "engineer": "Li", "done_at": now(),
            "follow_up_on": date.today() - timedelta(days=1), "follow_up_state": "due",
            "created_at": now(), "created_by": "test",
        }  # fmt: skip
        with writer(engine).begin() as conn:
            ids = [conn.execute(SWAPS.insert().values(**row)).inserted_primary_key[0]
                   for _ in range(n)]  # fmt: skip
        return serial, ids
    finally:
        engine.dispose()


def _swaps_and_audit(served: Served) -> tuple[dict[int, dict[str, object]], list[tuple[str, str]]]:
    engine = db.connect(served.db)
    try:
        swaps = {s["id"]: s for s in list_swaps(engine, "done")}
        with engine.connect() as conn:
            audit = conn.execute(
                select(AUDIT.c.actor, AUDIT.c.target).where(AUDIT.c.action == "swap_follow_up")
            ).all()
        return swaps, [(a, t) for a, t in audit]
    finally:
        engine.dispose()


def _bearer(served: Served, role: str) -> httpx.Client:
    token = dict(served.facts["tokens"])[role]  # type: ignore[call-overload]
    return Client(served.url, headers={"Authorization": f"Bearer {token}"})


def test_an_agent_records_follow_ups_and_an_auditor_is_refused(console: Served) -> None:
    serial, (by_api, not_reached, by_page, refused) = _done_swaps(console, 4)
    agent_api, auditor_api = _bearer(console, "agent"), _bearer(console, "auditor")

    answer = agent_api.post(
        f"/api/v1/swaps/{by_api}/follow-up",
        json={"reached": True, "satisfaction": 4, "issue": "receipt paper jams"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"swap": by_api, "state": "done", "attempts": 1, "next_due": None,
                             "satisfaction": 4, "issue_open": True}  # fmt: skip
    again = agent_api.post(f"/api/v1/swaps/{by_api}/follow-up", json={"reached": False})
    assert again.status_code == 409, again.text  # reached already
    answer = agent_api.post(f"/api/v1/swaps/{not_reached}/follow-up", json={"reached": False})
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] in ("due", "unreached") and answer.json()["attempts"] == 1
    bad = agent_api.post(f"/api/v1/swaps/{refused}/follow-up", json={"reached": True})
    assert bad.status_code == 422  # reached, with no satisfaction: the schema refuses it
    missing = agent_api.post("/api/v1/swaps/999999/follow-up", json={"reached": False})
    assert missing.status_code == 404

    agent = signed_in(console.url, "agent")
    html = agent.get(f"/terminals/{serial}").text
    assert f'action="/swaps/{by_page}/follow-up"' in html
    assert f'action="/swaps/{by_api}/follow-up"' not in html  # done: no form
    assert "receipt paper jams (open)" in html and "4/5" in html
    posted = agent.post(
        f"/swaps/{by_page}/follow-up",
        data={"csrf_token": form_token(html), "reached": "yes", "satisfaction": "5",
              "issue": "", "back": f"/terminals/{serial}"},
    )  # fmt: skip
    assert posted.status_code == 303 and posted.headers["location"] == f"/terminals/{serial}"
    no_csrf = agent.post(
        f"/swaps/{refused}/follow-up", data={"reached": "yes", "satisfaction": "5"}
    )
    assert no_csrf.status_code in (400, 403)

    auditor = signed_in(console.url, "auditor")
    token = form_token(auditor.get(f"/terminals/{serial}").text)
    page = auditor.post(
        f"/swaps/{refused}/follow-up",
        data={"csrf_token": token, "reached": "yes", "satisfaction": "5"},
    )
    assert page.status_code == 403
    api = auditor_api.post(
        f"/api/v1/swaps/{refused}/follow-up", json={"reached": True, "satisfaction": 5}
    )
    assert api.status_code == 403

    swaps, audit = _swaps_and_audit(console)
    assert (swaps[by_api]["follow_up_state"], swaps[by_api]["satisfaction"],
            swaps[by_api]["follow_up_issue"], swaps[by_api]["issue_open"]) == (
        "done", 4, "receipt paper jams", True)  # fmt: skip
    assert swaps[not_reached]["follow_up_attempts"] == 1
    assert swaps[not_reached]["satisfaction"] is None
    assert (swaps[by_page]["follow_up_state"], swaps[by_page]["satisfaction"],
            swaps[by_page]["issue_open"]) == ("done", 5, False)  # fmt: skip
    assert (swaps[refused]["follow_up_state"], swaps[refused]["follow_up_attempts"]) == ("due", 0)
    assert sorted(audit) == sorted([
        ("token:agent-script", f"swap:{by_api}"), ("token:agent-script", f"swap:{not_reached}"),
        ("agent", f"swap:{by_page}"),
    ])  # fmt: skip
