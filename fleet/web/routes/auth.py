"""Signing in and out, one's own password, the home page, health, ``/api/v1/me``.

Sign-in makes a new session every time (a cookie the browser brought is never adopted:
no session fixation) and discards the one the browser had. The sign-in form is guarded
against CSRF by a pre-session cookie. ``next`` is followed only to a path on this site.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import text

from fleet.access import (
    NotSignedInError,
    Perm,
    Principal,
    ThrottledError,
    allowed,
    change_password,
    close_session,
    open_session,
    sign_in,
)
from fleet.access.secrets import csrf_token
from fleet.core.db import current_revision
from fleet.core.errors import InputError
from fleet.web.deps import (
    COOKIE,
    DB,
    PRE_COOKIE,
    Form,
    LoginForm,
    Me,
    client_address,
    current,
    get_settings,
)
from fleet.web.problems import PROBLEM_RESPONSES
from fleet.web.render import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["me"], responses=PROBLEM_RESPONSES)


def home_of(principal: Principal) -> str:
    if allowed(principal.role, Perm.DASHBOARD):
        return "/dashboard"
    if allowed(principal.role, Perm.VERIFY):
        return "/verify"
    return "/terminals"


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None


def _login_page(
    request: Request, *, status: int = 200, error: str = "", name: str = ""
) -> Response:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        status=status,
        login_csrf=csrf_token(pre, "login"),
        error=error,
        name=name,
        next=_safe_next(request.query_params.get("next")) or "",
    )
    secure = get_settings(request).secure_cookies
    response.set_cookie(
        PRE_COOKIE, pre, httponly=True, samesite="strict", secure=secure, max_age=3600, path="/"
    )
    return response


@pages.get("/login")
def login_form(request: Request) -> Response:
    request.state.principal = None
    return _login_page(request)


@pages.post("/login")
def login(request: Request, engine: DB, form: LoginForm) -> Response:
    request.state.principal = None
    settings = get_settings(request)
    name = form.get("name", "").strip()
    try:
        user = sign_in(
            engine, name, form.get("password", ""), address=client_address(request),
            limits=settings.limits,
        )  # fmt: skip
    except ThrottledError as exc:
        response = _login_page(request, status=429, error=str(exc), name=name)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except NotSignedInError as exc:
        return _login_page(request, status=401, error=str(exc), name=name)
    old = request.cookies.get(COOKIE)
    if old:
        close_session(engine, old)
    token = open_session(
        engine,
        user,
        address=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
        times=settings.times,
    )
    target = "/account/password" if user.must_change else None
    target = (
        target
        or _safe_next(form.get("next"))
        or home_of(Principal(user.name, user.role, "session", 0))
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookies,
        max_age=settings.times.max_s, path="/",
    )  # fmt: skip
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


@pages.post("/logout")
def logout(
    request: Request,
    engine: DB,
    _: Me,
    __: Form,
) -> Response:
    close_session(engine, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@pages.get("/")
def root(request: Request) -> Response:
    principal = current(request)
    return RedirectResponse(home_of(principal) if principal else "/login", status_code=303)


@pages.get("/account/password")
def password_form(request: Request, me: Me) -> Response:
    return page(request, "password.html", error="", done=False)


@pages.post("/account/password")
def password_change(
    request: Request,
    engine: DB,
    me: Me,
    form: Form,
) -> Response:
    if me.via != "session":
        raise InputError("a token has no password", where="password")
    new = form.get("new", "")
    if new != form.get("again", ""):
        return page(
            request, "password.html", status=422, error="the two new passwords differ", done=False
        )
    try:
        change_password(engine, me.name, form.get("current", ""), new)
    except (InputError, NotSignedInError) as exc:
        return page(request, "password.html", status=422, error=str(exc), done=False)
    request.state.principal = Principal(me.name, me.role, me.via, me.ref, False)
    return page(request, "password.html", error="", done=True)


@pages.get("/health")
def health(engine: DB) -> JSONResponse:
    """Public: the process answers and its database too (no detail beyond that)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except Exception:  # health says down, whatever the cause
        return JSONResponse({"status": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "schema": revision})


class WhoAmI(BaseModel):
    name: str
    role: str
    via: str
    actor: str


@api.get("/me", response_model=WhoAmI, summary="Who this token or session is")
def me(principal: Me) -> dict[str, Any]:
    return {
        "name": principal.name,
        "role": principal.role.value,
        "via": principal.via,
        "actor": principal.actor,
    }
