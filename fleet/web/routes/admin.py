"""Administration (the admin role): users, API tokens and webhooks.

A one-time password, a new token and a made signing secret are shown once, on the page
that answers the form, and never again. Each change is audited with the admin as the
actor (the domain functions record it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from fleet import access, webhooks
from fleet.access import Perm, Principal
from fleet.core.errors import InputError
from fleet.core.values import parse_duration_days
from fleet.web.deps import DB, TEXT, Form, need
from fleet.web.problems import PROBLEM_RESPONSES
from fleet.web.render import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["admin"], responses=PROBLEM_RESPONSES)

UserAdmin = Annotated[Principal, Depends(need(Perm.USERS))]
TokenAdmin = Annotated[Principal, Depends(need(Perm.TOKENS))]
HookAdmin = Annotated[Principal, Depends(need(Perm.WEBHOOKS))]
Name = Annotated[str, Path(max_length=80, pattern=TEXT)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _users_page(request: Request, engine: Any, **shown: Any) -> Response:
    users = access.list_users(engine)
    return page(request, "users.html", users=users, roles=access.ROLES, shown=shown)


@pages.get("/admin/users")
def users_page(request: Request, engine: DB, me: UserAdmin) -> Response:
    return _users_page(request, engine)


@pages.post("/admin/users")
def users_add(request: Request, engine: DB, me: UserAdmin, form: Form) -> Response:
    user, made = access.add_user(engine, form.get("name", "").strip(), form.get("role", ""),
                                 actor=me.actor)  # fmt: skip
    return _users_page(request, engine, name=user.name, password=made)


@pages.post("/admin/users/{name}/disable")
def users_disable(name: Name, engine: DB, me: UserAdmin, form: Form) -> Response:
    access.disable_user(engine, name, actor=me.actor, reason=form.get("reason", "")[:500])
    return RedirectResponse("/admin/users", status_code=303)


@pages.post("/admin/users/{name}/reset")
def users_reset(request: Request, name: Name, engine: DB, me: UserAdmin, form: Form) -> Response:
    made = access.reset_password(engine, name, actor=me.actor)
    return _users_page(request, engine, name=name, password=made)


def _tokens_page(request: Request, engine: Any, **shown: Any) -> Response:
    tokens = access.list_tokens(engine)
    return page(request, "tokens.html", tokens=tokens, roles=access.ROLES, shown=shown)


@pages.get("/admin/tokens")
def tokens_page(request: Request, engine: DB, me: TokenAdmin) -> Response:
    return _tokens_page(request, engine)


@pages.post("/admin/tokens")
def tokens_create(request: Request, engine: DB, me: TokenAdmin, form: Form) -> Response:
    try:
        days = parse_duration_days(form.get("expires", "90d"))
    except ValueError as exc:
        raise InputError(str(exc), where="expires") from None
    info, token = access.create_token(engine, form.get("role", ""), days, actor=me.actor,
                                      name=form.get("name", "")[:80])  # fmt: skip
    return _tokens_page(request, engine, name=info.name, token=token)


@pages.post("/admin/tokens/{token_id}/revoke")
def tokens_revoke(token_id: Id, engine: DB, me: TokenAdmin, form: Form) -> Response:
    access.revoke_token(engine, token_id, actor=me.actor)
    return RedirectResponse("/admin/tokens", status_code=303)


def _hooks_page(request: Request, engine: Any, **shown: Any) -> Response:
    from fleet.core.events import EVENT_KINDS  # noqa: PLC0415

    subs = webhooks.list_subscriptions(engine)
    return page(request, "webhooks.html", subs=subs, kinds=sorted(EVENT_KINDS), shown=shown)


@pages.get("/admin/webhooks")
def hooks_page(request: Request, engine: DB, me: HookAdmin) -> Response:
    return _hooks_page(request, engine)


@pages.post("/admin/webhooks")
def hooks_add(request: Request, engine: DB, me: HookAdmin, form: Form) -> Response:
    kinds = [k for k in form.get("events", "").replace(" ", ",").split(",") if k]
    sub, made = webhooks.add_subscription(
        engine, form.get("url", "").strip(), kinds, box=webhooks.load_keybox(), actor=me.actor,
        allow_private=form.get("allow_private") == "on", description=form.get("description", ""),
    )  # fmt: skip
    return _hooks_page(request, engine, id=sub.id, secret=made)


@pages.get("/admin/webhooks/{sub_id}")
def hook_page(request: Request, sub_id: Id, engine: DB, me: HookAdmin) -> Response:
    return page(request, "webhook.html", sub=webhooks.get_subscription(engine, sub_id))


@pages.post("/admin/webhooks/{sub_id}/disable")
def hook_disable(sub_id: Id, engine: DB, me: HookAdmin, form: Form) -> Response:
    webhooks.disable_subscription(engine, sub_id, actor=me.actor)
    return RedirectResponse(f"/admin/webhooks/{sub_id}", status_code=303)


@api.get("/users", summary="Users and their roles")
def users_api(engine: DB, me: UserAdmin) -> list[dict[str, Any]]:
    return [u.as_dict() for u in access.list_users(engine)]


@api.get("/tokens", summary="API tokens (never the tokens themselves)")
def tokens_api(engine: DB, me: TokenAdmin) -> list[dict[str, Any]]:
    return [t.as_dict() for t in access.list_tokens(engine)]


@api.get("/webhooks", summary="Webhook subscriptions and their deliveries by state")
def hooks_api(engine: DB, me: HookAdmin) -> list[dict[str, Any]]:
    return [s.as_dict() for s in webhooks.list_subscriptions(engine)]


@api.get("/webhooks/{sub_id}", summary="One subscription and its last attempts")
def hook_api(sub_id: Id, engine: DB, me: HookAdmin) -> dict[str, Any]:
    return webhooks.get_subscription(engine, sub_id).as_dict()
