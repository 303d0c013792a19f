"""The console's ASGI app: ``create_app(settings)``. No engine at import: it is made when
the app starts (its lifespan) and disposed when it stops.

Pages (server-rendered, for people) and the JSON API under ``/api/v1`` (for scripts) are
two faces of the same routes modules (``fleet.web.routes``): one router per resource and
face, each route a few lines calling a domain function. The OpenAPI document is at
``/api/openapi.json`` (signed-in only, like everything but the sign-in page, health and
the static files); there is no Swagger page (it would load a CDN).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from fleet.core.db import connect, require_current
from fleet.web import problems
from fleet.web.deps import Me, MustChangePasswordError
from fleet.web.middleware import BodyLimit, SecurityHeaders
from fleet.web.render import page
from fleet.web.routes import ROUTERS
from fleet.web.settings import WebSettings

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("fleet.web")
STATIC = Path(__file__).with_name("static")
SWITCH_INTERVAL_S = 0.001
"""How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
Routes run in the thread pool while the event loop (uvicorn, the dependencies) needs the
GIL between every step of every request; at 5 ms the loop waited behind the route threads
and queued requests piled up. At 1 ms, 50 clients on a terminal page: p95 413–519 ms
against 762–1,267 ms, the CPU per request unchanged (load ~16; docs/performance.md)."""


def _page_error(
    request: Request, status: int, message: str, *, retry_after: int | None = None
) -> Response:
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if status == 403 and message.startswith("change your one-time password"):
        return RedirectResponse("/account/password", status_code=303)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    response: Response
    try:
        response = page(request, "error.html", status=status, status_code=status, message=message)
    except Exception:  # the error page itself failed: still answer, in plain text
        log.exception("error page for %s failed", request.url.path)
        response = PlainTextResponse(f"{status}: {message}", status_code=status)
    if headers:
        response.headers.update(headers)
    return response


def _start_sender(app: FastAPI, settings: WebSettings) -> threading.Event | None:
    if not settings.deliver_webhooks:
        return None
    from fleet.webhooks import Sender, load_keybox  # noqa: PLC0415

    stop = threading.Event()
    sender = Sender(app.state.engine, load_keybox())
    threading.Thread(target=sender.run, args=(stop,), name="webhooks", daemon=True).start()
    return stop


def _warm(app: FastAPI) -> None:
    """Compute the dashboard's shared figures once at start when no process has yet (over a
    million terminals that takes seconds: better before the first person asks)."""
    from fleet.web.routes.fleetview import warm_dashboard  # noqa: PLC0415

    try:
        warm_dashboard(app)
    except Exception:
        log.exception("warming the dashboard failed (the first request computes it)")


def _watch(engine: Any, settings: WebSettings, stop: threading.Event) -> None:
    """Every ``flag_every_s``, one process (whichever claims the shared cache key) records
    the terminals newly P1 (:func:`fleet.replacements.flags.record_p1`: their
    ``terminal.flagged`` events)."""
    from fleet.core.cache import cached  # noqa: PLC0415
    from fleet.core.models import now  # noqa: PLC0415
    from fleet.core.policy import Policy  # noqa: PLC0415
    from fleet.replacements.flags import record_p1  # noqa: PLC0415

    def run() -> dict[str, Any]:
        policy = Policy.load(settings.policy_path).replacement
        return {"new_p1": len(record_p1(engine, policy, now().date()))}

    while not stop.wait(min(30.0, settings.flag_every_s)):
        try:
            cached(engine, "replacements.p1", run, ttl_s=settings.flag_every_s, background=False)
        except Exception:
            log.exception("recording P1 terminals failed")


def create_app(settings: WebSettings | None = None) -> FastAPI:
    settings = settings or WebSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = connect(settings.db, pool_size=settings.pool_size, max_overflow=20)
        require_current(engine)
        app.state.engine = engine
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        stop = _start_sender(app, settings)
        threading.Thread(target=_warm, args=(app,), name="warm", daemon=True).start()
        watch = threading.Event()
        if settings.flag_every_s > 0:
            threading.Thread(
                target=_watch, args=(engine, settings, watch), name="watch", daemon=True
            ).start()
        try:
            yield
        finally:
            watch.set()
            if stop is not None:
                stop.set()
            engine.dispose()

    app = FastAPI(
        title="posfleet",
        version="1",
        summary="POS terminal fleet: terminals, replacements, fee tables, rollouts, notices.",
        description="The posfleet console's API. Authenticate with `Authorization: Bearer "
        "<token>` (`posfleet tokens create`). Errors are RFC 9457 problem documents.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app, _page_error)
    app.add_exception_handler(MustChangePasswordError, _must_change)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi_doc() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.problem_openapi(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi_doc  # type: ignore[method-assign]

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(_: Me) -> JSONResponse:
        return JSONResponse(openapi_doc())

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_body=settings.max_body)
    return app


async def _must_change(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return problems.problem(request, 403, str(exc))
    return RedirectResponse("/account/password", status_code=303)


def app_from_env() -> Any:
    """The app as uvicorn's worker processes build it (``--workers N``): settings from
    the environment ``posfleet serve`` set."""
    logging.basicConfig(level=logging.INFO)
    return create_app(WebSettings.from_env())
