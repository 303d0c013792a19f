"""Every route × every role against the matrix written in docs/console.md, on a running
``posfleet serve``: allowed (anything but 401/403 and never a 5xx), 403 for a signed-in
role that may not, a redirect to sign-in (pages) or 401 (API) for the anonymous. The
table must list exactly the app's routes. Pages are asked with the role's session (and
its CSRF token on posts), the API with the role's bearer token. Parameters name things
that do not exist where acting would change the fleet (rollout 999999…): an allowed role
gets past the check and is answered 404/422, nothing changes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from fleet.web.app import create_app
from fleet.web.routes import ROUTERS
from tests.fleet.web.server import ROLES, Client, Served, signed_in

DOC = Path(__file__).parents[3] / "docs" / "console.md"
_ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) ([^`]+)` \|(.+)\|\s*$")


def matrix() -> dict[tuple[str, str], dict[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    lines = block.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    found = {}
    for line in lines[2:]:
        m = _ROW.match(line)
        assert m, f"docs/console.md: matrix row not understood: {line}"
        cells = [c.strip() for c in m.group(3).split("|")]
        found[(m.group(1), m.group(2))] = dict(zip(header, cells, strict=True))
    return found


def app_routes() -> set[tuple[str, str]]:
    app = create_app()
    routes = [r for router in ROUTERS for r in router.routes]
    routes += [r for r in app.routes if isinstance(r, APIRoute)]
    return {(m, r.path) for r in routes if isinstance(r, APIRoute) for m in r.methods - {"HEAD"}}


def test_the_matrix_lists_every_route() -> None:
    documented = {k for k in matrix() if not k[1].startswith("/static/")}
    assert documented == app_routes()
    assert set(next(iter(matrix().values()))) == {*ROLES, "anonymous"}


def _path(template: str, served: Served, method: str) -> str:
    values = {
        "serial": str(served.facts["serial"]) if method == "GET" else "NOSUCHSERIAL",
        "rollout_id": "999999",
        "action": "pause",
        "notice_id": "1",
        "version": "1",
        "merchant_id": "NOSUCHMERCHANT",
        "swap_id": "999999",
        "name": "nobody-at-all",
        "token_id": "999999",
        "sub_id": "999999",
        "file": "console.css",
        "provider": "nobody-at-all",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def _call(client: httpx.Client, method: str, path: str, csrf: str, api: bool) -> httpx.Response:
    if method == "GET":
        return client.get(path)
    if api:
        return client.request(method, path, json={})
    return client.request(method, path, data={"csrf_token": csrf})


def _check(expected: str, answer: httpx.Response, where: str) -> None:
    code = answer.status_code
    assert code < 500, f"{where}: {code} {answer.text[:300]}"
    if expected in ("✓", "public"):
        assert code not in (401, 403), f"{where}: refused ({code}) but the matrix allows it"
        location = answer.headers.get("location", "")
        assert not location.startswith("/login?next="), f"{where}: sent to sign in"
    elif expected == "403":
        assert code == 403, f"{where}: {code}, the matrix says 403"
    elif expected == "401":
        assert code == 401, f"{where}: {code}, the matrix says 401"
        assert answer.headers["content-type"].startswith("application/problem+json")
    elif expected == "sign-in":
        assert code == 303 and answer.headers["location"].startswith("/login?next="), where
    else:
        pytest.fail(f"{where}: unknown matrix cell {expected!r}")


@pytest.mark.slow
def test_every_route_as_every_role(console: Served) -> None:
    table = matrix()
    skip = {("POST", "/logout"), ("POST", "/login")}  # ends the session / needs its own form
    clients: dict[str, Client] = {role: signed_in(console.url, role) for role in ROLES}
    bearer = {
        role: Client(console.url, headers={"Authorization": f"Bearer {token}"})
        for role, token in dict(console.facts["tokens"]).items()  # type: ignore[call-overload]
    }
    anonymous = Client(console.url)
    csrf = {role: clients[role].token("/account/password") for role in ROLES}
    checked = 0
    for (method, template), cells in sorted(table.items()):
        if (method, template) in skip:
            continue
        path = _path(template, console, method)
        api = template.startswith("/api/")
        for role in ROLES:
            client = bearer[role] if api else clients[role]
            answer = _call(client, method, path, csrf[role], api)
            _check(cells[role], answer, f"{role} {method} {path}")
            checked += 1
        if method == "GET" or cells["anonymous"] != "public":
            answer = _call(anonymous, method, path, "", api)
            _check(cells["anonymous"], answer, f"anonymous {method} {path}")
    assert checked > 250
    # the two left out: sign-out works for every role, and the sign-in form is public
    for role in ROLES:
        out = clients[role].post("/logout", data={"csrf_token": csrf[role]})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert clients[role].get("/account/password").status_code == 303  # signed out
    assert anonymous.get("/login").status_code == 200
