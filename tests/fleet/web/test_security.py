"""The console's defences, against a running ``posfleet serve`` (SQLite, PostgreSQL):
CSRF, session fixation, a disabled user's live session, brute force on sign-in and on
verify, HTML injection in merchant names and reasons, phones masked for agents.

Client addresses are told apart with ``X-Forwarded-For`` (the server trusts it from
loopback here, ``--forwarded-allow-ips 127.0.0.1``), so each test throttles an address
of its own and leaves the others alone."""

from __future__ import annotations

import html
import secrets
import time

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from fleet.access import add_user, create_token, disable_user, reset_password
from fleet.core import db
from fleet.core.masking import mask_phone
from fleet.core.models import VERIFICATIONS
from fleet.web.routes import ROUTERS
from tests.fleet.web.conftest import HOSTILE
from tests.fleet.web.server import Client, Served, form_token, password_of, signed_in

pytestmark = pytest.mark.slow


def _clear_of_a_window_edge(window_s: int, need_s: float = 90.0) -> None:
    """Throttles count in fixed windows (fleet.access.throttle): a test that fills one must
    not straddle its edge, where the count starts again. Wait past it when it is near."""
    left = window_s - time.time() % window_s
    if left < need_s:
        time.sleep(left + 0.5)


def _address() -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250) + 1}"}


def _user(served: Served, role: str) -> tuple[str, str]:
    name, password = f"{role}-{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    engine = db.connect(served.db)
    add_user(engine, name, role, actor="test", password=password)
    engine.dispose()
    return name, password


def test_csrf(console: Served) -> None:
    ops = signed_in(console.url, "ops")
    # a form post without the token, with a made-up one, with another session's: refused
    for token in (None, "0" * 64, signed_in(console.url, "ops").token()):
        data = {"code": "AAAAA-AAAAA"} | ({"csrf_token": token} if token else {})
        answer = ops.post("/verify", data=data)
        assert answer.status_code == 403, token
        assert "CSRF" in answer.text
    assert (
        ops.post("/verify", data={"code": "AAAAA-AAAAA", "csrf_token": ops.token()}).status_code
        == 200
    )
    # the sign-in form too (login CSRF): no pre-session cookie, no sign-in
    fresh = Client(console.url)
    answer = fresh.post("/login", data={"name": "ops", "password": password_of("ops")})
    assert answer.status_code == 403 and "pf_session" not in fresh.cookies
    # the API with the session cookie: the header is needed for anything but GET
    rid = console.facts["rollout"]
    answer = ops.post(f"/api/v1/rollouts/{rid}/pause", json={"reason": "csrf?"})
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert ops.get(f"/api/v1/rollouts/{rid}").json()["status"] == "running"
    # cross-site: the cookie is SameSite=Lax and HttpOnly
    cookie = Client(console.url).sign_in("ops", password_of("ops")).headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_session_fixation(console: Served) -> None:
    planted = secrets.token_urlsafe(32)
    victim = Client(console.url)
    victim.cookies.set("pf_session", planted, domain="127.0.0.1", path="/")
    answer = victim.sign_in("auditor", password_of("auditor"))
    assert answer.status_code == 303
    issued = victim.cookies["pf_session"]
    assert issued != planted
    attacker = Client(console.url)
    attacker.cookies.set("pf_session", planted, domain="127.0.0.1", path="/")
    assert attacker.get("/audit").status_code == 303  # the planted id signs no one in
    # and a session the attacker saw earlier in this browser dies at the next sign-in
    old = issued
    victim.sign_in("auditor", password_of("auditor"))
    assert victim.cookies["pf_session"] != old
    attacker.cookies.clear()
    attacker.cookies.set("pf_session", old, domain="127.0.0.1", path="/")
    assert attacker.get("/audit").status_code == 303
    assert victim.get("/audit").status_code == 200


def test_disabled_user_session_ends_at_once(console: Served) -> None:
    name, password = _user(console, "ops")
    ops = Client(console.url)
    assert ops.sign_in(name, password).status_code == 303
    other = Client(console.url)  # a second live session of theirs
    assert other.sign_in(name, password).status_code == 303
    assert ops.get("/dashboard").status_code == 200
    admin = signed_in(console.url, "admin")
    done = admin.post(
        f"/admin/users/{name}/disable", data={"csrf_token": admin.token("/admin/users")}
    )
    assert done.status_code == 303
    for client in (ops, other):
        answer = client.get("/dashboard")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        assert client.get("/api/v1/me").status_code == 401
    assert Client(console.url).sign_in(name, password).status_code == 401
    # a password reset ends sessions too, and a revoked token stops at once
    name2, password2 = _user(console, "agent")
    agent = Client(console.url)
    agent.sign_in(name2, password2)
    engine = db.connect(console.db)
    reset_password(engine, name2, actor="test")
    info, token = create_token(engine, "ops", 1, actor="test")
    engine.dispose()
    assert agent.get("/verify").status_code == 303
    script = Client(console.url, headers={"Authorization": f"Bearer {token}"})
    assert script.get("/api/v1/me").status_code == 200
    revoke = admin.post(
        f"/admin/tokens/{info.id}/revoke", data={"csrf_token": admin.token("/admin/tokens")}
    )
    assert revoke.status_code == 303
    answer = script.get("/api/v1/me")
    assert answer.status_code == 401 and answer.json()["type"] == "/api/problems/not-signed-in"


def test_brute_force_on_sign_in(console: Served) -> None:
    _clear_of_a_window_edge(900)  # the sign-in limits' window
    name, password = _user(console, "ops")
    here = _address()
    client = Client(console.url, headers=here)
    for _ in range(5):
        assert client.sign_in(name, "not-the-password").status_code == 401
    answer = client.sign_in(name, password)  # right, but after 5 failures for this user
    assert answer.status_code == 429 and "too many" in answer.text
    assert int(answer.headers["retry-after"]) > 0
    elsewhere = Client(console.url, headers=_address())
    assert elsewhere.sign_in(name, password).status_code == 429  # per user, wherever from
    # per address: 20 failures over many names shut the address, not the users
    spraying = Client(console.url, headers=(sprayer := _address()))
    for i in range(20):
        assert spraying.sign_in(f"guess{i}", "password123").status_code == 401
    assert spraying.sign_in("ops", password_of("ops")).status_code == 429
    assert (
        Client(console.url, headers=_address()).sign_in("ops", password_of("ops")).status_code
        == 303
    )
    assert sprayer != here


def test_brute_force_on_verify(console: Served) -> None:
    _clear_of_a_window_edge(300)  # the verify limits' window
    name, password = _user(console, "agent")
    agent = Client(console.url, headers=_address())
    agent.sign_in(name, password)
    token = agent.token()
    codes = [f"{secrets.token_hex(3).upper()[:5]}-ZZZZZ" for _ in range(25)]
    answers = [
        agent.post("/verify", data={"code": c, "csrf_token": token}).status_code for c in codes
    ]
    assert answers[:20] == [200] * 20 and set(answers[20:]) == {429}
    # the API shares the counter: a token of the same user name is another actor, but the
    # signed-in agent's API calls count with the pages'
    api = agent.post("/api/v1/verify", json={"code": "AAAAA-AAAAA"},
                     headers={"X-CSRF-Token": token})  # fmt: skip
    assert api.status_code == 429 and api.json()["retry_after"] > 0
    engine = db.connect(console.db)
    with engine.connect() as conn:
        kept = (
            conn.execute(
                select(VERIFICATIONS.c.code).where(
                    VERIFICATIONS.c.actor == name, VERIFICATIONS.c.genuine.is_(False)
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(kept) == 20  # every NOT GENUINE answered is kept; the refused are not checks


def _get_pages(console: Served) -> list[str]:
    paths = []
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and "GET" in route.methods:
                paths.append(route.path)
    values = {
        "serial": str(console.facts["serial"]), "rollout_id": str(console.facts["rollout"]),
        "notice_id": "1", "version": "1", "sub_id": "1",
    }  # fmt: skip
    out = []
    for template in paths:
        path = template
        for key, value in values.items():
            path = path.replace("{" + key + "}", value)
        if (
            "{" not in path
            and path not in ("/health", "/login", "/")
            and not path.startswith("/api/")
        ):
            out.append(path)
    return out


def test_html_injection_is_escaped_everywhere(console: Served) -> None:
    admin = signed_in(console.url, "admin")
    pages = [
        *_get_pages(console),
        f"/terminals?merchant={console.facts['merchant']}",
        f"/notices?merchant={console.facts['merchant']}",
        "/terminals?q=" + HOSTILE[:40],
    ]
    shown = 0
    for path in pages:
        answer = admin.get(path)
        assert answer.status_code == 200, path
        body = answer.text
        assert HOSTILE not in body, path
        assert "<script>alert" not in body and "onerror=alert" not in body.replace(
            "onerror=alert(1)&gt;", ""
        ), path
        shown += html.escape(HOSTILE, quote=False) in body or "&lt;script&gt;" in body
    assert shown >= 3  # the terminal, its swaps, its merchant's terminals list the name
    # the API returns the text as data, as JSON, which no browser renders as a page
    answer = admin.get(f"/api/v1/terminals/{console.facts['serial']}")
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.json()["merchant"]["name"] == HOSTILE


def test_phones_masked_for_agents(console: Served) -> None:
    phone = str(console.facts["phone"])
    serial = console.facts["serial"]
    agent = signed_in(console.url, "agent")
    ops = signed_in(console.url, "ops")
    page = agent.get(f"/terminals/{serial}").text
    assert phone not in page and mask_phone(phone) in page
    assert phone in ops.get(f"/terminals/{serial}").text
    api = agent.get(f"/api/v1/terminals/{serial}", headers={}).json()
    assert api["merchant"]["phone"] == mask_phone(phone)
    for path in ("/notices", f"/notices?merchant={console.facts['merchant']}", "/api/v1/notices"):
        body = agent.get(path).text
        assert "+86139" not in body.replace(mask_phone(phone), "")  # no whole number
    for n in agent.get("/api/v1/notices?limit=500").json():
        assert not n["to"] or "****" in n["to"] or "***@" in n["to"]
    token = agent.token()
    verdict = agent.post("/verify", data={"code": str(console.facts["code"]), "csrf_token": token})
    assert "GENUINE" in verdict.text and "****" in verdict.text
    assert form_token(verdict.text) == token
    # disabled below: the user made here must not linger as an agent
    engine = db.connect(console.db)
    name, _ = _user(console, "agent")
    disable_user(engine, name, actor="test")
    engine.dispose()


def test_processes_share_sessions_and_their_end(console: Served, tmp_path: object) -> None:
    """Stateless: a second ``posfleet serve`` on the same database honours a session made by
    the first, and sees it end the moment the first ends it."""
    from pathlib import Path  # noqa: PLC0415

    from tests.fleet.web.server import serve  # noqa: PLC0415

    name, password = _user(console, "auditor")
    first = Client(console.url)
    assert first.sign_in(name, password).status_code == 303
    with serve(console.db, Path(str(tmp_path))) as other:
        second = Client(other.url)
        second.cookies.set("pf_session", first.cookies["pf_session"], domain="127.0.0.1", path="/")
        assert second.get("/audit").status_code == 200
        out = first.post("/logout", data={"csrf_token": first.token("/audit")})
        assert out.status_code == 303
        assert second.get("/audit").status_code == 303  # ended everywhere at once
