"""Dashboard and terminals: the fleet at a glance, and every terminal page by page.

The dashboard's aggregates read the whole fleet, so they are cached for every process
(:func:`fleet.core.cache.cached`, refreshed in the background after
``dashboard_ttl_s``); a terminal page is a keyset page
(:func:`fleet.inventory.browse.terminal_page`).
"""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import BaseModel

from fleet.access import Perm, Principal
from fleet.core.cache import cached
from fleet.core.models import now
from fleet.core.policy import Policy
from fleet.inventory.browse import MAX_PAGE, TerminalFilter, terminal_history, terminal_page
from fleet.reports.dashboard import dashboard
from fleet.web.deps import DB, TEXT, get_settings, need
from fleet.web.problems import PROBLEM_RESPONSES
from fleet.web.render import contact, page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["fleet"], responses=PROBLEM_RESPONSES)

Dash = Annotated[Principal, Depends(need(Perm.DASHBOARD))]
Reader = Annotated[Principal, Depends(need(Perm.TERMINALS))]


_LOCAL_S = 2.0
"""A process reuses the shared snapshot it read for this long (a dashboard under load
would otherwise read and parse the same 50 KB row for every request)."""
_local: dict[str, tuple[float, dict[str, Any]]] = {}


def _compute(engine: Any, settings: Any) -> dict[str, Any]:
    policy = Policy.load(settings.policy_path).replacement
    value, _ = cached(
        engine,
        "dashboard",
        lambda: dashboard(engine, policy, now().date()),
        ttl_s=settings.dashboard_ttl_s,
    )
    return dict(value)


def warm_dashboard(app: Any) -> None:
    """Make sure the shared snapshot exists (computed now if no process has made it)."""
    _compute(app.state.engine, app.state.settings)


def snapshot(request: Request) -> dict[str, Any]:
    settings = get_settings(request)
    engine = request.app.state.engine
    held = _local.get("dashboard")
    if held is not None and time.monotonic() - held[0] < _LOCAL_S:
        return held[1]
    value = _compute(engine, settings)
    _local["dashboard"] = (time.monotonic(), value)
    return value


@pages.get("/dashboard")
def dashboard_page(request: Request, me: Dash) -> Response:
    snap = snapshot(request)
    # the SVG is matplotlib's, from our own numbers; it escapes the text it writes
    charts = [c | {"svg": Markup(c["svg"])} for c in snap["charts"]]
    return page(request, "dashboard.html", snap=snap, charts=charts)


class Fact(BaseModel):
    key: str
    label: str
    text: str


class Dashboard(BaseModel):
    as_of: date
    computed_at: str
    facts: list[Fact]
    counts: dict[str, dict[str, int]]


@api.get("/dashboard", response_model=Dashboard, summary="The fleet at a glance (cached)")
def dashboard_api(request: Request, me: Dash) -> dict[str, Any]:
    snap = snapshot(request)
    return {k: snap[k] for k in ("as_of", "computed_at", "facts", "counts")}


def _filter(
    q: str | None, status: str | None, model: str | None, firmware: str | None,
    merchant: str | None, region: str | None,
) -> TerminalFilter:  # fmt: skip
    return TerminalFilter(
        q=q or None, status=status or None, model=model or None, firmware=firmware or None,
        merchant=merchant or None, region=region or None,
    ).check()  # fmt: skip


Text = Annotated[str | None, Query(max_length=40, pattern=TEXT)]
TerminalStatus = Annotated[
    Literal["in_stock", "deployed", "faulty", "swapped_out", "retired", ""] | None, Query()
]


@pages.get("/terminals")
def terminals_page(
    request: Request, engine: DB, me: Reader, q: Text = None, status: TerminalStatus = None,
    model: Text = None, firmware: Text = None, merchant: Text = None, region: Text = None,
    after: Text = None,
) -> Response:  # fmt: skip
    flt = _filter(q, status, model, firmware, merchant, region)
    found = terminal_page(engine, flt, after=after, limit=get_settings(request).page_size)
    return page(request, "terminals.html", flt=flt, found=found, after=after)


class TerminalRow(BaseModel):
    serial: str
    model: str
    firmware: str
    status: str
    tid: str | None
    mid: str | None
    merchant_id: str | None
    merchant: str | None
    deployed_on: date | None
    last_seen: str | None
    active_version: int
    pending_version: int


class TerminalList(BaseModel):
    items: list[TerminalRow]
    next_after: str | None
    next: str | None


@api.get("/terminals", response_model=TerminalList, summary="Terminals, a keyset page")
def terminals_api(
    request: Request, engine: DB, me: Reader, q: Text = None, status: TerminalStatus = None,
    model: Text = None, firmware: Text = None, merchant: Text = None, region: Text = None,
    after: Text = None, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:  # fmt: skip
    flt = _filter(q, status, model, firmware, merchant, region)
    found = terminal_page(engine, flt, after=after, limit=limit)
    nxt = None
    if found.next_after:
        params = dict(request.query_params) | {"after": found.next_after}
        nxt = str(request.url.replace_query_params(**params))
        nxt = nxt[nxt.index("/api/") :]
    # the rows are plain values already: answered as they are (TerminalList documents them;
    # validating a page of them again would cost more than the query), encoded in one pass
    # of the C encoder (dates and instants by ``default``: walking the rows first to turn
    # them into strings cost more than the query too)
    doc = {"items": found.items, "next_after": found.next_after, "next": nxt}
    return Response(_dumps(doc), media_type="application/json")


def _history(engine: Any, serial: str, me: Principal) -> dict[str, Any]:
    h = terminal_history(engine, serial)
    merchant = h.merchant
    if merchant is not None:
        merchant = merchant | {
            "phone": contact(me, merchant.get("phone")),
            "email": contact(me, merchant.get("email")),
        }
    notices = [n | {"to": contact(me, n.pop("address", None))} for n in h.notices]
    return {
        "terminal": h.terminal, "model": h.model, "merchant": merchant, "pushes": h.pushes,
        "jobs": h.jobs, "swaps": h.swaps, "notices": notices, "audit": h.audit,
    }  # fmt: skip


SerialPath = Annotated[str, Path(min_length=1, max_length=40, pattern=TEXT)]


@pages.get("/terminals/{serial}")
def terminal_page_one(request: Request, serial: SerialPath, engine: DB, me: Reader) -> Response:
    return page(request, "terminal.html", h=_history(engine, serial[:40], me))


@api.get("/terminals/{serial}", summary="One terminal's whole history")
def terminal_api(serial: SerialPath, engine: DB, me: Reader) -> dict[str, Any]:
    found: dict[str, Any] = _jsonable(_history(engine, serial[:40], me))
    return found


def _iso(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"{type(value).__name__} is not JSON")


def _dumps(doc: Any) -> bytes:
    """``doc`` as JSONResponse would encode it, dates and instants in ISO 8601."""
    text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_iso)
    return text.encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
