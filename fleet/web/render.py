"""Pages: Jinja2 templates, autoescaped always, with what every page shows.

Every value from data goes through autoescaping (a merchant called ``<script>`` is
shown as text); nothing is marked safe but the charts' SVG, which matplotlib wrote from
our own numbers and escapes itself. Contacts are shown through :func:`contact`, which
masks them for the roles that must not see them whole.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from fleet.access import Perm, Principal, allowed, sees_contacts
from fleet.access.secrets import csrf_token
from fleet.core.masking import mask_address
from fleet.web.deps import COOKIE

__all__ = ["NAV", "contact", "page", "when"]

TEMPLATES = Path(__file__).with_name("templates")

NAV: tuple[tuple[str, str, Perm], ...] = (
    ("/dashboard", "Dashboard", Perm.DASHBOARD),
    ("/terminals", "Terminals", Perm.TERMINALS),
    ("/replacements", "Replacements", Perm.REPLACEMENTS),
    ("/fees", "Fee tables", Perm.FEES),
    ("/rollouts", "Rollouts", Perm.ROLLOUTS),
    ("/swaps", "Swaps", Perm.SWAPS),
    ("/notices", "Notices", Perm.NOTICES),
    ("/verify", "Verify", Perm.VERIFY),
    ("/audit", "Audit log", Perm.AUDIT),
    ("/admin/users", "Users", Perm.USERS),
    ("/admin/tokens", "Tokens", Perm.TOKENS),
    ("/admin/webhooks", "Webhooks", Perm.WEBHOOKS),
)


def when(value: Any) -> str:
    """An instant as UTC to the second (``2026-11-23 09:12:59 UTC``), a date as ISO."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def contact(principal: Principal | None, address: str | None) -> str:
    """A phone or email as ``principal`` may see it: whole, or masked."""
    if not address:
        return ""
    if principal is not None and sees_contacts(principal.role):
        return address
    return mask_address(address)


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")


def path_part(value: Any) -> str:
    """``value`` as one segment of a URL path (what Jinja's ``urlencode`` gives), without
    quoting what needs none (a serial: fifty a page, and quoting cost a tenth of it)."""
    text = str(value)
    return text if _URL_SAFE.fullmatch(text) else quote(text, safe="")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship with the package: no stat per page
)
_env.filters["when"] = when
_env.filters["path_part"] = path_part


def _query(request: Request, **changes: Any) -> str:
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else ""


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    principal: Principal | None = getattr(request.state, "principal", None)
    session = request.cookies.get(COOKIE, "")
    html = _env.get_template(template).render(
        request=request,
        me=principal,
        csrf=csrf_token(session) if session else "",
        nav=[
            (href, label)
            for href, label, perm in NAV
            if principal is not None and not principal.must_change and allowed(principal.role, perm)
        ],
        can=lambda perm: principal is not None and allowed(principal.role, Perm(perm)),
        contact=lambda address: contact(principal, address),
        query=lambda **kw: _query(request, **kw),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)
