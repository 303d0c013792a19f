"""Dependencies every route shares: the engine, who is asking, what they may do, CSRF.

Who is asking: an ``Authorization: Bearer pft_…`` token (scripts), else the session
cookie (browsers). A route declares the permission it needs, ``Depends(need(Perm.X))``;
the anonymous get 401 (the API) or a redirect to the sign-in page (pages), the signed-in
without the permission 403. A user whose password is one-time is sent to change it
before anything else.

CSRF: every form carries a token derived from the session's own secret
(:func:`fleet.access.secrets.csrf_token`), checked by :func:`form_checked`; API calls
made with the session cookie (the console's own scripts) send it in ``X-CSRF-Token``
for any method but GET/HEAD. Bearer-token calls need none (no browser sends them on its
own). The session cookie is also ``SameSite=Lax``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from fleet.access import (
    NotAllowedError,
    NotSignedInError,
    Perm,
    Principal,
    allowed,
    resolve_session,
    resolve_token,
)
from fleet.access.secrets import csrf_token
from fleet.core.errors import InputError
from fleet.web.settings import WebSettings

__all__ = [
    "COOKIE",
    "DB",
    "PRE_COOKIE",
    "TEXT",
    "Form",
    "LoginForm",
    "Me",
    "MustChangePasswordError",
    "client_address",
    "current",
    "form_checked",
    "get_engine",
    "get_settings",
    "login_form_checked",
    "need",
    "signed_in",
]

TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""What text input may hold: no control characters but tab and line ends (a NUL would
not even reach PostgreSQL). Every query, path and body string is held to it."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

COOKIE = "pf_session"
PRE_COOKIE = "pf_pre"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def get_engine(request: Request) -> Engine:
    engine = request.app.state.engine
    assert isinstance(engine, Engine)
    return engine


def get_settings(request: Request) -> WebSettings:
    settings = request.app.state.settings
    assert isinstance(settings, WebSettings)
    return settings


async def _engine(request: Request) -> Engine:
    # async: a trivial dependency is not worth a hop to the thread pool
    return get_engine(request)


DB = Annotated[Engine, Depends(_engine)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


class MustChangePasswordError(NotAllowedError):
    """A one-time password in use: the pages send the user to change it."""


def current(request: Request) -> Principal | None:
    """The principal of this request, or None (resolved once per request)."""
    if hasattr(request.state, "principal"):
        found: Principal | None = request.state.principal
        return found
    engine = get_engine(request)
    principal = None
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotSignedInError("Authorization must be 'Bearer <token>'")
        principal = resolve_token(engine, token.strip())
    else:
        cookie = request.cookies.get(COOKIE, "")
        if cookie:
            principal = resolve_session(engine, cookie, times=get_settings(request).times)
    request.state.principal = principal
    return principal


def _check_api_csrf(request: Request, principal: Principal) -> None:
    if principal.via != "session" or request.method in SAFE:
        return
    if not request.url.path.startswith("/api/"):
        return  # pages check the form's token (form_checked)
    wanted = csrf_token(request.cookies.get(COOKIE, ""))
    if not hmac.compare_digest(request.headers.get("x-csrf-token", ""), wanted):
        raise NotAllowedError("missing or wrong X-CSRF-Token", where="csrf")


def signed_in(request: Request) -> Principal:
    principal = current(request)
    if principal is None:
        raise NotSignedInError("sign in first (a session, or Authorization: Bearer <token>)")
    _check_api_csrf(request, principal)
    return principal


def need(perm: Perm) -> Callable[..., Awaitable[Principal]]:
    """The dependency of a route needing ``perm``."""

    async def dependency(request: Request) -> Principal:
        # async: the lookup is one indexed read (well under a millisecond); a hop to the
        # thread pool and back costs about as much, and the route makes one anyway
        principal = signed_in(request)
        if principal.must_change and not request.url.path.startswith("/api/"):
            raise MustChangePasswordError("change your one-time password first")
        if not allowed(principal.role, perm):
            raise NotAllowedError(f"the {principal.role.value} role may not do this")
        return principal

    dependency.__name__ = f"need_{perm.name.lower()}"
    return dependency


async def _checked(request: Request, secret: str, purpose: str) -> dict[str, str]:
    form = await request.form()
    offered = str(form.get("csrf_token", ""))
    if not secret or not hmac.compare_digest(offered, csrf_token(secret, purpose)):
        raise NotAllowedError(
            "the form's CSRF token is missing or stale: reload the page", where="csrf"
        )
    fields = {k: v for k, v in form.items() if k != "csrf_token" and isinstance(v, str)}
    for key, value in fields.items():
        if _CONTROL.search(value):
            raise InputError("control characters are not text", where=f"form field {key[:40]}")
    return fields


async def form_checked(request: Request) -> dict[str, str]:
    """The posted form's fields, once its CSRF token matches the session's; 403 else."""
    return await _checked(request, request.cookies.get(COOKIE, ""), "form")


async def login_form_checked(request: Request) -> dict[str, str]:
    """The sign-in form's fields, once its token matches the pre-session cookie's."""
    return await _checked(request, request.cookies.get(PRE_COOKIE, ""), "login")


Me = Annotated[Principal, Depends(signed_in)]
"""Any signed-in principal."""
Form = Annotated[dict[str, str], Depends(form_checked)]
LoginForm = Annotated[dict[str, str], Depends(login_form_checked)]
